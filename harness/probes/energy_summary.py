"""A case's energy metrics from its repeats' energy windows (pooled like the timing samples).

The headline ``energy`` metric is joules per sample: the measured joules of every
successful repeat's window divided by the samples its steps processed (timed steps
plus any untimed steps that only lengthened the window). Beside it: J/token for
sequence workloads, samples/J, average W, the net-of-idle J/sample where an idle
baseline exists, every other reading (host CPU next to a GPU, DRAM), and an
``estimate`` only as its own labelled field. A case whose energy could not be
measured gets ``value: None``, ``method: unavailable`` and the reason — never 0.
"""

from __future__ import annotations

import statistics
from typing import Any

from tribench.harness.probes.energy import MEASURED_METHODS

OLD_RUN = "not recorded (this run predates energy measurement)"


def _primary(record: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in record["readings"] if r["name"] == record["primary"]), None)


def _unavailable(reading: dict[str, Any] | None, batch: int, steps: int) -> dict[str, Any]:
    reading = reading or {"source": "none", "scope": "device", "reason": OLD_RUN, "short_reason": "not recorded"}
    entry = {"value": None, "unit": "J/sample", "method": "unavailable", "source": reading["source"],
             "scope": reading["scope"], "reason": reading.get("reason"), "short_reason": reading.get("short_reason")}
    estimate = reading.get("estimate")
    if estimate and steps:
        entry["estimate"] = {**estimate, "estimate": estimate["estimate"] / (steps * batch), "unit": "J/sample"}
    return entry


def _net(readings: list[dict[str, Any]], samples: int) -> dict[str, Any]:
    nets = [r["details"].get("net_value") for r in readings]
    if any(net is None for net in nets):
        reason = next((r["details"]["net_reason"] for r in readings if r["details"].get("net_reason")),
                      "no idle baseline for this reading")
        return {"value": None, "unit": "J/sample", "reason": reason}
    idle = [r["details"]["idle_power_w"] for r in readings]
    return {"value": sum(nets) / samples, "unit": "J/sample", "idle_power_w": statistics.median(idle),
            "source": "(gross joules - idle baseline power x window) / samples"}


def _flags(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    flags = []
    for record, reading in pairs:
        window = record["window"] or {}
        if window.get("extended"):
            flags.append(f"window extended by {window['extra_steps']} untimed step(s) to {window['wall_s']:.3g} s "
                         f"(the source needs {window['min_window_s']:.3g} s)")
        if reading["details"].get("short_window"):
            flags.append(reading["details"]["note"])
    return flags


def _measured(spec_batch: int, tokens: int | None, pairs: list[tuple[dict[str, Any], dict[str, Any]]],
              repeats: int) -> dict[str, Any]:
    method = pairs[0][1]["method"]
    pairs = [(record, reading) for record, reading in pairs if reading["method"] == method]
    readings = [reading for _, reading in pairs]
    joules = sum(r["value"] for r in readings)
    steps = sum(record["window"]["steps"] for record, _ in pairs)
    window_s = sum(r["window_s"] for r in readings)
    samples = steps * spec_batch
    entry: dict[str, Any] = {
        "value": joules / samples, "unit": "J/sample", "method": method, "source": readings[0]["source"],
        "scope": readings[0]["scope"], "reason": None, "short_reason": None,
        "joules": joules, "window_s": window_s, "steps": steps, "samples": samples,
        "repeats_measured": len(pairs), "repeats": repeats,
        "per_repeat": [r["value"] / (record["window"]["steps"] * spec_batch) for record, r in pairs],
        "samples_per_joule": {"value": samples / joules, "unit": "samples/J", "source": "samples / joules"},
        "average_power": {"value": joules / window_s, "unit": "W", "source": "joules / window seconds"},
        "net": _net(readings, samples),
        "flags": _flags(pairs),
    }
    if tokens:
        entry["per_token"] = {"value": joules / (samples * tokens), "unit": "J/token",
                              "source": "joules / (samples x sequence length)"}
    return entry


def _other_readings(records: list[dict[str, Any]], batch: int) -> list[dict[str, Any]]:
    """Every reading by name, pooled over repeats: measured joules summed (None and the first reason if none)."""
    pooled: dict[str, dict[str, Any]] = {}
    for record in records:
        steps = (record.get("window") or {}).get("steps") or 0
        for reading in record["readings"]:
            entry = pooled.setdefault(reading["name"], {
                "name": reading["name"], "method": reading["method"], "source": reading["source"],
                "scope": reading["scope"], "joules": None, "steps": 0, "reason": reading.get("reason")})
            if reading["method"] in MEASURED_METHODS and entry["method"] == reading["method"]:
                entry["joules"] = (entry["joules"] or 0.0) + reading["value"]
                entry["steps"] += steps
    for entry in pooled.values():  # total joules (unit J), so no reader mistakes them for the case's J/sample
        joules = entry.pop("joules")
        entry["value"], entry["unit"] = joules, "J"
        entry["joules_per_sample"] = joules / (entry["steps"] * batch) if joules and entry["steps"] else None
    return list(pooled.values())


def case_energy(batch_size: int, tokens_per_sample: int | None, repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``energy`` metric of a case from its successful repeats."""
    records = [r["energy"] for r in repeats if r.get("energy")]
    if not records:
        return _unavailable(None, batch_size, 0)
    pairs = [(record, _primary(record)) for record in records]
    measured = [(rec, rd) for rec, rd in pairs if rd and rd["method"] in MEASURED_METHODS and (rec["window"] or {})
                .get("steps")]
    if measured:
        entry = _measured(batch_size, tokens_per_sample, measured, len(repeats))
    else:
        steps = sum((rec["window"] or {}).get("steps") or 0 for rec, _ in pairs)
        entry = _unavailable(pairs[0][1], batch_size, steps)
    entry["readings"] = _other_readings(records, batch_size)
    return entry


def _merge_field(fields: list[dict[str, Any]]) -> dict[str, Any]:
    measured = [f for f in fields if "min" in f]
    if not measured:
        return fields[0]
    return {**{k: measured[0][k] for k in ("unit", "source", "scope")},
            "min": min(f["min"] for f in measured), "median": statistics.median(f["median"] for f in measured),
            "max": max(f["max"] for f in measured), "n": sum(f["n"] for f in measured)}


def _merge_throttle(entries: list[dict[str, Any]]) -> dict[str, Any]:
    known = [e for e in entries if e.get("throttled") is not None]
    if not known:
        return entries[0]
    reasons = sorted({name for e in known for name in e["reasons"]})
    throttle = sorted({name for e in known for name in e["throttle_reasons"]})
    return {"source": known[0]["source"], "throttled": any(e["throttled"] for e in known),
            "reasons": reasons, "throttle_reasons": throttle,
            "throttled_fraction": max(e["throttled_fraction"] for e in known)}


def case_telemetry(repeats: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Device telemetry over every repeat's window (NVML GPUs only); None when there was none."""
    items = [t for r in repeats for t in (r.get("energy") or {}).get("telemetry") or []]
    if not items:
        return None
    names = items[0]["fields"].keys()
    return {
        "source": items[0]["source"], "device": items[0]["device"], "power_limit": items[0]["power_limit"],
        "samples": sum(t["samples"] for t in items),
        "fields": {name: _merge_field([t["fields"][name] for t in items if name in t["fields"]]) for name in names},
        "throttle": _merge_throttle([t["throttle"] for t in items]),
    }
