"""paddle.nn (dygraph) models built from the framework-neutral workload specs (suites.workloads), ports of
``backends/torch/models.py``: the same layers, parameter counts and outputs.

Every model returns logits: ``[batch, classes]`` for the CNNs and the LSTM classifier,
``[batch, positions, vocab]`` for the LSTM language model, the transformer and the decoder.
Layouts are PyTorch's: images NCHW, sequences batch-first. ``paddle.nn.Linear`` stores its weight as
[in, out] (PyTorch's transposed); convolution, embedding, LSTM and norm weights have PyTorch's shapes.

``paddle.nn.LSTM`` carries two bias vectors per layer (``bias_ih_l{k}`` and ``bias_hh_l{k}``), like
PyTorch's: tribench counts its parameters with ``param_count(spec, lstm_second_bias=True)``. Its gates
are ordered (input, forget, cell, output), PyTorch's order, so PyTorch's LSTM weights load unchanged.
BatchNorm's running mean and variance are parameters in Paddle (``_mean``, ``_variance``) but with
``stop_gradient`` set, so ``trainable_params`` leaves them out.
"""

from __future__ import annotations

import math

import paddle
import paddle.nn.functional as F
from paddle import nn

from tribench.backends.paddle.decoder import Decoder
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


class ConvNet(nn.Layer):
    """Plain conv stack (valid padding, stride 1, ReLU, optional 2x2 max-pool) and a dense head."""

    def __init__(self, spec: ConvNetSpec) -> None:
        super().__init__()
        layers: list[nn.Layer] = []
        height, width, channels = spec.height, spec.width, spec.channels
        for filters, kernel, pool in spec.convs:
            layers += [nn.Conv2D(channels, filters, kernel), nn.ReLU()]
            height, width, channels = height - kernel + 1, width - kernel + 1, filters
            if pool:
                layers.append(nn.MaxPool2D(2))
                height, width = height // 2, width // 2
        layers.append(nn.Flatten())
        inputs = height * width * channels
        for units in spec.dense:
            layers += [nn.Linear(inputs, units), nn.ReLU()]
            inputs = units
        layers.append(nn.Linear(inputs, spec.classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        return self.layers(images)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Conv (no bias: the BatchNorm offset replaces it) + BatchNorm; 'same' padding."""
    return nn.Sequential(
        nn.Conv2D(cin, cout, kernel, stride=stride, padding=kernel // 2, bias_attr=False),
        nn.BatchNorm2D(cout),
    )


class ResidualBlock(nn.Layer):
    """Basic (3x3, 3x3) or bottleneck v1.5 (1x1, 3x3 strided, 1x1) block with a projection
    shortcut where the shape changes."""

    def __init__(self, cin: int, width: int, cout: int, stride: int, kind: str) -> None:
        super().__init__()
        if kind == "basic":
            convs = [_conv_bn(cin, width, 3, stride), _conv_bn(width, cout, 3)]
        else:
            convs = [_conv_bn(cin, width, 1), _conv_bn(width, width, 3, stride), _conv_bn(width, cout, 1)]
        self.convs = nn.LayerList(convs)
        needs_projection = stride != 1 or cin != cout
        self.shortcut = _conv_bn(cin, cout, 1, stride) if needs_projection else nn.Identity()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = x
        for index, conv in enumerate(self.convs):
            out = conv(out)
            if index < len(self.convs) - 1:
                out = F.relu(out)
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Layer):
    """ResNet v1.5 from a ResNetSpec: stem, residual stages, global average pool, dense head."""

    def __init__(self, spec: ResNetSpec) -> None:
        super().__init__()
        if spec.stem == "imagenet":
            stem = [_conv_bn(spec.channels, spec.stem_width, 7, 2), nn.ReLU(), nn.MaxPool2D(3, stride=2, padding=1)]
        else:
            stem = [_conv_bn(spec.channels, spec.stem_width, 3), nn.ReLU()]
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

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        features = self.blocks(self.stem(images))
        return self.head(paddle.flatten(F.adaptive_avg_pool2d(features, 1), 1))


# ---------------------------------------------------------------- LSTMs


def _lstm_stack(inputs: int, hidden: tuple[int, ...]) -> nn.LayerList:
    """One multi-layer nn.LSTM when all layers are equally wide (one fused rnn op for the stack), else one
    nn.LSTM per layer."""
    if len(set(hidden)) == 1:
        return nn.LayerList([nn.LSTM(inputs, hidden[0], num_layers=len(hidden))])
    widths = (inputs,) + hidden[:-1]
    return nn.LayerList([nn.LSTM(cin, cout) for cin, cout in zip(widths, hidden, strict=True)])


def _run_lstms(lstms: nn.LayerList, x: paddle.Tensor) -> paddle.Tensor:
    for lstm in lstms:
        x, _ = lstm(x)
    return x


class LSTMClassifier(nn.Layer):
    """Stacked LSTMs over [batch, timesteps, features] (batch-first, Paddle's default); a dense classifier on
    the last step."""

    def __init__(self, spec: LSTMClassifierSpec) -> None:
        super().__init__()
        self.lstms = _lstm_stack(spec.features, spec.hidden)
        self.head = nn.Linear(spec.hidden[-1], spec.classes)

    def forward(self, sequences: paddle.Tensor) -> paddle.Tensor:
        return self.head(_run_lstms(self.lstms, sequences)[:, -1])


class LSTMLanguageModel(nn.Layer):
    """Embedding -> stacked LSTMs -> vocabulary logits at every step."""

    def __init__(self, spec: LSTMLanguageModelSpec) -> None:
        super().__init__()
        self.embed = nn.Embedding(spec.vocab, spec.embed)
        self.lstm = nn.LSTM(spec.embed, spec.hidden, num_layers=spec.layers)
        self.head = nn.Linear(spec.hidden, spec.vocab)

    def forward(self, tokens: paddle.Tensor) -> paddle.Tensor:
        hidden, _ = self.lstm(self.embed(tokens))
        return self.head(hidden)


# ---------------------------------------------------------------- transformer


def sinusoidal_positions(length: int, d_model: int) -> paddle.Tensor:
    """[length, d_model] with sin on even and cos on odd features (Vaswani et al., 2017)."""
    position = paddle.arange(length, dtype="float32").unsqueeze(1)
    frequency = paddle.exp(paddle.arange(0, d_model, 2, dtype="float32") * (-math.log(10_000.0) / d_model))
    angles = position * frequency                                    # [length, ceil(d_model / 2)]
    sines, cosines = paddle.sin(angles), paddle.cos(angles[:, : d_model // 2])
    table = paddle.zeros([length, d_model])
    table[:, 0::2] = sines
    table[:, 1::2] = cosines
    return table


class EncoderBlock(nn.Layer):
    """Pre-LN block: x + MHA(LN(x)); x + FFN(LN(x)) with GELU (exact, erf).

    The q, k and v projections are one fused Linear(d, 3d): the same parameters and FLOPs as three, in one
    GEMM, split as PyTorch's (q, k, v, then heads). Attention is F.scaled_dot_product_attention, which takes
    [batch, length, heads, head_dim], the layout the split yields.
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

    def _attention(self, x: paddle.Tensor) -> paddle.Tensor:
        batch, length, d_model = x.shape
        qkv = self.qkv(x).reshape([batch, length, 3, self.heads, d_model // self.heads])
        q, k, v = paddle.unbind(qkv, axis=2)                        # each [batch, length, heads, head_dim]
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.out(attended.reshape([batch, length, d_model]))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self._attention(self.attn_norm(x))
        return x + self.ffn_out(F.gelu(self.ffn_in(self.ffn_norm(x))))


class Transformer(nn.Layer):
    """Token embedding + sinusoidal positions (a non-persistable buffer, not a parameter), pre-LN blocks,
    final LayerNorm, per-token vocabulary head."""

    def __init__(self, spec: TransformerSpec) -> None:
        super().__init__()
        self.embed = nn.Embedding(spec.vocab, spec.d_model)
        self.register_buffer("positions", sinusoidal_positions(spec.seq_len, spec.d_model), persistable=False)
        self.blocks = nn.Sequential(*(EncoderBlock(spec.d_model, spec.heads, spec.d_ff) for _ in range(spec.layers)))
        self.norm = nn.LayerNorm(spec.d_model)
        self.head = nn.Linear(spec.d_model, spec.vocab)

    def forward(self, tokens: paddle.Tensor) -> paddle.Tensor:
        x = self.embed(tokens) + self.positions[: tokens.shape[1]]
        return self.head(self.norm(self.blocks(x)))


# ---------------------------------------------------------------- dispatch

_BUILDERS: dict[type, type[nn.Layer]] = {
    DecoderSpec: Decoder,
    ConvNetSpec: ConvNet,
    ResNetSpec: ResNet,
    LSTMClassifierSpec: LSTMClassifier,
    LSTMLanguageModelSpec: LSTMLanguageModel,
    TransformerSpec: Transformer,
}


def build_model(spec: Architecture) -> nn.Layer:
    """The paddle.nn model for ``spec``, on the current default device, in fp32 (Paddle's default dtype)."""
    builder = _BUILDERS.get(type(spec))
    if builder is None:
        raise TypeError(f"no paddle model for architecture {spec!r}")
    return builder(spec)


def is_cnn(spec: Architecture) -> bool:
    return isinstance(spec, ConvNetSpec | ResNetSpec)


def trainable_params(model: nn.Layer) -> int:
    """Parameters that train (``stop_gradient`` False); sizes from shapes, so lazily created ones count too."""
    return sum(math.prod(p.shape) for p in model.parameters() if not p.stop_gradient)
