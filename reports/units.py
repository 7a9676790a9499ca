"""Human-readable numbers for tables: every figure printed with its unit."""

from __future__ import annotations


def seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def bytes_(value: float | None) -> str:
    if value is None:
        return "n/a"
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} B"


def rate(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"
