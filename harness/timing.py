"""The timed loop: compile step apart, warm-up until steady, measure until the CI is tight.

Every timed step is ``handle = session.step(); session.sync(handle)`` between two
clock reads, so asynchronous dispatch is never timed alone. The clock is
injected (``time.perf_counter`` by default) so that the whole procedure can be
tested exactly with a fake clock.

Procedure
1. First step: trace / compile / autotune. Its time is ``compile_time_s`` and
   is never mixed into the samples.
2. Warm-up: keep stepping for at least ``min_warmup_time_s`` (a floor, so that tiny steps on a fast
   device are not measured while its clocks and caches still settle) and until the median of the
   last ``warmup_window`` steps is within ``warmup_tolerance`` of the median of the window before
   it, or until ``max_warmup_steps`` / ``max_warmup_time_s`` (then ``steady`` is False and the
   result says so).
3. Measurement: keep stepping until at least ``min_steps`` samples and
   ``min_time_s`` seconds are in AND the 95% CI of the median is within
   ``target_ci`` of it (``converged``), or ``max_time_s`` / ``max_steps`` is
   reached first. The stopping rule is evaluated at geometrically spaced sample
   counts (every ``check_growth`` x more), so the check costs O(n log n) in all
   and never runs inside a timed step.

``fixed_steps`` replaces both adaptive rules with counts: exactly ``max_warmup_steps`` warm-up
steps and exactly ``min_steps`` measured ones (``--steps``). Hosts of a multi-host JAX or
TensorFlow case run one collective program per step, so they must all stop after the same step;
an adaptive rule, decided on each host's own clock, would leave one host waiting forever.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

from harness.errors import InvalidValue
from harness.stats import relative_ci_halfwidth

Clock = Callable[[], float]


class MeasurementWindow(Protocol):
    """Something opened right before the first measured step and closed right after the last
    (an energy probe window). ``close`` may run extra untimed steps first, e.g. to outlast a
    counter's update period; those never enter the samples."""

    def open(self) -> None: ...

    def close(self, session) -> None: ...


class NestedWindows:
    """Several windows around the same measured steps, as one: opened in the order given and closed
    in reverse, so the last is the innermost, closest to the steps (a window whose ``close`` runs
    extra untimed steps goes first, so those steps fall outside the later ones). Every opened window
    is closed even when an inner one's ``close`` raises; the first error is raised after. A window
    other than the first must not raise in ``open``: the outer ones, already open, could not be closed."""

    def __init__(self, *windows: MeasurementWindow | None) -> None:
        self._windows = [window for window in windows if window is not None]

    def open(self) -> None:
        for window in self._windows:
            window.open()

    def close(self, session) -> None:
        first_error: BaseException | None = None
        for window in reversed(self._windows):
            try:
                window.close(session)
            except BaseException as error:  # the outer windows still close; the error is not lost
                first_error = first_error or error
        if first_error is not None:
            raise first_error


@dataclass(frozen=True)
class TimingConfig:
    min_steps: int = 10
    min_time_s: float = 1.0
    max_time_s: float = 10.0
    max_steps: int = 1_000_000
    target_ci: float = 0.02
    confidence: float = 0.95
    warmup_window: int = 5
    warmup_tolerance: float = 0.05
    max_warmup_steps: int = 200
    max_warmup_time_s: float = 5.0
    min_warmup_time_s: float = 0.0  # the warm-up's floor in seconds (the CLI's --min-warmup, default 0.2)
    check_growth: float = 1.05
    fixed_steps: bool = False  # exactly max_warmup_steps warm-up and min_steps measured steps

    def __post_init__(self) -> None:
        if self.min_steps < 1 or self.max_steps < self.min_steps:
            raise InvalidValue("timing needs 1 <= min_steps <= max_steps")
        if self.max_time_s <= 0 or self.min_time_s < 0 or self.min_time_s > self.max_time_s:
            raise InvalidValue("timing needs 0 <= min_time <= max_time and max_time > 0")
        if not 0 < self.target_ci < 1:
            raise InvalidValue(f"target CI must be between 0 and 1 (e.g. 0.02 for ±2%), got {self.target_ci}")
        if not 0 <= self.min_warmup_time_s <= self.max_warmup_time_s:
            raise InvalidValue(f"the minimum warm-up must be between 0 and {self.max_warmup_time_s:g} s "
                               f"(the warm-up's cap), got {self.min_warmup_time_s:g}")
        if self.warmup_window < 1 or self.check_growth <= 1:
            raise InvalidValue("timing needs warmup_window >= 1 and check_growth > 1")

    def to_dict(self) -> dict:
        return asdict(self)

    def with_fixed_steps(self, steps: int, warmup_steps: int) -> TimingConfig:
        """The same settings with counted warm-up and measurement (``--steps``, multi-host lockstep)."""
        return replace(self, fixed_steps=True, min_steps=steps, max_steps=steps, max_warmup_steps=warmup_steps)


