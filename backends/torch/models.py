"""torch.nn models built from the framework-neutral workload specs (suites.workloads).

Every model returns logits: ``[batch, classes]`` for the CNNs and the LSTM classifier,
``[batch, positions, vocab]`` for the LSTM language model and the transformer.
Layouts are torch's natural ones: images NCHW, sequences batch-first.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tribench.backends.torch.decoder import Decoder
from tribench.suites.workloads import (
    Architecture,
    ConvNetSpec,
    DecoderSpec,
    LSTMClassifierSpec,
    LSTMLanguageModelSpec,
    ResNetSpec,
    TransformerSpec,
)

# ---------------------------------------------------------------- CNNs


class ConvNet(nn.Module):
    """Plain conv stack (valid padding, stride 1, ReLU, optional 2x2 max-pool) and a dense head."""

    def __init__(self, spec: ConvNetSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        height, width, channels = spec.height, spec.width, spec.channels
        for filters, kernel, pool in spec.convs:
            layers += [nn.Conv2d(channels, filters, kernel), nn.ReLU(inplace=True)]
            height, width, channels = height - kernel + 1, width - kernel + 1, filters
            if pool:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
        layers.append(nn.Flatten())
        inputs = height * width * channels
        for units in spec.dense:
            layers += [nn.Linear(inputs, units), nn.ReLU(inplace=True)]
            inputs = units
        layers.append(nn.Linear(inputs, spec.classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Conv (no bias: the BatchNorm offset replaces it) + BatchNorm; 'same' padding."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    )


class ResidualBlock(nn.Module):
    """Basic (3x3, 3x3) or bottleneck v1.5 (1x1, 3x3 strided, 1x1) block with a projection
    shortcut where the shape changes."""

    def __init__(self, cin: int, width: int, cout: int, stride: int, kind: str) -> None:
        super().__init__()
        if kind == "basic":
            convs = [_conv_bn(cin, width, 3, stride), _conv_bn(width, cout, 3)]
        else:
            convs = [_conv_bn(cin, width, 1), _conv_bn(width, width, 3, stride), _conv_bn(width, cout, 1)]
        self.convs = nn.ModuleList(convs)
        needs_projection = stride != 1 or cin != cout
        self.shortcut = _conv_bn(cin, cout, 1, stride) if needs_projection else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for index, conv in enumerate(self.convs):
            out = conv(out)
            if index < len(self.convs) - 1:
                out = F.relu(out, inplace=True)
        return F.relu(out + self.shortcut(x), inplace=True)


class ResNet(nn.Module):
    """ResNet v1.5 from a ResNetSpec: stem, residual stages, global average pool, dense head."""

    def __init__(self, spec: ResNetSpec) -> None:
        super().__init__()
        if spec.stem == "imagenet":
            stem = [_conv_bn(spec.channels, spec.stem_width, 7, 2), nn.ReLU(inplace=True),
                    nn.MaxPool2d(3, stride=2, padding=1)]
        else:
            stem = [_conv_bn(spec.channels, spec.stem_width, 3), nn.ReLU(inplace=True)]
        self.stem = nn.Sequential(*stem)
        blocks, cin = [], spec.stem_width
        for stage, (count, width) in enumerate(zip(spec.stage_blocks, spec.stage_widths, strict=True)):
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                cout = width * spec.expansion
                blocks.append(ResidualBlock(cin, width, cout, stride, spec.block))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, spec.classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.stem(images))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(features, 1), 1))


# ---------------------------------------------------------------- LSTMs


def _lstm_stack(inputs: int, hidden: tuple[int, ...]) -> nn.ModuleList:
    """One multi-layer nn.LSTM when all layers are equally wide (cuDNN runs the whole stack in one
    call), else one nn.LSTM per layer."""
    if len(set(hidden)) == 1:
        return nn.ModuleList([nn.LSTM(inputs, hidden[0], num_layers=len(hidden), batch_first=True)])
    widths = (inputs,) + hidden[:-1]
    return nn.ModuleList(nn.LSTM(cin, cout, batch_first=True) for cin, cout in zip(widths, hidden, strict=True))


def _run_lstms(lstms: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for lstm in lstms:
        x, _ = lstm(x)
    return x


class LSTMClassifier(nn.Module):
    """Stacked LSTMs over [batch, timesteps, features]; a dense classifier on the last step."""

    def __init__(self, spec: LSTMClassifierSpec) -> None:
        super().__init__()
        self.lstms = _lstm_stack(spec.features, spec.hidden)
        self.head = nn.Linear(spec.hidden[-1], spec.classes)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        return self.head(_run_lstms(self.lstms, sequences)[:, -1])


class LSTMLanguageModel(nn.Module):
    """Embedding -> stacked LSTMs -> vocabulary logits at every step."""

    def __init__(self, spec: LSTMLanguageModelSpec) -> None:
        super().__init__()
        self.embed = nn.Embedding(spec.vocab, spec.embed)
        self.lstm = nn.LSTM(spec.embed, spec.hidden, num_layers=spec.layers, batch_first=True)
        self.head = nn.Linear(spec.hidden, spec.vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.embed(tokens))
        return self.head(hidden)


# ---------------------------------------------------------------- transformer


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """[length, d_model] with sin on even and cos on odd features (Vaswani et al., 2017)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10_000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return table


