"""Idle power, measured once per run before the first case, for net-of-idle energy.

The runner (no worker alive, nothing else of ours running) opens the probes of
every device kind the run will use, waits ``idle_baseline_s`` seconds, and
closes them: idle power = joules / window for each reading. While it waits it
polls NVML's raw counter and power reading every few milliseconds to time how
often they really change; those update periods size the workers' windows and
their power-sampling interval. Where nothing can be measured the baseline costs
no time and says why.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

from tribench.harness.probes.energy import Clock, EnergySettings, EnergyWindow
from tribench.harness.probes.sources import probes_for

POLL_S = 0.005


def _devices_to_probe(devices: Iterable[str]) -> list[str]:
    """One probe set covers everything: a gpu set includes the host RAPL probe."""
    kinds = set(devices)
    if "gpu" in kinds:
        return ["gpu"]
    return ["cpu"] if kinds else []


def change_period(times: list[float]) -> float | None:
    """Median interval between the moments a polled value changed; None with fewer than 3 changes."""
    if len(times) < 3:
        return None
    return statistics.median(b - a for a, b in zip(times, times[1:], strict=False))


class ChangeTimer:
    """Records when each polled raw value changes."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.changes: dict[str, list[float]] = {}

    def observe(self, now: float, raw: dict[str, float]) -> None:
        for key, value in raw.items():
            if key in self.last and value != self.last[key]:
                self.changes.setdefault(key, []).append(now)
            self.last[key] = value

    def periods(self) -> dict[str, float]:
        found = {key: change_period(times) for key, times in self.changes.items()}
        return {key: period for key, period in found.items() if period is not None}


def _wait(window: EnergyWindow, seconds: float, clock: Clock, sleep: Callable[[float], None]) -> ChangeTimer:
    timer = ChangeTimer()
    pollable = [probe for probe in window.probes if hasattr(probe, "raw_counters")]
    start = clock()
    while clock() - start < seconds:
        if not pollable:
            sleep(seconds - (clock() - start))
            continue
        now = clock()
        for probe in pollable:
            timer.observe(now, probe.raw_counters())
        sleep(POLL_S)
    return timer


def _entry(reading: dict[str, Any], periods: dict[str, float]) -> dict[str, Any]:
    entry = {key: reading[key] for key in ("method", "source", "scope", "window_s", "reason")}
    measured = reading["method"] in ("counter", "power_sampling")
    entry["energy_j"] = reading["value"]
    entry["power_w"] = reading["value"] / reading["window_s"] if measured else None
    if reading["name"] == "gpu":
        entry["update_periods"] = periods
    return entry


def measure_idle(devices: Iterable[str], settings: EnergySettings, clock: Clock = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Idle power per reading name (``power_w``, None with a reason where it cannot be measured)."""
    kinds = _devices_to_probe(devices)
    if not settings.enabled or settings.idle_baseline_s <= 0 or not kinds:
        why = ("energy measurement is off" if not settings.enabled else
               "--idle-baseline 0" if settings.idle_baseline_s <= 0 else "no case to run")
        return {"seconds": 0.0, "reason": f"no idle baseline: {why}", "readings": {}}
    window = EnergyWindow(probes_for(kinds[0], settings, clock), clock)
    window.open()
    try:
        measurable = window.min_window_s() > 0
        timer = _wait(window, settings.idle_baseline_s, clock, sleep) if measurable else ChangeTimer()
    finally:
        readings, _ = window.close()
    periods = timer.periods()
    entries = {reading.name: _entry(reading.to_dict(), periods) for reading in readings}
    return {"seconds": settings.idle_baseline_s if measurable else 0.0,
            "reason": None if measurable else "no idle baseline: no energy source to measure",
            "readings": entries}
