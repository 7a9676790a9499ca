"""A plugin workload (``suites.plugins``) in PyTorch: the plugin's model, batch and loss in a ``TorchSession``,
with the same device, precision (autocast, GradScaler), Adam and compile rules as the built-in workloads.

Without an analytic FLOP formula the step's FLOPs are counted once at build time with
``torch.utils.flop_counter.FlopCounterMode`` (``build.counted_flops``), outside the timed steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tribench.backends import plugin_support
from tribench.core.spec import CaseSpec
from tribench.suites.plugins import Workload

COUNTER_SOURCE = ("torch.utils.flop_counter.FlopCounterMode over one {what} of the eager model at build time "
                  "(attention on SDPA's math kernel, which it counts; ops without a formula count 0)")


def to_device(value: Any, device: torch.device) -> Any:
    """Tensors (alone, in tuples, lists or dicts) moved to ``device``; anything else as it is."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: to_device(item, device) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(to_device(item, device) for item in value)
    return value


def feeder(module: Callable) -> Callable[[Any], Any]:
    """Call ``module`` with the plugin's inputs: a dict as keywords, a tuple as positions, else one argument."""

    def call(inputs: Any) -> Any:
        if isinstance(inputs, dict):
            return module(**inputs)
        if isinstance(inputs, tuple | list):
            return module(*inputs)
        return module(inputs)

    return call


def checked_loss(loss: Callable[[Any, Any], Any], workload: str) -> Callable[[Any, Any], torch.Tensor]:
    """The plugin's loss, refusing (one line) anything but a scalar tensor."""

    def compute(outputs: Any, targets: Any) -> torch.Tensor:
        value = loss(outputs, targets)
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise plugin_support.not_scalar(workload, shape)
        return value

    return compute


def count_flops(model: nn.Module, inputs: Any, targets: Any, loss: Callable | None, train: bool,
                autocast: Any) -> dict[str, Any]:
    """FLOPs of one step (train: forward and backward; infer: forward) by PyTorch's own counter, under the
    case's autocast (so a bf16/fp16 case's memory, not fp32's, is what the counting step needs). A counted
    training step also moves BatchNorm's running statistics once, as a warm-up step would."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    call = feeder(model)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, autocast:
        if train:
            loss(call(inputs), targets).backward()
        else:
            with torch.no_grad():
                call(inputs)
    model.zero_grad(set_to_none=True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # what counting cached is not the measured step's
    what = "forward and backward pass" if train else "forward pass"
    return {"value": int(counter.get_total_flops()), "unit": "FLOP", "source": COUNTER_SOURCE.format(what=what)}


def plugin_session_parts(workload: Workload, case: CaseSpec, device: torch.device) -> dict[str, Any]:
    """The arguments of the case's ``TorchSession`` (``adapter.create_session`` builds it) and its ``info``."""
    train = case.mode == "train"
    torch.manual_seed(plugin_support.SEED)
    parts = plugin_support.parts_for(workload, case, "torch", device)
    if not isinstance(parts.model, nn.Module):
        raise plugin_support.PluginError(f"workload {workload.name}: its torch builder's model is a "
                                         f"{type(parts.model).__name__}, not a torch.nn.Module")
    model = parts.model.to(device)
    model.train(train)
    inputs, targets = to_device(parts.inputs, device), to_device(parts.targets, device)
    loss = checked_loss(parts.loss, workload.name) if parts.loss else None
    info: dict[str, Any] = {"compile": "torch.compile" if case.compile == "compiled" else "eager",
                            "workload_plugin": plugin_support.record(workload, "torch")}
    if workload.flops_per_step(case.size, case.mode, case.batch_size) is None:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(case.precision)
        autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
        info["counted_flops"] = count_flops(model, inputs, targets, loss, train, autocast)
    runner = torch.compile(model) if case.compile == "compiled" else model
    return {"model": model, "runner": feeder(runner), "inputs": inputs, "targets": targets, "loss": loss,
            "info": info}
