"""The workloads, defined once and framework-neutrally.

Each workload family (cnn, rnn, transformer) has three sizes. A size is a
frozen architecture spec; every backend builds its model from the same spec
object, and the analytic parameter count and FLOPs below are derived from it,
so all backends are checked against one number.

Conventions shared by every backend:

* Parameter counts are *trainable* parameters. BatchNorm contributes its scale
  and offset (2 per channel); its running statistics are buffers. Convolutions
  in ResNets carry no bias. LSTMs carry ONE bias per gate (Keras/Flax
  convention); PyTorch's ``nn.LSTM`` carries a second one (``bias_hh``), which
  adds ``4 * hidden`` per layer: ``param_count(spec, lstm_second_bias=True)``.
* FLOPs count multiply-adds of convolutions and matrix products as 2 FLOPs
  (the same operations ``torch.utils.flop_counter`` and XLA count); element-wise
  work (activations, normalisation, pooling, softmax, gate non-linearities,
  residual adds) is left out. A training step is counted as 3x the forward
  pass (forward + backward of activations + backward of weights).
* Data is synthetic: float inputs ~ N(0, 1), integer tokens and labels
  uniform, generated once on the device from a fixed seed.
* Training uses Adam (lr 1e-3) on softmax cross-entropy; inference is the
  forward pass with no gradient tracking.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tribench.core.errors import InvalidChoice, InvalidValue
from tribench.core.spec import SIZES
from tribench.suites.huggingface import is_reference as is_huggingface
from tribench.suites.huggingface import workload as huggingface_workload
from tribench.suites.plugins import (
    TRAIN_FLOPS_FACTOR,
    BrokenWorkload,
    entry_point_workloads,
    file_workloads,
    load_file,
    registered_files,
)
from tribench.suites.plugins import Workload as PluginWorkload

LEARNING_RATE = 1e-3
SEED = 0


# ---------------------------------------------------------------- architectures


@dataclass(frozen=True)
class ConvNetSpec:
    """Plain conv stack: each conv is (filters, kernel, pool_after); valid padding, stride 1."""

    height: int
    width: int
    channels: int
    convs: tuple[tuple[int, int, bool], ...]
    dense: tuple[int, ...]
    classes: int


@dataclass(frozen=True)
class ResNetSpec:
    """ResNet v1.5 (stride on the 3x3 conv of a bottleneck), BatchNorm, no conv biases.

    ``stem="imagenet"``: 7x7/2 conv + 3x3/2 max-pool; ``stem="cifar"``: 3x3/1 conv, no pool.
    """

    height: int
    width: int
    channels: int
    classes: int
    block: str                      # "basic" | "bottleneck"
    stage_blocks: tuple[int, ...]
    stage_widths: tuple[int, ...]
    stem: str                       # "imagenet" | "cifar"
    stem_width: int = 64

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1


@dataclass(frozen=True)
class LSTMClassifierSpec:
    """Stacked LSTMs over float features; a dense classifier on the last step."""

    timesteps: int
    features: int
    hidden: tuple[int, ...]
    classes: int


@dataclass(frozen=True)
class LSTMLanguageModelSpec:
    """Embedding -> stacked LSTMs -> dense over the vocabulary at every step; next-token loss."""

    vocab: int
    embed: int
    hidden: int
    layers: int
    timesteps: int


@dataclass(frozen=True)
class TransformerSpec:
    """Pre-LayerNorm encoder with sinusoidal positions and a per-token vocabulary head.

    Block: x + MHA(LN(x)); x + FFN(LN(x)) with GELU; then a final LN and the head.
    Attention projections (q, k, v, out) and dense layers carry biases.
    """

    vocab: int
    seq_len: int
    d_model: int
    heads: int
    d_ff: int
    layers: int


@dataclass(frozen=True)
class DecoderSpec:
    """Causal language model in the shape of current open LLMs (Llama): token embedding, then per layer
    x + GQA(RMSNorm(x)) with rotary position embeddings and x + SwiGLU(RMSNorm(x)), a final RMSNorm and
    a vocabulary head tied to the embedding (``tie_embeddings``). No biases anywhere.

    Attention has ``heads`` query heads sharing ``kv_heads`` key/value heads (grouped-query attention),
    each ``d_model // heads`` wide; RoPE rotates pairs (i, i + head_dim / 2) ("rotate half") with base
    ``rope_theta``. The MLP is ``down(silu(gate(x)) * up(x))`` with ``d_ff`` hidden units.
    ``seq_len`` is the sequence a train or infer step runs; ``max_context`` the most positions a
    generated sequence may reach (prompt + new tokens).
    """

    vocab: int
    seq_len: int
    d_model: int
    heads: int
    kv_heads: int
    d_ff: int
    layers: int
    max_context: int
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim


Architecture = (ConvNetSpec | ResNetSpec | LSTMClassifierSpec | LSTMLanguageModelSpec | TransformerSpec
                | DecoderSpec)


# ---------------------------------------------------------------- parameters


def _dense_params(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs


def _lstm_params(inputs: int, hidden: int, second_bias: bool) -> int:
    biases = 2 if second_bias else 1
    return 4 * hidden * (inputs + hidden) + biases * 4 * hidden


def _convnet_feature_size(spec: ConvNetSpec) -> tuple[int, int, int]:
    height, width, channels = spec.height, spec.width, spec.channels
    for filters, kernel, pool in spec.convs:
        height, width, channels = height - kernel + 1, width - kernel + 1, filters
        if pool:
            height, width = height // 2, width // 2
    return height, width, channels


def _resnet_blocks(spec: ResNetSpec):
    """Yield (in_channels, width, out_channels, stride) for every residual block."""
    in_channels = spec.stem_width
    for stage, (blocks, width) in enumerate(zip(spec.stage_blocks, spec.stage_widths, strict=True)):
        for index in range(blocks):
            stride = 2 if (stage > 0 and index == 0) else 1
            out_channels = width * spec.expansion
            yield in_channels, width, out_channels, stride
            in_channels = out_channels


def _resnet_block_convs(in_ch: int, width: int, out_ch: int, stride: int, block: str):
    """(kernel, in, out, stride) of each conv in a block, shortcut projection last."""
    if block == "basic":
        convs = [(3, in_ch, width, stride), (3, width, out_ch, 1)]
    else:
        convs = [(1, in_ch, width, 1), (3, width, width, stride), (1, width, out_ch, 1)]
    if stride != 1 or in_ch != out_ch:
        convs.append((1, in_ch, out_ch, stride))
    return convs


def _resnet_stem(spec: ResNetSpec) -> tuple[int, int]:
    """(kernel, stride) of the stem conv."""
    return (7, 2) if spec.stem == "imagenet" else (3, 1)


def param_count(spec: Architecture, lstm_second_bias: bool = False) -> int:
    """Trainable parameters of ``spec`` (see the module docstring for conventions)."""
    if isinstance(spec, ConvNetSpec):
        total, channels = 0, spec.channels
        for filters, kernel, _ in spec.convs:
            total += kernel * kernel * channels * filters + filters
            channels = filters
        height, width, channels = _convnet_feature_size(spec)
        inputs = height * width * channels
        for units in spec.dense + (spec.classes,):
            total += _dense_params(inputs, units)
            inputs = units
        return total
    if isinstance(spec, ResNetSpec):
        kernel, _ = _resnet_stem(spec)
        total = kernel * kernel * spec.channels * spec.stem_width + 2 * spec.stem_width
        for block in _resnet_blocks(spec):
            for k, cin, cout, _ in _resnet_block_convs(*block, spec.block):
                total += k * k * cin * cout + 2 * cout
        final = spec.stage_widths[-1] * spec.expansion
        return total + _dense_params(final, spec.classes)
    if isinstance(spec, LSTMClassifierSpec):
        total, inputs = 0, spec.features
        for hidden in spec.hidden:
            total += _lstm_params(inputs, hidden, lstm_second_bias)
            inputs = hidden
        return total + _dense_params(inputs, spec.classes)
    if isinstance(spec, LSTMLanguageModelSpec):
        total = spec.vocab * spec.embed
        inputs = spec.embed
        for _ in range(spec.layers):
            total += _lstm_params(inputs, spec.hidden, lstm_second_bias)
            inputs = spec.hidden
        return total + _dense_params(spec.hidden, spec.vocab)
    if isinstance(spec, TransformerSpec):
        d = spec.d_model
        layer_norm = 2 * d
        block = layer_norm + 4 * _dense_params(d, d) + layer_norm
        block += _dense_params(d, spec.d_ff) + _dense_params(spec.d_ff, d)
        return spec.vocab * d + spec.layers * block + layer_norm + _dense_params(d, spec.vocab)
    if isinstance(spec, DecoderSpec):
        d = spec.d_model
        attention = d * d + 2 * d * spec.kv_dim + d * d          # q, k, v, out (no biases)
        block = 2 * d + attention + 3 * d * spec.d_ff              # two RMSNorm scales, SwiGLU gate/up/down
        head = 0 if spec.tie_embeddings else d * spec.vocab
        return spec.vocab * d + spec.layers * block + d + head
    raise TypeError(f"unknown architecture {spec!r}")


# ---------------------------------------------------------------- FLOPs


def _conv_flops(kernel: int, cin: int, cout: int, height: int, width: int) -> int:
    return 2 * kernel * kernel * cin * cout * height * width


def _out_size(size: int, stride: int) -> int:
    """Output size of a 'same'-padded strided layer (Keras same == PyTorch pad=k//2 here)."""
    return -(-size // stride)


def resnet_conv_layers(spec: ResNetSpec):
    """(kernel, in channels, out channels, output height, output width) of every conv, stem first."""
    kernel, stride = _resnet_stem(spec)
    height, width = _out_size(spec.height, stride), _out_size(spec.width, stride)
    yield kernel, spec.channels, spec.stem_width, height, width
    if spec.stem == "imagenet":
        height, width = _out_size(height, 2), _out_size(width, 2)
    for in_ch, mid, out_ch, block_stride in _resnet_blocks(spec):
        out_h, out_w = _out_size(height, block_stride), _out_size(width, block_stride)
        for k, cin, cout, _ in _resnet_block_convs(in_ch, mid, out_ch, block_stride, spec.block):
            # convs before the strided one in a bottleneck run at the input resolution
            at_input = spec.block == "bottleneck" and k == 1 and cin == in_ch and cout == mid
            yield (k, cin, cout, height, width) if at_input else (k, cin, cout, out_h, out_w)
        height, width = out_h, out_w


def forward_flops_per_sample(spec: Architecture) -> int:
    """Analytic forward FLOPs for one sample (conv and matmul multiply-adds x 2)."""
    if isinstance(spec, ConvNetSpec):
        total, height, width, channels = 0, spec.height, spec.width, spec.channels
        for filters, kernel, pool in spec.convs:
            height, width = height - kernel + 1, width - kernel + 1
            total += _conv_flops(kernel, channels, filters, height, width)
            channels = filters
            if pool:
                height, width = height // 2, width // 2
        inputs = height * width * channels
        for units in spec.dense + (spec.classes,):
            total += 2 * inputs * units
            inputs = units
        return total
    if isinstance(spec, ResNetSpec):
        total = sum(_conv_flops(k, cin, cout, h, w) for k, cin, cout, h, w in resnet_conv_layers(spec))
        return total + 2 * spec.stage_widths[-1] * spec.expansion * spec.classes
    if isinstance(spec, LSTMClassifierSpec):
        total, inputs = 0, spec.features
        for hidden in spec.hidden:
            total += spec.timesteps * 2 * 4 * hidden * (inputs + hidden)
            inputs = hidden
        return total + 2 * inputs * spec.classes
    if isinstance(spec, LSTMLanguageModelSpec):
        total, inputs = 0, spec.embed
        for _ in range(spec.layers):
            total += spec.timesteps * 2 * 4 * spec.hidden * (inputs + spec.hidden)
            inputs = spec.hidden
        return total + spec.timesteps * 2 * spec.hidden * spec.vocab
    if isinstance(spec, TransformerSpec):
        s, d = spec.seq_len, spec.d_model
        projections = 2 * s * d * d * 4
        attention = 2 * s * s * d * 2          # Q K^T and (softmax) V, summed over heads
        ffn = 2 * s * d * spec.d_ff * 2
        return spec.layers * (projections + attention + ffn) + 2 * s * d * spec.vocab
    if isinstance(spec, DecoderSpec):
        return decoder_forward_flops(spec, spec.seq_len)
    raise TypeError(f"unknown architecture {spec!r}")


def generation_flops(spec: DecoderSpec, prompt: int, new_tokens: int) -> tuple[int, int]:
    """(prefill, decode) FLOPs of one sequence's request: the prompt's ``prompt`` positions with the vocabulary
    head on the last only (the first token), then ``new_tokens - 1`` cached decode steps, step i attending
    over the ``prompt + i + 1`` positions it has."""
    head = 2 * spec.d_model * spec.vocab
    prefill = decoder_forward_flops(spec, prompt) - (prompt - 1) * head
    decode = sum(decoder_forward_flops(spec, 1, prompt + step + 1) for step in range(new_tokens - 1))
    return prefill, decode


def kv_cache_bytes(spec: DecoderSpec, batch: int, positions: int, bytes_per_value: int) -> int:
    """What a KV cache of ``positions`` positions holds: keys and values of every layer."""
    return 2 * spec.layers * batch * positions * spec.kv_dim * bytes_per_value


def decoder_forward_flops(spec: DecoderSpec, positions: int, context: int | None = None) -> int:
    """Forward FLOPs of ``positions`` new positions of a decoder attending over ``context`` positions in all
    (default: ``positions``, a whole sequence). Attention's score and value products count in full (the
    matrix products the frameworks run and their counters count, causal mask or not); with a KV cache,
    a decode step has ``positions`` 1 and ``context`` the tokens so far."""
    context = positions if context is None else context
    d, s = spec.d_model, positions
    projections = 2 * s * d * (2 * d + 2 * spec.kv_dim)        # q and out (d x d), k and v (d x kv_dim)
    attention = 2 * 2 * s * context * d                        # Q K^T and P V over every query head
    mlp = 3 * 2 * s * d * spec.d_ff
    return spec.layers * (projections + attention + mlp) + 2 * s * d * spec.vocab


# ---------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    sizes: dict[str, Architecture]
    # size -> why it is written for accelerators only: on a CPU one step outlasts a case's time budget, so the
    # planner skips it there with this reason rather than leave it to time out
    accelerator_only: dict[str, str] = field(default_factory=dict)

    def architecture(self, size: str) -> Architecture:
        if size not in self.sizes:
            raise InvalidChoice(f"size for workload {self.name}", size, self.sizes)
        return self.sizes[size]

    def tokens_per_sample(self, size: str) -> int | None:
        """Sequence positions per sample, for tokens/s; None for non-sequence workloads."""
        spec = self.architecture(size)
        if isinstance(spec, LSTMClassifierSpec | LSTMLanguageModelSpec):
            return spec.timesteps
        if isinstance(spec, TransformerSpec | DecoderSpec):
            return spec.seq_len
        return None

    def flops_per_step(self, size: str, mode: str, batch_size: int) -> int:
        forward = forward_flops_per_sample(self.architecture(size)) * batch_size
        return forward * TRAIN_FLOPS_FACTOR if mode == "train" else forward

    def expected_params(self, size: str, lstm_second_bias: bool = False) -> int:
        return param_count(self.architecture(size), lstm_second_bias)


WORKLOADS: dict[str, Workload] = {
    "cnn": Workload(
        "cnn",
        "image classification: small conv net (tiny), ResNet-18 on CIFAR shapes (small), ResNet-50 v1.5 (standard)",
        {
            "tiny": ConvNetSpec(28, 28, 1, ((32, 3, True), (64, 3, True), (64, 3, False)), (64,), 10),
            "small": ResNetSpec(32, 32, 3, 10, "basic", (2, 2, 2, 2), (64, 128, 256, 512), "cifar"),
            "standard": ResNetSpec(224, 224, 3, 1000, "bottleneck", (3, 4, 6, 3), (64, 128, 256, 512), "imagenet"),
        },
    ),
    "rnn": Workload(
        "rnn",
        "LSTMs: 3-layer sequence classifier (tiny), 2-layer LSTM language models (small, standard)",
        {
            "tiny": LSTMClassifierSpec(32, 32, (64, 64, 64), 10),
            "small": LSTMLanguageModelSpec(vocab=10_000, embed=256, hidden=256, layers=2, timesteps=32),
            "standard": LSTMLanguageModelSpec(vocab=10_000, embed=1024, hidden=1024, layers=2, timesteps=64),
        },
    ),
    "transformer": Workload(
        "transformer",
        "pre-LN transformer encoder with per-token vocabulary head (standard = BERT-base shape)",
        {
            "tiny": TransformerSpec(vocab=1_000, seq_len=32, d_model=64, heads=4, d_ff=256, layers=2),
            "small": TransformerSpec(vocab=8_000, seq_len=128, d_model=256, heads=4, d_ff=1024, layers=4),
            "standard": TransformerSpec(vocab=30_522, seq_len=128, d_model=768, heads=12, d_ff=3072, layers=12),
        },
    ),
    "decoder": Workload(
        "decoder",
        "causal LM, Llama-shaped (RMSNorm, RoPE, grouped-query attention, SwiGLU, tied head): standard = "
        "Llama-3.2-1B shape",
        {
            "tiny": DecoderSpec(vocab=1_000, seq_len=32, d_model=64, heads=4, kv_heads=2, d_ff=192, layers=2,
                                max_context=512),
            "small": DecoderSpec(vocab=32_000, seq_len=256, d_model=768, heads=12, kv_heads=4, d_ff=3072,
                                 layers=12, max_context=2048),
            "standard": DecoderSpec(vocab=128_256, seq_len=1024, d_model=2048, heads=32, kv_heads=8, d_ff=8192,
                                    layers=16, max_context=8192, rope_theta=500_000.0),
        },
        accelerator_only={"standard": "the standard decoder (1.24B parameters, Llama-3.2-1B shape) is written for "
                                      "GPUs and TPUs: a CPU takes minutes per step"},
    ),
}

assert all(tuple(w.sizes) == SIZES for w in WORKLOADS.values())


AnyWorkload = Workload | PluginWorkload | BrokenWorkload


def plugin_workloads() -> tuple[dict[str, PluginWorkload | BrokenWorkload], list[str]]:
    """(name -> workload from entry points and registered files, one line per plugin refused).

    A plugin cannot take a built-in workload's name, nor one an earlier plugin took (installed entry
    points first, then files in the order they were given): the later one is refused, never silently
    preferred. ``register_file`` refuses such a file outright (``name_taken``)."""
    found: dict[str, PluginWorkload | BrokenWorkload] = {}
    refused = []
    for workload in entry_point_workloads() + file_workloads():
        clash = builtin_clash(workload.name) or (
            f"is already {found[workload.name].origin}'s" if workload.name in found else None)
        if clash:
            refused.append(f"{workload.name} from {workload.origin} is not registered: {workload.name!r} {clash}")
        else:
            found[workload.name] = workload
    return found, refused


def builtin_clash(name: str) -> str | None:
    if name in WORKLOADS or is_huggingface(name):
        return "is a built-in workload's name; a plugin adds workloads, it cannot replace one"
    return None


def name_taken(name: str) -> str | None:
    """Why a new plugin may not be called ``name`` (None if it may): a built-in's or a registered plugin's."""
    clash = builtin_clash(name)
    if clash:
        return clash
    known = plugin_workloads()[0].get(name)
    return f"is already {known.origin}'s" if known is not None else None


def names() -> list[str]:
    """Every workload name this process knows (built-in, then plugins); ``hf:<model>`` names are open-ended."""
    return list(WORKLOADS) + list(plugin_workloads()[0])


def get(name: str) -> AnyWorkload:
    """The workload called ``name``: built in, ``hf:<model>`` (``suites.huggingface``), or a plugin (by its
    Workload's name, or for a file by the attribute named on the command line: a worker may load a file its
    parent could not, or the reverse)."""
    if name in WORKLOADS:
        return WORKLOADS[name]
    if is_huggingface(name):
        return huggingface_workload(name)
    found = plugin_workloads()[0]
    if name in found:
        return found[name]
    for path, attribute in registered_files():
        if attribute == name:
            return load_file(path, attribute)
    raise InvalidChoice("workload", name, names() + ["hf:<model type or config.json>", "path/to/model.py:NAME"])


def is_builtin(name: str) -> bool:
    return name in WORKLOADS


def check_sizes(workload_names: list[str] | tuple[str, ...], sizes: list[str] | tuple[str, ...]) -> None:
    """Every requested size must belong to at least one requested workload (pairs a workload lacks are left
    out of the matrix); one line naming each workload's sizes otherwise."""
    known = {name: tuple(get(name).sizes) for name in workload_names}
    for size in sizes:
        if not any(has_size(name, size) for name in workload_names):
            offered = "; ".join(f"{name}: {', '.join(own) or 'none (it could not be loaded)'}"
                                for name, own in known.items())
            raise InvalidValue(f"no requested workload has size {size!r} ({offered})")


def has_size(name: str, size: str) -> bool:
    workload = get(name)
    return size in workload.sizes or isinstance(workload, BrokenWorkload)
