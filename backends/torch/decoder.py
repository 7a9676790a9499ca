"""The decoder workload (``suites.workloads.DecoderSpec``) in PyTorch: a Llama-shaped causal language model.

Layout of the weights (what a test loads into every framework): ``embed.weight`` [vocab, d]; per block
``attn_norm.weight``, ``q.weight`` [d, d], ``k.weight`` and ``v.weight`` [kv_dim, d], ``o.weight`` [d, d],
``mlp_norm.weight``, ``gate.weight`` and ``up.weight`` [d_ff, d], ``down.weight`` [d, d_ff]; ``norm.weight``.
The head is the embedding, transposed (tied). Attention is ``F.scaled_dot_product_attention`` with
``is_causal`` and ``enable_gqa`` (the key/value heads are shared by groups of query heads without copies).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tribench.backends import rope
from tribench.suites.workloads import DecoderSpec

EMBEDDING_STD = 0.02  # Llama's initializer range: the tied head's logits start near uniform (loss ~ ln vocab)


def rope_tables(spec: DecoderSpec, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [length, head_dim] of the rotary embedding (``backends.rope``), as float32 tensors."""
    cos, sin = rope.rope_tables(spec, length)
    return torch.tensor(cos), torch.tensor(sin)  # on the default device (the meta device in shape-only tests)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Apply RoPE to ``x`` [batch, heads, length, head_dim] with tables [length, head_dim]."""
    first, second = x.chunk(2, dim=-1)
    rotated = torch.cat([-second, first], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class DecoderBlock(nn.Module):
    """x + GQA(RMSNorm(x)) with RoPE; x + SwiGLU(RMSNorm(x)). No biases."""

    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__()
        d = spec.d_model
        self.heads, self.kv_heads, self.head_dim = spec.heads, spec.kv_heads, spec.head_dim
        self.attn_norm = nn.RMSNorm(d, eps=spec.norm_eps)
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, spec.kv_dim, bias=False)
        self.v = nn.Linear(d, spec.kv_dim, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.mlp_norm = nn.RMSNorm(d, eps=spec.norm_eps)
        self.gate = nn.Linear(d, spec.d_ff, bias=False)
        self.up = nn.Linear(d, spec.d_ff, bias=False)
        self.down = nn.Linear(spec.d_ff, d, bias=False)

    def _heads(self, x: torch.Tensor, count: int) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, count, self.head_dim).transpose(1, 2)

    def attention(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, length, d_model = x.shape
        q = rotate(self._heads(self.q(x), self.heads), cos, sin)
        k = rotate(self._heads(self.k(x), self.kv_heads), cos, sin)
        v = self._heads(self.v(x), self.kv_heads)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.o(attended.transpose(1, 2).reshape(batch, length, d_model))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attn_norm(x), cos, sin)
        hidden = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(hidden)) * self.up(hidden))


class Decoder(nn.Module):
    """Embedding, decoder blocks, final RMSNorm, head tied to the embedding; logits [batch, length, vocab]."""

    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__()
        if not spec.tie_embeddings:
            raise ValueError("the torch decoder ties its head to the embedding (DecoderSpec.tie_embeddings)")
        self.embed = nn.Embedding(spec.vocab, spec.d_model)
        nn.init.normal_(self.embed.weight, std=EMBEDDING_STD)
        self.blocks = nn.ModuleList(DecoderBlock(spec) for _ in range(spec.layers))
        self.norm = nn.RMSNorm(spec.d_model, eps=spec.norm_eps)
        cos, sin = rope_tables(spec, spec.max_context)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        cos, sin = self.cos[:length], self.sin[:length]
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, cos, sin)
        return F.linear(self.norm(x), self.embed.weight)


# ---------------------------------------------------------------- generation: a preallocated KV cache


class KVCache:
    """Keys and values of every layer, preallocated for ``length`` positions: [layers, batch, kv_heads, length,
    head_dim] each, in ``dtype``. ``nbytes`` is what the cache holds (both tensors)."""

    def __init__(self, spec: DecoderSpec, batch: int, length: int, dtype: torch.dtype, device: torch.device) -> None:
        shape = (spec.layers, batch, spec.kv_heads, length, spec.head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.length = length

    @property
    def nbytes(self) -> int:
        return 2 * self.keys.numel() * self.keys.element_size()


def forward_cached(model: Decoder, tokens: torch.Tensor, cache: KVCache, start: int | torch.Tensor,
                   static: bool) -> torch.Tensor:
    """Logits [batch, vocab] of the last of ``tokens`` [batch, length], placed from position ``start`` on; their
    keys and values are written into ``cache``.

    ``static``: ``start`` is a 0-d tensor and attention runs over the whole cache, masked to the positions
    written so far (fixed shapes for ``torch.compile``: one compiled decode step serves every position);
    else ``start`` is an int and attention runs over positions ``[0, start + length)`` only (a prefill
    starts at 0; a decode step is one token).
    """
    batch, length = tokens.shape
    positions = start + torch.arange(length, device=tokens.device)
    cos, sin = model.cos[positions], model.sin[positions]
    x = model.embed(tokens)
    end = None if static else start + length
    mask = (torch.arange(cache.length, device=tokens.device)[None, :] <= positions[:, None]) if static else None
    for index, block in enumerate(model.blocks):
        hidden = block.attn_norm(x)
        q = rotate(block._heads(block.q(hidden), block.heads), cos, sin)
        k = rotate(block._heads(block.k(hidden), block.kv_heads), cos, sin)
        v = block._heads(block.v(hidden), block.kv_heads)
        cache.keys[index].index_copy_(2, positions, k.to(cache.keys.dtype))
        cache.values[index].index_copy_(2, positions, v.to(cache.values.dtype))
        keys, values = cache.keys[index], cache.values[index]
        if static:
            attended = F.scaled_dot_product_attention(q, keys.to(q.dtype), values.to(q.dtype), attn_mask=mask,
                                                      enable_gqa=True)
        else:
            attended = F.scaled_dot_product_attention(q, keys[:, :, :end].to(q.dtype), values[:, :, :end].to(q.dtype),
                                                      is_causal=length > 1, enable_gqa=True)
        x = x + block.o(attended.transpose(1, 2).reshape(batch, length, -1))
        hidden = block.mlp_norm(x)
        x = x + block.down(F.silu(block.gate(hidden)) * block.up(hidden))
    return F.linear(model.norm(x[:, -1]), model.embed.weight)