@dataclass
class TimingResult:
    compile_time_s: float
    warmup_samples_s: list[float] = field(default_factory=list)
    warmup_steady: bool = False
    samples_s: list[float] = field(default_factory=list)
    stop_reason: str = ""              # converged | max_time | max_steps | fixed_steps
    measure_wall_s: float = 0.0        # wall time of the whole measurement phase
    final_ci_rel_halfwidth: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _timed_step(session, clock: Clock) -> float:
    start = clock()
    session.sync(session.step())
    return clock() - start


def is_steady(samples: list[float], window: int, tolerance: float) -> bool:
    """True when the last two windows of ``window`` samples have medians within ``tolerance``."""
    if len(samples) < 2 * window:
        return False
    recent = statistics.median(samples[-window:])
    previous = statistics.median(samples[-2 * window:-window])
    return abs(recent - previous) <= tolerance * previous


def warm_up(session, config: TimingConfig, clock: Clock) -> tuple[list[float], bool]:
    samples: list[float] = []
    if config.fixed_steps:
        samples = [_timed_step(session, clock) for _ in range(config.max_warmup_steps)]
        return samples, is_steady(samples, config.warmup_window, config.warmup_tolerance)
    start = clock()
    while True:
        samples.append(_timed_step(session, clock))
        if (clock() - start >= config.min_warmup_time_s
                and is_steady(samples, config.warmup_window, config.warmup_tolerance)):
            return samples, True
        if len(samples) >= config.max_warmup_steps or clock() - start >= config.max_warmup_time_s:
            return samples, False


def _next_check(count: int, growth: float) -> int:
    return max(count + 1, math.ceil(count * growth))


def measure_steady(session, config: TimingConfig, clock: Clock) -> tuple[list[float], str, float, float | None]:
    """Run the measurement phase; return (samples, stop reason, wall seconds, final CI half-width)."""
    samples: list[float] = []
    start = clock()
    if config.fixed_steps:
        samples = [_timed_step(session, clock) for _ in range(config.min_steps)]
        return samples, "fixed_steps", clock() - start, relative_ci_halfwidth(sorted(samples), config.confidence)
    next_check = config.min_steps
    ci: float | None = None
    while True:
        samples.append(_timed_step(session, clock))
        elapsed = clock() - start
        count = len(samples)
        if count >= next_check and elapsed >= config.min_time_s:
            ci = relative_ci_halfwidth(sorted(samples), config.confidence)
            next_check = _next_check(count, config.check_growth)
            if ci is not None and ci <= config.target_ci:
                return samples, "converged", elapsed, ci
        if count >= config.max_steps or elapsed >= config.max_time_s:
            ci = relative_ci_halfwidth(sorted(samples), config.confidence)
            reason = "max_steps" if count >= config.max_steps else "max_time"
            return samples, reason, elapsed, ci


def measure(session, config: TimingConfig = TimingConfig(), clock: Clock = time.perf_counter,
            window: MeasurementWindow | None = None) -> TimingResult:
    """Compile step, warm-up and measurement of ``session`` (see the module docstring).

    ``window``, if given, is opened after the last warm-up step and closed after the last
    measured step, so it spans the measured steps only.
    """
    compile_time = _timed_step(session, clock)
    warmup, steady = warm_up(session, config, clock)
    if window is not None:
        window.open()
    try:
        samples, reason, wall, ci = measure_steady(session, config, clock)
    finally:
        if window is not None:
            window.close(session)
    return TimingResult(
        compile_time_s=compile_time,
        warmup_samples_s=warmup,
        warmup_steady=steady,
        samples_s=samples,
        stop_reason=reason,
        measure_wall_s=wall,
        final_ci_rel_halfwidth=ci,
    )
