"""Keras 3 models (TensorFlow backend) built from the workload spec dataclasses.

Every builder takes the framework-neutral spec from ``suites.workloads`` and
returns an uncompiled functional ``keras.Model`` whose trainable parameters
equal ``workloads.param_count(spec)``. Layers read the global dtype policy at
construction, so the caller sets the mixed-precision policy first; every
model ends in a float32 ``Activation`` so logits (and the loss) stay float32
under ``mixed_float16`` / ``mixed_bfloat16``, as the Keras guide prescribes.

Images are NHWC (TensorFlow's natural layout). Normalisation constants follow
the reference implementations the other backends use (BatchNorm momentum 0.9
and epsilon 1e-5 as in torchvision's ResNet, LayerNorm epsilon 1e-5).
"""

from __future__ import annotations

import os

from tribench.backends.tensorflow.devices import require_keras_on_tensorflow

require_keras_on_tensorflow(os.environ)

import keras  # noqa: E402  (Keras reads KERAS_BACKEND at import)
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

from tribench.backends.tensorflow.decoder import build_decoder  # noqa: E402
from tribench.suites.workloads import (  # noqa: E402
    Architecture,
    ConvNetSpec,
    DecoderSpec,
    LSTMClassifierSpec,
    LSTMLanguageModelSpec,
    ResNetSpec,
    TransformerSpec,
)

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
LN_EPSILON = 1e-5


def build_model(spec: Architecture, *, xla: bool = False) -> keras.Model:
    """The Keras model for ``spec`` (any size of any workload).

    ``xla``: the model will run under ``jit_compile=True``. cuDNN's LSTM kernel cannot be
    XLA-compiled, so the LSTMs then use Keras's generic loop (``use_cudnn=False``), which
    is what XLA compiles; otherwise they keep the default arguments and take cuDNN on GPU.
    """
    builders = {
        DecoderSpec: build_decoder,
        ConvNetSpec: build_convnet,
        ResNetSpec: build_resnet,
        LSTMClassifierSpec: build_lstm_classifier,
        LSTMLanguageModelSpec: build_lstm_language_model,
        TransformerSpec: build_transformer,
    }
    builder = builders.get(type(spec))
    if builder is None:
        raise TypeError(f"no TensorFlow model for architecture {spec!r}")
    if isinstance(spec, LSTMClassifierSpec | LSTMLanguageModelSpec):
        return builder(spec, use_cudnn=False if xla else "auto")
    return builder(spec)


def input_signature(spec: Architecture) -> tuple[tuple[int, ...], str]:
    """(per-sample input shape, dtype) the model of ``spec`` takes."""
    if isinstance(spec, ConvNetSpec | ResNetSpec):
        return (spec.height, spec.width, spec.channels), "float32"
    if isinstance(spec, LSTMClassifierSpec):
        return (spec.timesteps, spec.features), "float32"
    if isinstance(spec, LSTMLanguageModelSpec):
        return (spec.timesteps,), "int32"
    if isinstance(spec, TransformerSpec | DecoderSpec):
        return (spec.seq_len,), "int32"
    raise TypeError(f"unknown architecture {spec!r}")


def _float32_logits(x):
    """Keep the logits in float32 whatever the policy (no-op under float32)."""
    return layers.Activation("linear", dtype="float32", name="logits")(x)


def _input(spec: Architecture) -> keras.KerasTensor:
    shape, dtype = input_signature(spec)
    return keras.Input(shape=shape, dtype=dtype, name="inputs")


# ---------------------------------------------------------------- CNNs


def build_convnet(spec: ConvNetSpec) -> keras.Model:
    """Valid-padded ReLU convs (2x2 max-pool where asked), flatten, ReLU dense layers, classifier."""
    inputs = _input(spec)
    x = inputs
    for filters, kernel, pool in spec.convs:
        x = layers.Conv2D(filters, kernel, activation="relu")(x)
        if pool:
            x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    for units in spec.dense:
        x = layers.Dense(units, activation="relu")(x)
    x = layers.Dense(spec.classes)(x)
    return keras.Model(inputs, _float32_logits(x), name="convnet")


def _conv_bn(x, filters: int, kernel: int, stride: int, relu: bool):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)(x)
    return layers.ReLU()(x) if relu else x


