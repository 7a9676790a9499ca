"""Flax models built from the workload spec dataclasses in ``suites.workloads``.

Flax **linen** rather than nnx: linen modules are pure functions of a variable
tree, so ``model.apply`` drops straight into a pure train step under
``jax.jit`` with donated state and no graph splitting/merging per call; that is
the well-trodden fast path (and what the Flax examples benchmark).

Every module takes ``dtype`` (the compute dtype) and keeps its parameters in
float32 (``param_dtype``), so bf16/fp16 cases are mixed precision. All models
share the call signature ``model.apply(variables, inputs, train=...)``; only the
ResNet uses ``train`` (BatchNorm batch statistics vs running averages).

Conventions (see the workloads module): conv stacks are NHWC; ResNet convs have
no bias; the LSTM has ONE bias per gate (4*h*(i+h) + 4*h parameters) and its
input projection is one matmul over all timesteps, only the recurrent matmul
runs inside ``lax.scan``; attention is ``jax.nn.dot_product_attention`` with the implementation the backend
chose (``backends.jax.fast_paths``: cuDNN's flash kernel on NVIDIA GPUs in bf16/fp16
where JAX accepts it, else XLA, which fuses the softmax itself).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen.dtypes import promote_dtype

from tribench.backends.jax.decoder import Decoder
from tribench.suites.workloads import (
    Architecture,
    ConvNetSpec,
    DecoderSpec,
    LSTMClassifierSpec,
    LSTMLanguageModelSpec,
    ResNetSpec,
    TransformerSpec,
)

Dtype = Any
PARAM_DTYPE = jnp.float32
BATCH_NORM_MOMENTUM = 0.9
NORM_EPSILON = 1e-5


# ---------------------------------------------------------------- convolutional


class ConvNet(nn.Module):
    """Plain conv stack (valid padding, ReLU, optional 2x2 max-pool) then dense layers."""

    spec: ConvNetSpec
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        dense = partial(nn.Dense, dtype=self.dtype, param_dtype=PARAM_DTYPE)
        for filters, kernel, pool in self.spec.convs:
            x = nn.Conv(filters, (kernel, kernel), padding="VALID", dtype=self.dtype, param_dtype=PARAM_DTYPE)(x)
            x = nn.relu(x)
            if pool:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        for units in self.spec.dense:
            x = nn.relu(dense(units)(x))
        return dense(self.spec.classes)(x)


class ResidualBlock(nn.Module):
    """Basic (two 3x3) or v1.5 bottleneck (1x1, strided 3x3, 1x1) block with a projection when needed."""

    width: int
    out_channels: int
    stride: int
    bottleneck: bool
    conv: Callable[..., nn.Module]
    norm: Callable[..., nn.Module]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        strides = (self.stride, self.stride)
        if self.bottleneck:
            y = nn.relu(self.norm()(self.conv(self.width, (1, 1))(x)))
            y = nn.relu(self.norm()(self.conv(self.width, (3, 3), strides)(y)))
            y = self.norm()(self.conv(self.out_channels, (1, 1))(y))
        else:
            y = nn.relu(self.norm()(self.conv(self.width, (3, 3), strides)(x)))
            y = self.norm()(self.conv(self.out_channels, (3, 3))(y))
        if self.stride != 1 or x.shape[-1] != self.out_channels:
            x = self.norm()(self.conv(self.out_channels, (1, 1), strides)(x))
        return nn.relu(x + y)


class ResNet(nn.Module):
    """ResNet v1.5 with BatchNorm, bias-free 'SAME' convs, cifar or imagenet stem, global average pool."""

    spec: ResNetSpec
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        spec = self.spec
        conv = partial(nn.Conv, use_bias=False, padding="SAME", dtype=self.dtype, param_dtype=PARAM_DTYPE)
        norm = partial(
            nn.BatchNorm, use_running_average=not train, momentum=BATCH_NORM_MOMENTUM,
            epsilon=NORM_EPSILON, dtype=self.dtype, param_dtype=PARAM_DTYPE,
        )
        if spec.stem == "imagenet":
            x = nn.relu(norm()(conv(spec.stem_width, (7, 7), (2, 2))(x)))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        else:
            x = nn.relu(norm()(conv(spec.stem_width, (3, 3))(x)))
        for stage, (blocks, width) in enumerate(zip(spec.stage_blocks, spec.stage_widths, strict=True)):
            for index in range(blocks):
                stride = 2 if (stage > 0 and index == 0) else 1
                x = ResidualBlock(
                    width, width * spec.expansion, stride, spec.block == "bottleneck", conv, norm,
                )(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(spec.classes, dtype=self.dtype, param_dtype=PARAM_DTYPE)(x)


# ---------------------------------------------------------------- recurrent


def _lstm_bias_init(key: jax.Array, shape: tuple[int, ...], dtype: Dtype = PARAM_DTYPE) -> jax.Array:
    """Zero biases except the forget gate's, which starts at 1 (gate order i, f, g, o)."""
    hidden = shape[0] // 4
    return jnp.zeros(shape, dtype).at[hidden:2 * hidden].set(1)


