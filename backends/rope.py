"""Rotary position embeddings' tables, computed once for every backend (framework-free: numpy), so the three
decoders rotate by exactly the same angles."""

from __future__ import annotations

import numpy as np

from tribench.suites.workloads import DecoderSpec


def rope_tables(spec: DecoderSpec, length: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [length, head_dim] of the rotary embedding, "rotate half" layout (pairs i and i + head_dim / 2
    share a frequency ``rope_theta ** (-i / (head_dim / 2))``): computed in float64, returned as float32."""
    half = spec.head_dim // 2
    inverse = spec.rope_theta ** (-np.arange(half, dtype=np.float64) / half)
    angles = np.arange(length, dtype=np.float64)[:, None] * inverse[None, :]
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
