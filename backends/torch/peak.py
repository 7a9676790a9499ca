"""The device's achievable peaks as PyTorch reaches them: dense matmul FLOP/s per precision and copy bandwidth.

Matmul: ``torch.matmul`` of two n x n tensors of the precision's dtype (bf16/fp16 tensors,
not autocast, so the kernel is the low-precision one). fp32 runs with
``torch.backends.cuda.matmul.allow_tf32 = False`` (true fp32), tf32 with it ``True``;
both settings are restored afterwards. Which precisions a device runs follows the backend's
own rules (``backends.torch.devices``); the rest are recorded unavailable with the reason.

Bandwidth: ``dst.copy_(src)`` between two preallocated buffers on the device, counted as
2 x the buffer size (one read, one write), STREAM "copy" convention.

Timing: ``harness.peak_measure.time_op`` (warm-up, calibrated repeats, each synced with the
backend's own sync: ``torch.cuda.synchronize`` / ``torch.mps.synchronize``; CPU ops are synchronous).
"""

from __future__ import annotations

from typing import Any

import torch

from tribench.backends.torch import devices
from tribench.backends.torch.adapter import _SYNC, _device_facts
from tribench.harness import peak_measure as pm

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NAME = "torch"


def _skip_reason(precision: str, facts: devices.DeviceFacts) -> str | None:
    if precision == "tf32":
        kind = "gpu" if facts.device_type == "cuda" else facts.device_type
        return pm.tf32_skip_reason(kind, facts.compute_capability, facts.rocm)
    return devices.precision_skip_reason(precision, facts)


def _set_tf32(enabled: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = enabled


def _matmul_peak(precision: str, device: torch.device, options: pm.PeakOptions, sync) -> dict[str, Any]:
    n = options.size_for(_kind(device))
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=DTYPES[precision], generator=generator)
    b = torch.randn(n, n, device=device, dtype=DTYPES[precision], generator=generator)
    previous = torch.backends.cuda.matmul.allow_tf32
    _set_tf32(precision == "tf32")
    try:
        timed = pm.time_op(lambda: torch.matmul(a, b), sync, pm.matmul_flops(n), options)
    finally:
        _set_tf32(previous)
    math_mode = " with allow_tf32=True" if precision == "tf32" else ""
    return pm.measured(timed, pm.FLOPS_UNIT, f"torch.matmul {n}x{n} @ {n}x{n} {DTYPES[precision]}{math_mode}",
                       size=n)


def _copy_peak(device: torch.device, options: pm.PeakOptions, sync) -> dict[str, Any]:
    size = options.copy_bytes_for(_kind(device))
    source = torch.ones(size // 4, device=device, dtype=torch.float32)
    target = torch.empty_like(source)
    work = 2.0 * source.numel() * source.element_size()
    timed = pm.time_op(lambda: target.copy_(source), sync, work, options)
    return pm.measured(timed, pm.BANDWIDTH_UNIT,
                       f"Tensor.copy_ of {size / 2**20:.0f} MiB between two {device.type} buffers, "
                       "counted as read + write (2 x size)", bytes=size)


def _kind(device: torch.device) -> str:
    return {"cuda": "gpu"}.get(device.type, device.type)


def _fp32_case_math(facts: devices.DeviceFacts) -> str:
    """What an fp32 case's matmuls are on this device: IEEE fp32 everywhere torch runs (harness.numerics)."""
    return "fp32"


def measure(device_kind: str, options: pm.PeakOptions) -> dict[str, Any]:
    """Every precision's matmul peak and the copy bandwidth of ``device_kind`` (cpu, gpu, mps)."""
    reason = devices.device_skip_reason(device_kind, cuda_available=torch.cuda.is_available(),
                                        mps_available=torch.backends.mps.is_available(), build=torch.__version__)
    if reason:
        raise ValueError(reason)
    device = torch.device(devices.torch_device_type(device_kind))
    facts = _device_facts(device.type)
    sync = lambda handle: _SYNC[device.type]()  # noqa: E731 (every call waits for the whole device)
    matmul = {}
    for precision in pm.PRECISIONS:
        skip = _skip_reason(precision, facts)
        matmul[precision] = (pm.unavailable(pm.FLOPS_UNIT, skip) if skip
                             else _matmul_peak(precision, device, options, sync))
    name = facts.name if device.type != "cpu" else pm.cpu_name()
    return pm.record(NAME, torch.__version__, device_kind, name, options, matmul,
                     _copy_peak(device, options, sync), _fp32_case_math(facts),
                     notes=[f"torch threads: {torch.get_num_threads()}"])
