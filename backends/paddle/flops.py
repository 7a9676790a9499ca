"""Paddle's own FLOP counter, usable here: the per-layer functions ``paddle.flops`` runs, without its summary.

``paddle.flops`` registers ``paddle.hapi.dynamic_flops.register_hooks`` as forward post-hooks on the leaf
layers it knows, runs one forward pass and sums what they counted; then it builds a summary table with
``int()`` of 1-element arrays, which NumPy 2.4 refuses (TypeError; Paddle's fix, PR 77010, is not in
3.3.1), so it cannot return a number here. ``counted_macs`` does the same counting and returns the sum.

What it counts (pinned by ``tests/test_paddle_models.py``): a multiply-add once (a Linear layer in x out per
row, its bias not counted; a Conv2D's output elements x (in channels x kernel area + 1 for its bias)),
BatchNorm two per element, no LSTM and no functional op (attention's products, a tied head).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paddle
from paddle.hapi import dynamic_flops

SOURCE = ("2 x paddle.flops's per-layer count (paddle.hapi.dynamic_flops: multiply-adds of Conv, Linear, norm "
          "layers; no LSTM, no functional ops such as attention) of one {what} at build time")


def counted_macs(model: paddle.nn.Layer, forward: Callable[[], Any]) -> int:
    """Multiply-adds ``paddle.flops`` counts in ``forward()`` (one forward pass of ``model``, without gradients)."""
    counted = [layer for layer in model.sublayers(include_self=True)
               if type(layer) in dynamic_flops.register_hooks and not layer.sublayers()]
    handles = []
    for layer in counted:
        layer.total_ops = 0
        handles.append(layer.register_forward_post_hook(dynamic_flops.register_hooks[type(layer)]))
    try:
        with paddle.no_grad():
            forward()
    finally:
        for handle in handles:
            handle.remove()
    total = sum(int(layer.total_ops) for layer in counted)
    for layer in counted:
        del layer.total_ops
    return total
