"""The decoder workload (``suites.workloads.DecoderSpec``) in Paddle: a Llama-shaped causal language model, a
port of ``backends/torch/decoder.py`` (same layers, parameters, names and outputs).

Weights (the names match PyTorch's ``state_dict``): ``embed.weight`` [vocab, d]; per block
``attn_norm.weight``, ``q.weight`` [d, d], ``k.weight`` and ``v.weight`` [d, kv_dim], ``o.weight`` [d, d],
``mlp_norm.weight``, ``gate.weight`` and ``up.weight`` [d, d_ff], ``down.weight`` [d_ff, d]; ``norm.weight``.
``paddle.nn.Linear`` stores its weight as [in, out], the transpose of PyTorch's [out, in]; everything else has
PyTorch's shape. The head is the embedding, transposed (tied).

Paddle 3.3 has no ``nn.RMSNorm`` layer, and ``nn.functional.rms_norm`` has no CPU kernel ("kernel rms_norm is
not registered"), so ``RMSNorm`` below is the composite form with one weight, as ``torch.nn.RMSNorm`` computes.

Attention is ``paddle.nn.functional.scaled_dot_product_attention``, whose layout is [batch, length, heads,
head_dim] (PyTorch's is [batch, heads, length, head_dim]), so no transposes are needed around it. It takes
``is_causal`` and fewer key/value heads than query heads (``enable_gqa``, on by default); on the CPU it runs
its "math" path, which copies each key/value head to its group of query heads (expand, the grouping of
``repeat_interleave``) and masks the causal upper triangle additively with -1e4 (not -inf); on a GPU it may
pick flash attention, which groups the heads without copies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import paddle
import paddle.nn.functional as F
from paddle import nn

from tribench.backends import rope
from tribench.suites.workloads import DecoderSpec

if TYPE_CHECKING:
    from paddle._typing import PlaceLike

EMBEDDING_STD = 0.02  # Llama's initializer range: the tied head's logits start near uniform (loss ~ ln vocab)


def rope_tables(spec: DecoderSpec, length: int) -> tuple[paddle.Tensor, paddle.Tensor]:
    """cos and sin [length, head_dim] of the rotary embedding (``backends.rope``), as float32 tensors."""
    cos, sin = rope.rope_tables(spec, length)
    return paddle.to_tensor(cos), paddle.to_tensor(sin)


def _cast(x: paddle.Tensor, dtype: paddle.dtype) -> paddle.Tensor:
    return x if x.dtype == dtype else x.astype(dtype)


def rotate(x: paddle.Tensor, cos: paddle.Tensor, sin: paddle.Tensor) -> paddle.Tensor:
    """Apply RoPE to ``x`` [batch, length, heads, head_dim] with tables [length, head_dim] ("rotate half")."""
    first, second = paddle.chunk(x, 2, axis=-1)
    rotated = paddle.concat([-second, first], axis=-1)
    cos, sin = _cast(cos, x.dtype).unsqueeze(1), _cast(sin, x.dtype).unsqueeze(1)  # broadcast over heads
    return x * cos + rotated * sin


class RMSNorm(nn.Layer):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last axis; ``weight`` starts at ones."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = self.create_parameter([size], default_initializer=nn.initializer.Constant(1.0))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * paddle.rsqrt(x.square().mean(axis=-1, keepdim=True) + self.eps) * self.weight


def _linear(inputs: int, outputs: int) -> nn.Linear:
    return nn.Linear(inputs, outputs, bias_attr=False)


class DecoderBlock(nn.Layer):
    """x + GQA(RMSNorm(x)) with RoPE; x + SwiGLU(RMSNorm(x)). No biases."""

    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__()
        d = spec.d_model
        self.heads, self.kv_heads, self.head_dim = spec.heads, spec.kv_heads, spec.head_dim
        self.attn_norm = RMSNorm(d, spec.norm_eps)
        self.q = _linear(d, d)
        self.k = _linear(d, spec.kv_dim)
        self.v = _linear(d, spec.kv_dim)
        self.o = _linear(d, d)
        self.mlp_norm = RMSNorm(d, spec.norm_eps)
        self.gate = _linear(d, spec.d_ff)
        self.up = _linear(d, spec.d_ff)
        self.down = _linear(spec.d_ff, d)

    def _heads(self, x: paddle.Tensor, count: int) -> paddle.Tensor:
        """[batch, length, count * head_dim] -> [batch, length, count, head_dim] (SDPA's layout)."""
        batch, length = x.shape[0], x.shape[1]
        return x.reshape([batch, length, count, self.head_dim])

    def qkv(self, x: paddle.Tensor, cos: paddle.Tensor,
            sin: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        """Rotated queries and keys, and values, each [batch, length, heads or kv_heads, head_dim]."""
        q = rotate(self._heads(self.q(x), self.heads), cos, sin)
        k = rotate(self._heads(self.k(x), self.kv_heads), cos, sin)
        return q, k, self._heads(self.v(x), self.kv_heads)

    def project(self, attended: paddle.Tensor) -> paddle.Tensor:
        """The output projection of attention's [batch, length, heads, head_dim]."""
        batch, length = attended.shape[0], attended.shape[1]
        return self.o(attended.reshape([batch, length, self.heads * self.head_dim]))

    def mlp(self, x: paddle.Tensor) -> paddle.Tensor:
        hidden = self.mlp_norm(x)
        return self.down(F.silu(self.gate(hidden)) * self.up(hidden))

    def forward(self, x: paddle.Tensor, cos: paddle.Tensor, sin: paddle.Tensor) -> paddle.Tensor:
        q, k, v = self.qkv(self.attn_norm(x), cos, sin)
        x = x + self.project(F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
        return x + self.mlp(x)


class Decoder(nn.Layer):
    """Embedding (N(0, 0.02)), decoder blocks, final RMSNorm, head tied to the embedding; logits
    [batch, length, vocab]. The RoPE tables for ``max_context`` positions are non-persistable buffers."""

    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__()
        if not spec.tie_embeddings:
            raise ValueError("the paddle decoder ties its head to the embedding (DecoderSpec.tie_embeddings)")
        init = nn.initializer.Normal(mean=0.0, std=EMBEDDING_STD)
        self.embed = nn.Embedding(spec.vocab, spec.d_model, weight_attr=paddle.ParamAttr(initializer=init))
        self.blocks = nn.LayerList([DecoderBlock(spec) for _ in range(spec.layers)])
        self.norm = RMSNorm(spec.d_model, spec.norm_eps)
        cos, sin = rope_tables(spec, spec.max_context)
        self.register_buffer("cos", cos, persistable=False)
        self.register_buffer("sin", sin, persistable=False)

    def head(self, x: paddle.Tensor) -> paddle.Tensor:
        """Vocabulary logits: F.linear with the transposed embedding, as one matmul that reads it transposed."""
        return paddle.matmul(self.norm(x), self.embed.weight, transpose_y=True)

    def forward(self, tokens: paddle.Tensor) -> paddle.Tensor:
        length = tokens.shape[1]
        cos, sin = self.cos[:length], self.sin[:length]
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.head(x)


# ---------------------------------------------------------------- generation: a preallocated KV cache


class KVCache:
    """Keys and values of every layer, preallocated for ``length`` positions: [layers, batch, length, kv_heads,
    head_dim] each (SDPA's layout per layer; PyTorch's cache has heads before positions), in ``dtype``, on
    ``place`` (None: the current default device). ``nbytes`` is what the cache holds (both tensors)."""

    def __init__(self, spec: DecoderSpec, batch: int, length: int, dtype: paddle.dtype,
                 place: PlaceLike | None) -> None:
        shape = [spec.layers, batch, length, spec.kv_heads, spec.head_dim]
        self.keys = paddle.zeros(shape, dtype=dtype, device=place)
        self.values = paddle.zeros(shape, dtype=dtype, device=place)
        self.length = length

    @property
    def nbytes(self) -> int:
        return 2 * int(self.keys.numel()) * self.keys.element_size()


def forward_cached(model: Decoder, tokens: paddle.Tensor, cache: KVCache, start: int | paddle.Tensor,
                   static: bool) -> paddle.Tensor:
    """Logits [batch, vocab] of the last of ``tokens`` [batch, length], placed from position ``start`` on; their
    keys and values are written into ``cache`` (an index write at the positions, in place).

    ``static``: ``start`` is a 0-d integer tensor and attention runs over the whole cache, masked to the
    positions written so far (fixed shapes for ``paddle.jit.to_static``: one traced decode step serves every
    position); else ``start`` is an int and attention runs over positions ``[0, start + length)`` only (a
    prefill starts at 0; a decode step is one token). Under ``paddle.jit.to_static``, keep its default (SOT)
    mode: with ``full_graph=True`` (AST) the in-place writes into the captured cache are not carried through
    the program and the logits come out wrong.
    """
    length = tokens.shape[1]
    positions = start + paddle.arange(length, dtype="int64")
    cos, sin = model.cos[positions], model.sin[positions]
    x = model.embed(tokens)
    end = None if static else start + length
    mask = (paddle.arange(cache.length, dtype="int64")[None, :] <= positions[:, None]) if static else None
    for index, block in enumerate(model.blocks):
        q, k, v = block.qkv(block.attn_norm(x), cos, sin)
        cache.keys[index, :, positions] = _cast(k, cache.keys.dtype)
        cache.values[index, :, positions] = _cast(v, cache.values.dtype)
        keys, values = cache.keys[index, :, :end], cache.values[index, :, :end]
        attended = F.scaled_dot_product_attention(q, _cast(keys, q.dtype), _cast(values, q.dtype), attn_mask=mask,
                                                  is_causal=not static and length > 1, enable_gqa=True)
        x = x + block.project(attended)
        x = x + block.mlp(x)
    return model.head(x[:, -1])
