"""``timing.measure`` with the energy window open around the measurement phase only.

Compile step and warm-up run first, outside the window. The window opens after the
last warm-up step's sync and closes right after the last measured step, so it holds
measured steps only. Where it is still shorter than its sources need (a counter
updated every 100 ms cannot measure 50 ms), more steps run inside the window —
counted for energy, never added to the timing samples — up to
``max_extension_s``; a window still too short is flagged on its readings, never
reported as 0. Opening, closing and extending happen between steps, never inside one.
A second window (the disturbance window, ``harness.probes.disturbance``) nests inside the
energy window (``timing.NestedWindows``): it closes before the extension steps run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tribench.harness.probes.energy import (
    Clock,
    EnergyProbe,
    EnergySettings,
    EnergyWindow,
    disabled_record,
    window_record,
)
from tribench.harness.timing import MeasurementWindow, NestedWindows, TimingConfig, TimingResult, measure


def extend(session: Any, window: EnergyWindow, needed_s: float, max_extension_s: float, clock: Clock) -> int:
    """Run untimed steps (step + sync) until the window lasts ``needed_s``; return how many ran."""
    extra = 0
    deadline = clock() + max_extension_s
    while window.elapsed() < needed_s and clock() < deadline:
        session.sync(session.step())
        extra += 1
    return extra


class ProbeWindow:
    """The energy window as ``timing.measure`` sees it: open before the measured steps, extend, close."""

    def __init__(self, probes: list[EnergyProbe], settings: EnergySettings, clock: Clock) -> None:
        self._window = EnergyWindow(probes, clock)
        self._settings = settings
        self._clock = clock
        self.extra_steps, self.needed_s, self.elapsed_s = 0, 0.0, 0.0
        self.readings: list = []
        self.telemetry: Any = None

    def open(self) -> None:
        self._window.open()

    def close(self, session: Any) -> None:
        try:
            self.needed_s = self._window.min_window_s()
            self.extra_steps = extend(session, self._window, self.needed_s, self._settings.max_extension_s,
                                      self._clock)
        finally:
            self.elapsed_s = self._window.elapsed()
            self.readings, self.telemetry = self._window.close()


def measure_in_window(session: Any, config: TimingConfig, probes: list[EnergyProbe], settings: EnergySettings,
                      device: str, batch_size: int,
                      clock: Clock = time.perf_counter,
                      inner: MeasurementWindow | None = None,
                      after_compile: Callable[[], None] | None = None) -> tuple[TimingResult, dict[str, Any]]:
    """Time ``session`` with ``timing.measure``; return the timing and the worker's ``energy`` record.

    ``inner`` (the disturbance window), if given, opens after the energy window and closes before it,
    so it spans the measured steps only, never the energy window's extension steps.
    """
    if not settings.enabled:
        return measure(session, config, clock, inner, after_compile), disabled_record(device)
    window = ProbeWindow(probes, settings, clock)
    timing = measure(session, config, clock, NestedWindows(window, inner), after_compile)
    timed = len(timing.samples_s) + sum(timing.sustained_block_steps)  # synced steps, then the sustained blocks
    facts = {"wall_s": window.elapsed_s, "timed_steps": timed, "extra_steps": window.extra_steps,
             "steps": timed + window.extra_steps, "min_window_s": window.needed_s, "extended": window.extra_steps > 0}
    return timing, window_record(window.readings, window.telemetry, device, facts, settings, batch_size)
