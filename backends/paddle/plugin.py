"""A plugin workload (``suites.plugins``) in Paddle: the plugin's model, batch and loss in a ``PaddleSession``, with
the same device, precision (auto_cast, GradScaler), Adam and compile rules as the built-in workloads.

Without an analytic FLOP formula the step's FLOPs are counted once at build time with Paddle's own counter
(``backends.paddle.flops``: 2 x its multiply-adds of one forward pass; a training step 3 x that, the
convention of the analytic formulas), outside the timed steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paddle

from tribench.backends import plugin_support
from tribench.backends.paddle import flops
from tribench.core.spec import CaseSpec
from tribench.suites.plugins import Workload


def feeder(layer: Callable) -> Callable[[Any], Any]:
    """Call ``layer`` with the plugin's inputs: a dict as keywords, a tuple as positions, else one argument."""

    def call(inputs: Any) -> Any:
        if isinstance(inputs, dict):
            return layer(**inputs)
        if isinstance(inputs, tuple | list):
            return layer(*inputs)
        return layer(inputs)

    return call


def checked_loss(loss: Callable[[Any, Any], Any], workload: str) -> Callable[[Any, Any], Any]:
    """The plugin's loss, refusing (one line) anything but a scalar tensor."""

    def compute(outputs: Any, targets: Any) -> Any:
        value = loss(outputs, targets)
        if not isinstance(value, paddle.Tensor) or value.ndim != 0:
            shape = list(value.shape) if isinstance(value, paddle.Tensor) else type(value).__name__
            raise plugin_support.not_scalar(workload, shape)
        return value

    return compute


def count_flops(model: paddle.nn.Layer, inputs: Any, train: bool) -> dict[str, Any]:
    """FLOPs of one step by Paddle's counter (``backends.paddle.flops``), the model left in its mode."""
    training = model.training
    model.eval()
    try:
        forward = 2 * flops.counted_macs(model, lambda: feeder(model)(inputs))
    finally:
        model.train() if training else model.eval()
    what = "forward pass (a training step: 3 x that)" if train else "forward pass"
    return {"value": 3 * forward if train else forward, "unit": "FLOP", "source": flops.SOURCE.format(what=what)}


def plugin_session_parts(workload: Workload, case: CaseSpec) -> dict[str, Any]:
    """The parts of the case's ``PaddleSession`` (``adapter.create_session`` builds it) and its ``info``."""
    train = case.mode == "train"
    paddle.seed(plugin_support.SEED)
    parts = plugin_support.parts_for(workload, case, "paddle", paddle.device.get_device())
    if not isinstance(parts.model, paddle.nn.Layer):
        raise plugin_support.PluginError(f"workload {workload.name}: its paddle builder's model is a "
                                         f"{type(parts.model).__name__}, not a paddle.nn.Layer")
    model = parts.model
    model.train() if train else model.eval()
    loss = checked_loss(parts.loss, workload.name) if parts.loss else None
    info: dict[str, Any] = {"workload_plugin": plugin_support.record(workload, "paddle")}
    if workload.flops_per_step(case.size, case.mode, case.batch_size) is None:
        info["counted_flops"] = count_flops(model, parts.inputs, train)
    return {"model": model, "inputs": parts.inputs, "targets": parts.targets, "loss": loss, "info": info}
