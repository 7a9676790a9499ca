"""How every backend measures a device's achievable peaks: one timing discipline, plain records.

Each ``backends/<fw>/peak.py`` supplies the operations (a dense matmul per precision, a large
device-to-device copy) and their sync; this module times them the same way for all:

1. warm-up: ``warmup`` calls, each synced (first-call compilation, autotuning, page faults, clocks);
2. calibration: one synced call sets how many calls make one repeat last at least
   ``min_repeat_s`` (short repeats would time the launch and the sync, not the device);
3. ``repeats`` repeats of that many calls; every result is synced before the repeat's clock stops
   (at most ``MAX_IN_FLIGHT`` results are outstanding, so asynchronous devices never run
   unboundedly ahead and their outputs do not pile up in memory).

The reported value is the **best** repeat (highest rate); the median is kept beside it. A peak is
the most the device can do: interference (other processes, a clock not yet ramped, a page fault)
only ever slows a repeat down, so the fastest repeat is the closest estimate of the achievable
rate, and the median shows how stable it was. Nothing here imports a framework.
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from tribench.core.errors import InvalidValue
from tribench.harness import cpuinfo

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
FLOPS_UNIT = "FLOP/s"
BANDWIDTH_UNIT = "B/s"
MAX_IN_FLIGHT = 4
TF32_MIN_CAPABILITY = (8, 0)

# Sizes by device kind: large enough to saturate the device, bounded for a 2-core CPU.
# CPU: a 2048^2 fp32 matmul is 17 GFLOP (about 0.2 s at 100 GFLOP/s); the copy buffers are
# 4x a 32 MiB last-level cache, so the copy streams from DRAM. Accelerators: 8192^2 keeps every
# tensor-core tile busy; 1 GiB buffers are 20x the largest L2 (H100/H200: 50 MiB).
DEFAULT_MATMUL_SIZE = {"cpu": 2048, "gpu": 8192, "tpu": 8192, "mps": 4096}
DEFAULT_COPY_BYTES = {"cpu": 128 * 2**20, "gpu": 2**30, "tpu": 2**30, "mps": 512 * 2**20}


@dataclass(frozen=True)
class PeakOptions:
    """What to measure with; ``None`` sizes mean "the default for the device kind"."""

    matmul_size: int | None = None
    copy_bytes: int | None = None
    repeats: int = 5
    warmup: int = 2
    min_repeat_s: float = 0.1

    def __post_init__(self) -> None:
        if self.matmul_size is not None and self.matmul_size < 16:
            raise InvalidValue(f"matmul size must be at least 16, got {self.matmul_size}")
        if self.copy_bytes is not None and self.copy_bytes < 2**20:
            raise InvalidValue(f"copy size must be at least 1 MiB, got {self.copy_bytes} bytes")
        if self.repeats < 1 or self.warmup < 0 or self.min_repeat_s <= 0:
            raise InvalidValue("peak timing needs repeats >= 1, warmup >= 0 and min_repeat_s > 0")

    def size_for(self, device: str) -> int:
        return self.matmul_size or DEFAULT_MATMUL_SIZE.get(device, 4096)

    def copy_bytes_for(self, device: str) -> int:
        return self.copy_bytes or DEFAULT_COPY_BYTES.get(device, 2**30)

    def cache_key(self) -> dict[str, Any]:
        """The options a cached entry must share to be reused (sizes; timing settings do not matter)."""
        return {"matmul_size": self.matmul_size, "copy_bytes": self.copy_bytes}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PeakOptions:
        return cls(**data)


@dataclass(frozen=True)
class Timed:
    """Rates of each repeat (work units per second) and how they were obtained."""

    rates: tuple[float, ...]
    calls_per_repeat: int

    @property
    def best(self) -> float:
        return max(self.rates)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def _timed_calls(run: Callable[[], object], sync: Callable[[object], None], calls: int,
                 clock: Callable[[], float]) -> float:
    """Seconds for ``calls`` calls of ``run``, every result synced before the clock stops."""
    pending: deque[object] = deque()
    start = clock()
    for _ in range(calls):
        pending.append(run())
        if len(pending) > MAX_IN_FLIGHT:
            sync(pending.popleft())
    while pending:
        sync(pending.popleft())
    return clock() - start


def time_op(run: Callable[[], object], sync: Callable[[object], None], work: float, options: PeakOptions,
            clock: Callable[[], float] = time.perf_counter) -> Timed:
    """Warm up, calibrate, then time ``options.repeats`` repeats; ``work`` = units (FLOP, bytes) per call."""
    for _ in range(options.warmup):
        sync(run())
    single = max(_timed_calls(run, sync, 1, clock), 1e-9)
    calls = max(1, math.ceil(options.min_repeat_s / single))
    rates = tuple(work * calls / max(_timed_calls(run, sync, calls, clock), 1e-12)
                  for _ in range(options.repeats))
    return Timed(rates, calls)


def measured(timed: Timed, unit: str, source: str, **extra: Any) -> dict[str, Any]:
    """A measured peak: best repeat as the value, the median and every repeat kept beside it."""
    return {"value": timed.best, "unit": unit, "status": "measured",
            "source": f"{source}; best of {len(timed.rates)} repeats x {timed.calls_per_repeat} calls, "
                      "each synced, after warm-up",
            "median": timed.median, "repeats": list(timed.rates), **extra}


def unavailable(unit: str, reason: str, source: str = "") -> dict[str, Any]:
    """A peak that was not measured, with the reason (never 0)."""
    return {"value": None, "unit": unit, "status": "unavailable", "source": source, "reason": reason}


def matmul_flops(n: int) -> float:
    """FLOPs of one n x n by n x n matmul: n^3 multiply-adds, 2 FLOPs each."""
    return 2.0 * n**3


def tf32_skip_reason(kind: str, compute_capability: tuple[int, int] | None, rocm: bool = False) -> str | None:
    """TF32 is a mode of NVIDIA tensor cores from Ampere (compute capability 8.0) on; None when it applies."""
    if kind != "gpu":
        return f"tf32 is an NVIDIA tensor-core mode (CUDA compute capability >= 8.0); not applicable to {kind}"
    if rocm:
        return "tf32 is an NVIDIA tensor-core mode; this GPU is served by ROCm"
    if compute_capability is None:
        return "tf32 needs CUDA compute capability >= 8.0; this GPU reports none"
    if tuple(compute_capability) < TF32_MIN_CAPABILITY:
        return "tf32 needs CUDA compute capability >= 8.0 (Ampere); this GPU has {}.{}".format(*compute_capability)
    return None


def cpu_name() -> str:
    """The host CPU's model name, the same for every backend (so records of one CPU compare)."""
    return cpuinfo.parse_model(cpuinfo.read_cpuinfo()) or platform.processor() or platform.machine()


def record(backend: str, framework_version: str, device: str, device_name: str, options: PeakOptions,
           matmul: dict[str, dict[str, Any]], bandwidth: dict[str, Any], fp32_case_math: str,
           notes: list[str] | None = None) -> dict[str, Any]:
    """One backend's peaks on one device, as stored in the cache and in run files.

    ``fp32_case_math`` names the peak an fp32 case of this framework is held against on this
    device: "tf32" where the framework's defaults run fp32 matmuls on TF32 tensor cores, else "fp32".
    """
    return {
        "backend": backend,
        "framework_version": framework_version,
        "device": device,
        "device_name": device_name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "options": {**options.to_dict(), "matmul_size_used": options.size_for(device),
                    "copy_bytes_used": options.copy_bytes_for(device)},
        "fp32_case_math": fp32_case_math,
        "matmul": {precision: matmul[precision] for precision in PRECISIONS},
        "bandwidth": bandwidth,
        "notes": notes or [],
    }
