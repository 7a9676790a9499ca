"""The decoder workload (``suites.workloads.DecoderSpec``) in Keras 3 on TensorFlow: a Llama-shaped causal LM.

A subclassed ``keras.Model`` (the head reads the embedding's own matrix: tied weights, one variable).
Weights (what a test loads into every framework): ``embed`` [vocab, d]; per block ``attn_norm`` and
``mlp_norm`` scales [d], Dense kernels ``q`` [d, d], ``k`` and ``v`` [d, kv_dim], ``o`` [d, d], ``gate`` and
``up`` [d, d_ff], ``down`` [d_ff, d] (kernels are [in, out]); ``norm`` [d]. Attention is
``keras.ops.dot_product_attention`` with ``is_causal`` and fewer key/value heads than query heads
(grouped-query attention). Layers read the global dtype policy; the logits are cast to float32.
"""

from __future__ import annotations

import os

from tribench.backends.tensorflow.devices import require_keras_on_tensorflow

require_keras_on_tensorflow(os.environ)

import keras  # noqa: E402  (Keras reads KERAS_BACKEND at import)
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

from tribench.backends.rope import rope_tables  # noqa: E402
from tribench.suites.workloads import DecoderSpec  # noqa: E402

EMBEDDING_STD = 0.02  # Llama's initializer range: the tied head's logits start near uniform (loss ~ ln vocab)


def rotate(x, cos, sin):
    """RoPE on ``x`` [batch, length, heads, head_dim] with tables [length, head_dim]."""
    first, second = ops.split(x, 2, axis=-1)
    rotated = ops.concatenate([-second, first], axis=-1)
    return x * ops.cast(cos[:, None, :], x.dtype) + rotated * ops.cast(sin[:, None, :], x.dtype)


class DecoderBlock(layers.Layer):
    """x + GQA(RMSNorm(x)) with RoPE; x + SwiGLU(RMSNorm(x)). No biases."""

    def __init__(self, spec: DecoderSpec, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        dense = lambda units, name: layers.Dense(units, use_bias=False, name=name)  # noqa: E731
        self.attn_norm = layers.RMSNormalization(epsilon=spec.norm_eps, name="attn_norm")
        self.q, self.k = dense(spec.d_model, "q"), dense(spec.kv_dim, "k")
        self.v, self.o = dense(spec.kv_dim, "v"), dense(spec.d_model, "o")
        self.mlp_norm = layers.RMSNormalization(epsilon=spec.norm_eps, name="mlp_norm")
        self.gate, self.up = dense(spec.d_ff, "gate"), dense(spec.d_ff, "up")
        self.down = dense(spec.d_model, "down")

    def call(self, x, cos, sin):
        spec = self.spec
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        hidden = self.attn_norm(x)
        q = ops.reshape(self.q(hidden), (batch, length, spec.heads, spec.head_dim))
        k = ops.reshape(self.k(hidden), (batch, length, spec.kv_heads, spec.head_dim))
        v = ops.reshape(self.v(hidden), (batch, length, spec.kv_heads, spec.head_dim))
        attended = ops.dot_product_attention(rotate(q, cos, sin), rotate(k, cos, sin), v, is_causal=True)
        x = x + self.o(ops.reshape(attended, (batch, length, spec.d_model)))
        hidden = self.mlp_norm(x)
        return x + self.down(ops.silu(self.gate(hidden)) * self.up(hidden))


class Decoder(keras.Model):
    """Embedding, decoder blocks, final RMSNorm, head tied to the embedding; float32 logits [batch, length, vocab]."""

    def __init__(self, spec: DecoderSpec, **kwargs) -> None:
        super().__init__(name="decoder", **kwargs)
        if not spec.tie_embeddings:
            raise ValueError("the Keras decoder ties its head to the embedding (DecoderSpec.tie_embeddings)")
        self.spec = spec
        self.embed = layers.Embedding(spec.vocab, spec.d_model, name="embed",
                                      embeddings_initializer=keras.initializers.RandomNormal(stddev=EMBEDDING_STD))
        self.blocks = [DecoderBlock(spec, name=f"block_{index}") for index in range(spec.layers)]
        self.norm = layers.RMSNormalization(epsilon=spec.norm_eps, name="norm")
        self._cos, self._sin = rope_tables(spec, spec.max_context)

    def call(self, tokens):
        length = ops.shape(tokens)[1]
        cos, sin = ops.convert_to_tensor(self._cos)[:length], ops.convert_to_tensor(self._sin)[:length]
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, cos, sin)
        x = self.norm(x)
        logits = ops.matmul(x, ops.transpose(ops.cast(self.embed.embeddings, x.dtype)))
        return ops.cast(logits, "float32")


