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

from tribench.backends.rope import rope_tables
from tribench.suites.workloads import DecoderSpec

Dtype = Any
PARAM_DTYPE = jnp.float32
EMBEDDING_STD = 0.02  # Llama's initializer range: the tied head's logits start near uniform (loss ~ ln vocab)


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


# ---------------------------------------------------------------- generation: a preallocated KV cache


def new_cache(spec: DecoderSpec, batch: int, length: int, dtype: Any) -> dict[str, jax.Array]:
    """Keys and values of every layer for ``length`` positions: [layers, batch, length, kv_heads, head_dim]."""
    shape = (spec.layers, batch, length, spec.kv_heads, spec.head_dim)
    return {"keys": jnp.zeros(shape, dtype), "values": jnp.zeros(shape, dtype)}


def _rms_norm(x: jax.Array, scale: jax.Array, eps: float, dtype: Any) -> jax.Array:
    """Flax's RMSNorm: the mean square in float32, the scale applied, the result in ``dtype``."""
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return (normed * scale.astype(jnp.float32)).astype(dtype)


def _dense(block: Any, name: str, x: jax.Array, dtype: Any) -> jax.Array:
    return x @ block[name]["kernel"].astype(dtype)


def forward_cached(spec: DecoderSpec, params: Any, tokens: jax.Array, cache: dict[str, jax.Array],
                   start: jax.Array, tables: tuple[jax.Array, jax.Array],
                   dtype: Any = jnp.float32) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(logits [batch, vocab] of the last of ``tokens`` [batch, length] placed from position ``start`` on, the
    cache with their keys and values written). The Decoder module's function on its own parameter tree;
    attention runs over the whole cache masked to the positions written so far (fixed shapes under jit:
    one compiled decode step serves every position). ``tables``: RoPE's cos and sin for the cache's positions
    (``rope_tables``), made once by the caller rather than at every step."""
    batch, length = tokens.shape
    positions = start + jnp.arange(length)
    cos, sin = tables[0][positions], tables[1][positions]
    embedding = params["embed"]["embedding"]
    x = embedding[tokens].astype(dtype)
    mask = jnp.arange(cache["keys"].shape[2])[None, :] <= positions[:, None]        # [length, cache]
    keys_all, values_all = cache["keys"], cache["values"]
    for index in range(spec.layers):
        block = params[f"block_{index}"]
        dense = partial(_dense, block, dtype=dtype)
        hidden = _rms_norm(x, block["attn_norm"]["scale"], spec.norm_eps, dtype)
        q = rotate(dense("q", hidden).reshape(batch, length, spec.heads, spec.head_dim), cos, sin)
        k = rotate(dense("k", hidden).reshape(batch, length, spec.kv_heads, spec.head_dim), cos, sin)
        v = dense("v", hidden).reshape(batch, length, spec.kv_heads, spec.head_dim)
        keys = jax.lax.dynamic_update_slice(keys_all[index], k.astype(keys_all.dtype), (0, start, 0, 0))
        values = jax.lax.dynamic_update_slice(values_all[index], v.astype(values_all.dtype), (0, start, 0, 0))
        keys_all, values_all = keys_all.at[index].set(keys), values_all.at[index].set(values)
        attended = jax.nn.dot_product_attention(q, keys.astype(dtype), values.astype(dtype),
                                                mask=mask[None, None, :, :])
        x = x + dense("o", attended.reshape(batch, length, spec.d_model))
        hidden = _rms_norm(x, block["mlp_norm"]["scale"], spec.norm_eps, dtype)
        x = x + dense("down", nn.silu(dense("gate", hidden)) * dense("up", hidden))
    x = _rms_norm(x[:, -1], params["norm"]["scale"], spec.norm_eps, dtype)
    return x @ embedding.T.astype(dtype), {"keys": keys_all, "values": values_all}