@jax.jit
def lstm_recurrence(input_gates: jax.Array, w_recurrent: jax.Array) -> jax.Array:
    """Run the LSTM over time: [time, batch, 4h] input gates -> [time, batch, h] hidden states.

    A jitted function of its own so that, in eager mode, each layer's loop is one
    compiled op (as PyTorch's eager LSTM is one cuDNN call): differentiating a bare
    ``lax.scan`` outside jit re-traces and recompiles the loop on every step.
    Inside the jitted train step it is simply inlined.
    """
    hidden = w_recurrent.shape[0]

    def step(carry: tuple[jax.Array, jax.Array], x_gates: jax.Array):
        h, c = carry
        i, f, g, o = jnp.split(x_gates + h @ w_recurrent, 4, axis=-1)
        c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
        h = nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((input_gates.shape[1], hidden), input_gates.dtype)
    return jax.lax.scan(step, (zeros, zeros), input_gates)[1]


class LSTM(nn.Module):
    """One LSTM layer over [batch, time, features] -> [batch, time, hidden].

    Parameters: input kernel [in, 4h], recurrent kernel [h, 4h], one bias [4h]
    (gates i, f, g, o). The input projection of every timestep is one matmul
    before the loop; the loop body is the recurrent matmul plus gate math.
    """

    hidden: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        gates = 4 * self.hidden
        w_input = self.param("input_kernel", nn.initializers.lecun_normal(), (x.shape[-1], gates), PARAM_DTYPE)
        w_recurrent = self.param("recurrent_kernel", nn.initializers.orthogonal(), (self.hidden, gates), PARAM_DTYPE)
        bias = self.param("bias", _lstm_bias_init, (gates,), PARAM_DTYPE)
        x, w_input, w_recurrent, bias = promote_dtype(x, w_input, w_recurrent, bias, dtype=self.dtype)
        input_gates = jnp.einsum("bti,ig->tbg", x, w_input) + bias
        return lstm_recurrence(input_gates, w_recurrent).swapaxes(0, 1)


class LSTMClassifier(nn.Module):
    """Stacked LSTMs over float features; a dense classifier on the last step."""

    spec: LSTMClassifierSpec
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for hidden in self.spec.hidden:
            x = LSTM(hidden, self.dtype)(x)
        return nn.Dense(self.spec.classes, dtype=self.dtype, param_dtype=PARAM_DTYPE)(x[:, -1])


class LSTMLanguageModel(nn.Module):
    """Embedding -> stacked LSTMs -> vocabulary logits at every step."""

    spec: LSTMLanguageModelSpec
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, tokens: jax.Array, train: bool = False) -> jax.Array:
        spec = self.spec
        x = nn.Embed(spec.vocab, spec.embed, dtype=self.dtype, param_dtype=PARAM_DTYPE)(tokens)
        for _ in range(spec.layers):
            x = LSTM(spec.hidden, self.dtype)(x)
        return nn.Dense(spec.vocab, dtype=self.dtype, param_dtype=PARAM_DTYPE)(x)


# ---------------------------------------------------------------- transformer


