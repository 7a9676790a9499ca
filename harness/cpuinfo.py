"""The host CPU as ``/proc/cpuinfo`` describes it, and which low precisions it computes natively.

One rule for every backend: a bf16 or fp16 case runs on a CPU only where the CPU has
instructions for that type. Without them every framework converts each op to fp32 and back,
which times the conversions rather than the precision, so the case is skipped with the reason.
"""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})           # x86 AVX-512/AMX, Arm 'bf16'
FP16_FLAGS = frozenset({"avx512_fp16", "amx_fp16", "asimdhp", "fphp"})  # x86 AVX-512/AMX, Arm half
LOW_PRECISION_FLAGS = {"bf16": BF16_FLAGS, "fp16": FP16_FLAGS}


def read_cpuinfo(path: Path = CPUINFO) -> str:
    """The text of /proc/cpuinfo, or "" where there is none (macOS, Windows)."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _fields(text: str):
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            yield key.strip().lower(), value.strip()


def parse_flags(text: str) -> frozenset[str]:
    """Instruction-set flags ('flags' on x86, 'Features' on Arm)."""
    return frozenset(flag for key, value in _fields(text) if key in ("flags", "features") for flag in value.split())


def parse_model(text: str) -> str | None:
    """The CPU's marketing name ('model name' on x86, 'Hardware'/'cpu model' elsewhere), or None."""
    return next((value for key, value in _fields(text)
                 if key in ("model name", "hardware", "cpu model") and value), None)


def physical_cores(text: str) -> int | None:
    """Distinct (physical id, core id) pairs: hyper-threads counted once; None when not listed."""
    cores, physical = set(), None
    for key, value in _fields(text):
        if key == "physical id":
            physical = value
        elif key == "core id":
            cores.add((physical, value))
    return len(cores) or None


def low_precision_skip_reason(precision: str, flags: frozenset[str], framework: str) -> str | None:
    """Why ``precision`` should not run on a CPU with ``flags``; None for fp32 or native support."""
    needed = LOW_PRECISION_FLAGS.get(precision)
    if needed is None or flags & needed:
        return None
    return (
        f"this CPU has no {precision} instructions (none of {', '.join(sorted(needed))}); "
        f"{framework} would convert every {precision} op to fp32 and back"
    )