class EncoderBlock(nn.Module):
    """Pre-LN block: x + MHA(LN(x)); x + FFN(LN(x)) with GELU.

    The q, k and v projections are one fused Linear(d, 3d): the same parameters and FLOPs as
    three, in one GEMM. Attention is F.scaled_dot_product_attention (flash / memory-efficient
    kernels where the device has them).
    """

    def __init__(self, d_model: int, heads: int, d_ff: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn_in = nn.Linear(d_model, d_ff)
        self.ffn_out = nn.Linear(d_ff, d_model)

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, d_model = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.heads, d_model // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)          # each [batch, heads, length, head_dim]
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.out(attended.transpose(1, 2).reshape(batch, length, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._attention(self.attn_norm(x))
        return x + self.ffn_out(F.gelu(self.ffn_in(self.ffn_norm(x))))


class Transformer(nn.Module):
    """Token embedding + sinusoidal positions (a buffer, not a parameter), pre-LN blocks,
    final LayerNorm, per-token vocabulary head."""

    def __init__(self, spec: TransformerSpec) -> None:
        super().__init__()
        self.embed = nn.Embedding(spec.vocab, spec.d_model)
        self.register_buffer("positions", sinusoidal_positions(spec.seq_len, spec.d_model), persistent=False)
        self.blocks = nn.Sequential(*(EncoderBlock(spec.d_model, spec.heads, spec.d_ff) for _ in range(spec.layers)))
        self.norm = nn.LayerNorm(spec.d_model)
        self.head = nn.Linear(spec.d_model, spec.vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.positions[: tokens.shape[1]]
        return self.head(self.norm(self.blocks(x)))


# ---------------------------------------------------------------- dispatch

_BUILDERS: dict[type, type[nn.Module]] = {
    DecoderSpec: Decoder,
    ConvNetSpec: ConvNet,
    ResNetSpec: ResNet,
    LSTMClassifierSpec: LSTMClassifier,
    LSTMLanguageModelSpec: LSTMLanguageModel,
    TransformerSpec: Transformer,
}


def build_model(spec: Architecture) -> nn.Module:
    """The torch.nn model for ``spec``, on the current default device, in fp32."""
    builder = _BUILDERS.get(type(spec))
    if builder is None:
        raise TypeError(f"no torch model for architecture {spec!r}")
    return builder(spec)


def is_cnn(spec: Architecture) -> bool:
    return isinstance(spec, ConvNetSpec | ResNetSpec)


def trainable_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