def sinusoidal_positions(length: int, width: int) -> np.ndarray:
    """The fixed sin/cos position table of 'Attention is all you need', [length, width]."""
    positions = np.arange(length)[:, None]
    rates = np.exp(-np.log(10_000.0) * (np.arange(0, width, 2) / width))
    table = np.zeros((length, width), np.float32)
    table[:, 0::2] = np.sin(positions * rates)
    table[:, 1::2] = np.cos(positions * rates)[:, : width // 2]
    return table


class SelfAttention(nn.Module):
    """Multi-head self-attention: q, k, v and output projections with biases, ``jax.nn.dot_product_attention``."""

    heads: int
    dtype: Dtype = jnp.float32
    implementation: str = "xla"   # jax.nn.dot_product_attention's: "xla" or "cudnn" (backends.jax.fast_paths)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        width = x.shape[-1]
        project = partial(nn.DenseGeneral, (self.heads, width // self.heads), dtype=self.dtype,
                          param_dtype=PARAM_DTYPE)
        q, k, v = project(name="query")(x), project(name="key")(x), project(name="value")(x)
        attended = jax.nn.dot_product_attention(q, k, v, implementation=self.implementation)
        return nn.DenseGeneral(width, axis=(-2, -1), dtype=self.dtype, param_dtype=PARAM_DTYPE,
                               name="out")(attended)


class EncoderBlock(nn.Module):
    """Pre-LN block: x + MHA(LN(x)); x + FFN(LN(x)) with exact GELU."""

    spec: TransformerSpec
    dtype: Dtype = jnp.float32
    attention: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        norm = partial(nn.LayerNorm, epsilon=NORM_EPSILON, dtype=self.dtype, param_dtype=PARAM_DTYPE)
        dense = partial(nn.Dense, dtype=self.dtype, param_dtype=PARAM_DTYPE)
        x = x + SelfAttention(self.spec.heads, self.dtype, self.attention)(norm()(x))
        hidden = nn.gelu(dense(self.spec.d_ff)(norm()(x)), approximate=False)
        return x + dense(self.spec.d_model)(hidden)


class Transformer(nn.Module):
    """Token embedding + sinusoidal positions, pre-LN encoder blocks, final LN, per-token vocabulary head."""

    spec: TransformerSpec
    dtype: Dtype = jnp.float32
    attention: str = "xla"        # jax.nn.dot_product_attention's implementation (backends.jax.fast_paths)

    @nn.compact
    def __call__(self, tokens: jax.Array, train: bool = False) -> jax.Array:
        spec = self.spec
        x = nn.Embed(spec.vocab, spec.d_model, dtype=self.dtype, param_dtype=PARAM_DTYPE)(tokens)
        x = x + jnp.asarray(sinusoidal_positions(tokens.shape[1], spec.d_model), self.dtype)
        for _ in range(spec.layers):
            x = EncoderBlock(spec, self.dtype, self.attention)(x)
        x = nn.LayerNorm(epsilon=NORM_EPSILON, dtype=self.dtype, param_dtype=PARAM_DTYPE)(x)
        return nn.Dense(spec.vocab, dtype=self.dtype, param_dtype=PARAM_DTYPE)(x)


# ---------------------------------------------------------------- factory

_MODELS: dict[type, type[nn.Module]] = {
    DecoderSpec: Decoder,
    ConvNetSpec: ConvNet,
    ResNetSpec: ResNet,
    LSTMClassifierSpec: LSTMClassifier,
    LSTMLanguageModelSpec: LSTMLanguageModel,
    TransformerSpec: Transformer,
}


def build_model(spec: Architecture, dtype: Dtype = jnp.float32, attention: str = "xla") -> nn.Module:
    """The Flax module for ``spec`` computing in ``dtype`` (parameters stay float32); a transformer's
    attention runs ``jax.nn.dot_product_attention`` with ``attention`` as its implementation."""
    model = _MODELS.get(type(spec))
    if model is None:
        raise TypeError(f"no JAX model for architecture {spec!r}")
    return model(spec, dtype, attention) if model in (Transformer, Decoder) else model(spec, dtype)


def input_shape(spec: Architecture, batch_size: int) -> tuple[int, ...]:
    """Shape of one input batch: NHWC images, [batch, time, features] floats or [batch, length] tokens."""
    if isinstance(spec, ConvNetSpec | ResNetSpec):
        return (batch_size, spec.height, spec.width, spec.channels)
    if isinstance(spec, LSTMClassifierSpec):
        return (batch_size, spec.timesteps, spec.features)
    if isinstance(spec, LSTMLanguageModelSpec):
        return (batch_size, spec.timesteps)
    if isinstance(spec, TransformerSpec | DecoderSpec):
        return (batch_size, spec.seq_len)
    raise TypeError(f"no JAX model for architecture {spec!r}")


def takes_tokens(spec: Architecture) -> bool:
    """True where the model input is integer tokens rather than floats."""
    return isinstance(spec, LSTMLanguageModelSpec | TransformerSpec | DecoderSpec)
