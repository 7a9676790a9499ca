"""Energy per sample of a case, read defensively from ``metrics["energy"]``.

Run files written before tribench measured energy have no ``energy`` entry; newer ones hold
readings (``value``, ``unit``, ``method``, ``source``, ``scope``, ``reason``) somewhere under it.
A report shows only a *measured* per-sample value (method ``counter`` or ``power_sampling``,
never an ``estimate``); otherwise it shows "not measured" with the most specific reason found.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

NO_ENERGY = "this run file has no energy readings (written without an energy probe)"
ESTIMATE_ONLY = "only an estimate is recorded, and estimates are never shown as measurements"
PER_SAMPLE_UNITS = {"j/sample", "joule/sample", "joules/sample"}
ESTIMATES = {"estimate", "estimated"}
NOT_MEASURED = ESTIMATES | {"unavailable"}


def _readings(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict under ``node`` that looks like a reading (has a unit), depth first."""
    if isinstance(node, dict):
        if "unit" in node:
            yield node
        for value in node.values():
            yield from _readings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _readings(value)


def _per_sample(reading: dict[str, Any]) -> bool:
    unit = str(reading.get("unit") or "").replace(" ", "").lower()
    return unit in PER_SAMPLE_UNITS


def _measured(reading: dict[str, Any]) -> bool:
    value = reading.get("value")
    states = {str(reading.get("method") or "").lower(), str(reading.get("status") or "").lower()}
    return isinstance(value, int | float) and not isinstance(value, bool) and not states & NOT_MEASURED


def _estimate(reading: dict[str, Any]) -> bool:
    return {str(reading.get("method") or "").lower(), str(reading.get("status") or "").lower()} & ESTIMATES != set()


def _reasons(energy: Any) -> Iterator[str]:
    if isinstance(energy, dict) and energy.get("reason"):
        yield str(energy["reason"])
    for reading in _readings(energy):
        if reading.get("reason"):
            yield str(reading["reason"])


def energy_per_sample(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """``{"value", "unit", "source", "method", "reason"}``: a measured J/sample, or None and why not."""
    energy = (metrics or {}).get("energy")
    if not energy:
        return {"value": None, "unit": "J/sample", "source": None, "method": None, "reason": NO_ENERGY}
    readings = list(_readings(energy))
    for reading in readings:
        if _per_sample(reading) and _measured(reading):
            return {"value": float(reading["value"]), "unit": "J/sample", "source": reading.get("source"),
                    "method": reading.get("method") or reading.get("status"), "reason": None}
    reason = next(_reasons(energy), None)
    if reason is None and any(_per_sample(r) and _estimate(r) for r in readings):
        reason = ESTIMATE_ONLY
    return {"value": None, "unit": "J/sample", "source": None, "method": None,
            "reason": reason or "the run file's energy entry holds no measured joules per sample"}
