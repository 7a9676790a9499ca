"""Which device and precision a JAX case may run on: pure rules over plain facts.

Nothing here imports jax, so the GPU and TPU branches are tested on any machine.
The adapter gathers the facts (``DeviceFacts``) from the real device and asks
these rules; a non-``None`` answer is the reason the case is skipped.

Precision rules, decided per device:

* fp32 runs everywhere.
* TPU: bf16 is native (the MXU multiplies in bf16); fp16 is refused, TPUs have no
  fp16 arithmetic and XLA would widen every op to fp32.
* CUDA GPU: fp16 needs compute capability >= 7.0 (tensor cores; sm_61 parts run
  fp16 at 1/64 rate), bf16 needs >= 8.0 (Ampere), below that XLA emulates it in fp32.
* ROCm GPU: fp16 and bf16 both run (XLA:ROCm lowers them to the MI-series matrix cores).
* CPU: a low precision runs only when the CPU has instructions for it (x86
  AVX512-BF16/AMX-BF16 or Arm BF16 for bf16; AVX512-FP16/AMX-FP16 or Arm FP16 SIMD
  for fp16). Without them XLA:CPU converts every op to fp32 and back, which would
  benchmark conversions rather than the precision the case names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tribench.harness import cpuinfo, numerics

JAX_DEVICES = ("cpu", "gpu", "tpu")

CUDA_MIN_CAPABILITY = {"fp16": (7, 0), "bf16": (8, 0)}


@dataclass(frozen=True)
class DeviceFacts:
    """What the precision rules need to know about one device."""

    platform: str                            # "cpu" | "gpu" | "tpu"
    kind: str = ""                           # jax Device.device_kind, for messages
    gpu_vendor: str | None = None            # "cuda" | "rocm" on GPUs
    compute_capability: str | None = None    # CUDA only, e.g. "8.0"
    cpu_flags: frozenset[str] = frozenset()  # instruction-set flags of the host CPU


def device_skip_reason(device: str, present: Iterable[str]) -> str | None:
    """Why ``device`` cannot run here, given the platforms JAX found (``present``); None if it can."""
    present = tuple(present)
    if device == "mps":
        return "JAX has no MPS backend (Apple GPUs need the experimental jax-metal plugin, not supported)"
    if device not in JAX_DEVICES:
        return f"unknown device {device!r} for JAX; it knows {', '.join(JAX_DEVICES)}"
    if device not in present:
        found = ", ".join(present) or "none"
        return f"no {device} device visible to JAX (jax.devices({device!r}) found none; present: {found})"
    return None


def _capability(text: str) -> tuple[int, int] | None:
    major, _, minor = text.partition(".")
    if not major.isdigit() or not (minor or "0").isdigit():
        return None
    return int(major), int(minor or 0)


def _cuda_reason(precision: str, facts: DeviceFacts) -> str | None:
    needed = CUDA_MIN_CAPABILITY[precision]
    have = _capability(facts.compute_capability or "")
    if have is None:
        return f"{precision} on CUDA needs a known compute capability; {facts.kind or 'this GPU'} reports none"
    if have < needed:
        why = "tensor cores" if precision == "fp16" else "native bf16 math (Ampere)"
        return (
            f"{precision} needs CUDA compute capability >= {needed[0]}.{needed[1]} for {why}; "
            f"{facts.kind or 'this GPU'} has {facts.compute_capability}"
        )
    return None


def precision_skip_reason(precision: str, facts: DeviceFacts) -> str | None:
    """Why ``precision`` cannot run faithfully on the device ``facts`` describe; None if it can."""
    if precision == "fp32":
        return None
    if precision == numerics.TF32:
        if facts.platform == "tpu":
            return "TPUs have no TF32 mode"
        capability = _capability(facts.compute_capability or "") if facts.gpu_vendor == "cuda" else None
        return numerics.tf32_skip_reason(facts.platform, capability, rocm=facts.gpu_vendor not in (None, "cuda"))
    if precision not in ("bf16", "fp16"):
        return f"unknown precision {precision!r}; JAX runs fp32, tf32, bf16, fp16"
    if facts.platform == "tpu":
        if precision == "fp16":
            return "TPUs have no fp16 arithmetic (XLA widens it to fp32); use bf16, the TPU's native low precision"
        return None
    if facts.platform == "gpu":
        return _cuda_reason(precision, facts) if facts.gpu_vendor == "cuda" else None
    if facts.platform == "cpu":
        return cpuinfo.low_precision_skip_reason(precision, facts.cpu_flags, "XLA:CPU")
    return f"unknown JAX platform {facts.platform!r}"
