"""The device's achievable peaks as Paddle reaches them: dense matmul FLOP/s per precision and copy bandwidth.

Matmul: ``paddle.matmul`` of two n x n tensors of the precision's dtype (bf16/fp16 tensors, not autocast,
so the kernel is the low-precision one). On a GPU fp32 runs with Paddle's ``FLAGS_allow_tf32_cublas`` off
(true fp32) and tf32 with it on; the flag is restored afterwards. Which precisions a device runs follows
the backend's own rules (``backends.paddle.devices``); the rest are recorded unavailable with the reason.

Bandwidth: ``paddle.assign(src, output=dst)`` between two preallocated buffers on the device, counted as
2 x the buffer size (one read, one write), the STREAM "copy" convention.

Threads: importing Paddle sets ``OMP_NUM_THREADS=1``; the CPU peak runs on every CPU the process may use
(``paddle.base.core.set_num_threads``), as the other frameworks' peaks do by default.

Timing: ``harness.peak_measure.time_op`` (warm-up, calibrated repeats, each synced:
``paddle.device.cuda.synchronize`` on a GPU; CPU dygraph ops are synchronous).
"""

from __future__ import annotations

import os
from typing import Any

import paddle

from tribench.backends.paddle import devices
from tribench.backends.paddle.adapter import device_facts, gpu_count
from tribench.harness import peak_measure as pm

DTYPES = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16"}
NAME = "paddle"
TF32_FLAG = "FLAGS_allow_tf32_cublas"


def _sync(device: str):
    return (lambda handle: paddle.device.cuda.synchronize()) if device == "gpu" else (lambda handle: None)


def _matmul_peak(precision: str, device: str, options: pm.PeakOptions) -> dict[str, Any]:
    n = options.size_for(device)
    paddle.seed(0)
    a = paddle.randn([n, n]).astype(DTYPES[precision])
    b = paddle.randn([n, n]).astype(DTYPES[precision])
    previous = paddle.get_flags([TF32_FLAG])[TF32_FLAG] if device == "gpu" else None
    if device == "gpu":
        paddle.set_flags({TF32_FLAG: precision == "tf32"})
    try:
        timed = pm.time_op(lambda: paddle.matmul(a, b), _sync(device), pm.matmul_flops(n), options)
    finally:
        if device == "gpu":
            paddle.set_flags({TF32_FLAG: previous})
    math_mode = f" with {TF32_FLAG}=True" if precision == "tf32" else ""
    return pm.measured(timed, pm.FLOPS_UNIT, f"paddle.matmul {n}x{n} @ {n}x{n} {DTYPES[precision]}{math_mode}",
                       size=n)


def _copy_peak(device: str, options: pm.PeakOptions) -> dict[str, Any]:
    size = options.copy_bytes_for(device)
    source = paddle.ones([size // 4], dtype="float32")
    target = paddle.empty_like(source)
    timed = pm.time_op(lambda: paddle.assign(source, output=target), _sync(device), 2.0 * size, options)
    return pm.measured(timed, pm.BANDWIDTH_UNIT,
                       f"paddle.assign of {size / 2**20:.0f} MiB between two {device} buffers, counted as read + "
                       "write (2 x size)", bytes=size)


def measure(device_kind: str, options: pm.PeakOptions) -> dict[str, Any]:
    """Every precision's matmul peak and the copy bandwidth of ``device_kind`` (cpu, gpu)."""
    reason = devices.device_skip_reason(device_kind, gpu_available=gpu_count() > 0, build=paddle.__version__)
    if reason:
        raise ValueError(reason)
    paddle.set_device(devices.place_of(device_kind))
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    paddle.base.core.set_num_threads(threads)  # importing paddle set OMP_NUM_THREADS=1: every usable CPU instead
    facts = device_facts(device_kind)
    matmul = {}
    for precision in pm.PRECISIONS:
        skip = devices.precision_skip_reason(precision, facts)
        matmul[precision] = pm.unavailable(pm.FLOPS_UNIT, skip) if skip else _matmul_peak(precision, device_kind,
                                                                                           options)
    name = facts.name if device_kind != "cpu" else pm.cpu_name()
    return pm.record(NAME, paddle.__version__, device_kind, name, options, matmul, _copy_peak(device_kind, options),
                     "fp32", notes=[f"paddle's CPU math library pool: {threads} threads "
                                    "(paddle.base.core.set_num_threads, the CPUs this process may use)"])