def _residual_block(x, width: int, out_channels: int, stride: int, block: str):
    """Basic (two 3x3) or v1.5 bottleneck (1x1, strided 3x3, 1x1) block with projection shortcut."""
    shortcut = x
    if block == "basic":
        y = _conv_bn(x, width, 3, stride, relu=True)
        y = _conv_bn(y, out_channels, 3, 1, relu=False)
    else:
        y = _conv_bn(x, width, 1, 1, relu=True)
        y = _conv_bn(y, width, 3, stride, relu=True)
        y = _conv_bn(y, out_channels, 1, 1, relu=False)
    if stride != 1 or x.shape[-1] != out_channels:
        shortcut = _conv_bn(x, out_channels, 1, stride, relu=False)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def build_resnet(spec: ResNetSpec) -> keras.Model:
    """ResNet v1.5 with the ImageNet (7x7/2 + max-pool) or CIFAR (3x3/1) stem."""
    inputs = _input(spec)
    if spec.stem == "imagenet":
        x = _conv_bn(inputs, spec.stem_width, 7, 2, relu=True)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    else:
        x = _conv_bn(inputs, spec.stem_width, 3, 1, relu=True)
    for stage, (blocks, width) in enumerate(zip(spec.stage_blocks, spec.stage_widths, strict=True)):
        for index in range(blocks):
            stride = 2 if (stage > 0 and index == 0) else 1
            x = _residual_block(x, width, width * spec.expansion, stride, spec.block)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(spec.classes)(x)
    return keras.Model(inputs, _float32_logits(x), name="resnet")


# ---------------------------------------------------------------- RNNs


def build_lstm_classifier(spec: LSTMClassifierSpec, use_cudnn: bool | str = "auto") -> keras.Model:
    """Stacked LSTMs (default arguments, so cuDNN-eligible on GPU); dense classifier on the last step."""
    inputs = _input(spec)
    x = inputs
    for depth, hidden in enumerate(spec.hidden):
        last = depth == len(spec.hidden) - 1
        x = layers.LSTM(hidden, return_sequences=not last, use_cudnn=use_cudnn)(x)
    x = layers.Dense(spec.classes)(x)
    return keras.Model(inputs, _float32_logits(x), name="lstm_classifier")


def build_lstm_language_model(spec: LSTMLanguageModelSpec, use_cudnn: bool | str = "auto") -> keras.Model:
    """Embedding, stacked LSTMs returning every step, dense over the vocabulary per step."""
    inputs = _input(spec)
    x = layers.Embedding(spec.vocab, spec.embed)(inputs)
    for _ in range(spec.layers):
        x = layers.LSTM(spec.hidden, return_sequences=True, use_cudnn=use_cudnn)(x)
    x = layers.Dense(spec.vocab)(x)
    return keras.Model(inputs, _float32_logits(x), name="lstm_language_model")


# ---------------------------------------------------------------- Transformer


def sinusoidal_table(length: int, d_model: int) -> np.ndarray:
    """The fixed sin/cos position table of "Attention is all you need", shape [length, d_model]."""
    positions = np.arange(length, dtype=np.float64)[:, None]
    rates = np.exp(-np.log(10_000.0) * (np.arange(0, d_model, 2, dtype=np.float64) / d_model))
    table = np.zeros((length, d_model), dtype=np.float64)
    table[:, 0::2] = np.sin(positions * rates)
    table[:, 1::2] = np.cos(positions * rates[: d_model // 2])
    return table.astype(np.float32)


@keras.saving.register_keras_serializable(package="tribench")
class SinusoidalPositions(layers.Layer):
    """Adds the constant sinusoidal position table (no trainable parameters)."""

    def __init__(self, length: int, d_model: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.length, self.d_model = length, d_model
        self._table = sinusoidal_table(length, d_model)

    def call(self, x):
        return x + ops.cast(self._table, x.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "length": self.length, "d_model": self.d_model}


def _encoder_block(x, spec: TransformerSpec):
    """Pre-LN block: x + MHA(LN(x)); x + FFN(LN(x)) with an exact GELU."""
    h = layers.LayerNormalization(epsilon=LN_EPSILON)(x)
    h = layers.MultiHeadAttention(spec.heads, key_dim=spec.d_model // spec.heads)(h, h)
    x = layers.Add()([x, h])
    h = layers.LayerNormalization(epsilon=LN_EPSILON)(x)
    h = layers.Dense(spec.d_ff, activation="gelu")(h)
    h = layers.Dense(spec.d_model)(h)
    return layers.Add()([x, h])


def build_transformer(spec: TransformerSpec) -> keras.Model:
    """Token embedding + sinusoidal positions, pre-LN encoder blocks, final LN, per-token head."""
    if spec.d_model % spec.heads:
        raise ValueError(f"d_model {spec.d_model} is not divisible by {spec.heads} heads")
    inputs = _input(spec)
    x = layers.Embedding(spec.vocab, spec.d_model)(inputs)
    x = SinusoidalPositions(spec.seq_len, spec.d_model)(x)
    for _ in range(spec.layers):
        x = _encoder_block(x, spec)
    x = layers.LayerNormalization(epsilon=LN_EPSILON)(x)
    x = layers.Dense(spec.vocab)(x)
    return keras.Model(inputs, _float32_logits(x), name="transformer")
