"""The decoder workload (``suites.workloads.DecoderSpec``) in Flax: a Llama-shaped causal language model.

Parameters (what a test loads into every framework): ``embed/embedding`` [vocab, d]; per block
``block_i/attn_norm/scale``, ``q/kernel`` [d, d], ``k/kernel`` and ``v/kernel`` [d, kv_dim], ``o/kernel``
[d, d], ``mlp_norm/scale``, ``gate/kernel`` and ``up/kernel`` [d, d_ff], ``down/kernel`` [d_ff, d];
``norm/scale``. Kernels are [in, out] (PyTorch's Linear weights transposed); the head is the embedding
(``Embed.attend``, tied). Attention is ``jax.nn.dot_product_attention`` with ``is_causal`` and fewer
key/value heads than query heads (grouped-query attention, no copies).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from tribench.suites.workloads import DecoderSpec

Dtype = Any
PARAM_DTYPE = jnp.float32
EMBEDDING_STD = 0.02  # Llama's initializer range: the tied head's logits start near uniform (loss ~ ln vocab)


def rope_tables(spec: DecoderSpec, length: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [length, head_dim] of the rotary embedding, "rotate half" layout, float32."""
    half = spec.head_dim // 2
    inverse = spec.rope_theta ** (-np.arange(half, dtype=np.float64) / half)
    angles = np.arange(length, dtype=np.float64)[:, None] * inverse[None, :]
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def rotate(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """RoPE on ``x`` [batch, length, heads, head_dim] with tables [length, head_dim]."""
    first, second = jnp.split(x, 2, axis=-1)
    rotated = jnp.concatenate([-second, first], axis=-1)
    return x * cos[:, None, :].astype(x.dtype) + rotated * sin[:, None, :].astype(x.dtype)


class DecoderBlock(nn.Module):
    """x + GQA(RMSNorm(x)) with RoPE; x + SwiGLU(RMSNorm(x)). No biases."""

    spec: DecoderSpec
    dtype: Dtype = jnp.float32
    implementation: str = "xla"   # jax.nn.dot_product_attention's (backends.jax.fast_paths)

    @nn.compact
    def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
        spec = self.spec
        dense = partial(nn.Dense, use_bias=False, dtype=self.dtype, param_dtype=PARAM_DTYPE)
        norm = partial(nn.RMSNorm, epsilon=spec.norm_eps, dtype=self.dtype, param_dtype=PARAM_DTYPE)
        batch, length, _ = x.shape
        hidden = norm(name="attn_norm")(x)
        q = dense(spec.d_model, name="q")(hidden).reshape(batch, length, spec.heads, spec.head_dim)
        k = dense(spec.kv_dim, name="k")(hidden).reshape(batch, length, spec.kv_heads, spec.head_dim)
        v = dense(spec.kv_dim, name="v")(hidden).reshape(batch, length, spec.kv_heads, spec.head_dim)
        attended = jax.nn.dot_product_attention(rotate(q, cos, sin), rotate(k, cos, sin), v, is_causal=True,
                                                implementation=self.implementation)
        x = x + dense(spec.d_model, name="o")(attended.reshape(batch, length, spec.d_model))
        hidden = norm(name="mlp_norm")(x)
        gated = nn.silu(dense(spec.d_ff, name="gate")(hidden)) * dense(spec.d_ff, name="up")(hidden)
        return x + dense(spec.d_model, name="down")(gated)


class Decoder(nn.Module):
    """Embedding, decoder blocks, final RMSNorm, head tied to the embedding; logits [batch, length, vocab]."""

    spec: DecoderSpec
    dtype: Dtype = jnp.float32
    attention: str = "xla"

    @nn.compact
    def __call__(self, tokens: jax.Array, train: bool = False) -> jax.Array:
        spec = self.spec
        embed = nn.Embed(spec.vocab, spec.d_model, dtype=self.dtype, param_dtype=PARAM_DTYPE,
                         embedding_init=nn.initializers.normal(EMBEDDING_STD), name="embed")
        cos, sin = (jnp.asarray(table[: tokens.shape[1]]) for table in rope_tables(spec, tokens.shape[1]))
        x = embed(tokens)
        for index in range(spec.layers):
            x = DecoderBlock(spec, self.dtype, self.attention, name=f"block_{index}")(x, cos, sin)
        x = nn.RMSNorm(epsilon=spec.norm_eps, dtype=self.dtype, param_dtype=PARAM_DTYPE, name="norm")(x)
        return embed.attend(x)