def build_decoder(spec: DecoderSpec) -> keras.Model:
    """The decoder, built (its variables exist) for sequences of ``spec.seq_len`` tokens."""
    model = Decoder(spec)
    model(np.zeros((1, spec.seq_len), dtype=np.int32))
    return model


# ---------------------------------------------------------------- generation: a preallocated KV cache


def new_cache(spec: DecoderSpec, batch: int, length: int, dtype: str):
    """Keys and values of every layer for ``length`` positions: per layer [length, batch, kv_heads, head_dim]
    (positions first: ``tensor_scatter_nd_update`` writes whole positions)."""
    shape = (length, batch, spec.kv_heads, spec.head_dim)
    return ([ops.zeros(shape, dtype) for _ in range(spec.layers)],
            [ops.zeros(shape, dtype) for _ in range(spec.layers)])


def _write(cache, update, positions):
    """``cache`` [length, batch, kv, hd] with ``update`` [batch, L, kv, hd] written at ``positions`` [L]."""
    import tensorflow as tf

    return tf.tensor_scatter_nd_update(cache, positions[:, None], ops.cast(ops.transpose(update, (1, 0, 2, 3)),
                                                                             cache.dtype))


def forward_cached(model: Decoder, tokens, keys: list, values: list, start):
    """(float32 logits [batch, vocab] of the last of ``tokens`` [batch, length] placed from position ``start``
    on, the per-layer keys and values with theirs written). The model's own layers and weights; attention
    over the whole cache masked to the positions written so far (fixed shapes for tf.function / XLA)."""
    spec = model.spec
    batch, length = ops.shape(tokens)[0], ops.shape(tokens)[1]
    positions = start + ops.arange(length)
    cache_length = ops.shape(keys[0])[0]
    cos = ops.take(ops.convert_to_tensor(model._cos), positions, axis=0)
    sin = ops.take(ops.convert_to_tensor(model._sin), positions, axis=0)
    mask = ops.expand_dims(ops.arange(cache_length), 0) <= ops.expand_dims(positions, 1)   # [length, cache]
    x = model.embed(tokens)
    new_keys, new_values = [], []
    for index, block in enumerate(model.blocks):
        hidden = block.attn_norm(x)
        q = rotate(ops.reshape(block.q(hidden), (batch, length, spec.heads, spec.head_dim)), cos, sin)
        k = rotate(ops.reshape(block.k(hidden), (batch, length, spec.kv_heads, spec.head_dim)), cos, sin)
        v = ops.reshape(block.v(hidden), (batch, length, spec.kv_heads, spec.head_dim))
        layer_keys, layer_values = _write(keys[index], k, positions), _write(values[index], v, positions)
        new_keys.append(layer_keys)
        new_values.append(layer_values)
        attended = ops.dot_product_attention(
            q, ops.cast(ops.transpose(layer_keys, (1, 0, 2, 3)), q.dtype),
            ops.cast(ops.transpose(layer_values, (1, 0, 2, 3)), q.dtype), mask=mask[None, None, :, :])
        x = x + block.o(ops.reshape(attended, (batch, length, spec.d_model)))
        hidden = block.mlp_norm(x)
        x = x + block.down(ops.silu(block.gate(hidden)) * block.up(hidden))
    x = model.norm(x[:, -1])
    logits = ops.matmul(x, ops.transpose(ops.cast(model.embed.embeddings, x.dtype)))
    return ops.cast(logits, "float32"), new_keys, new_values
