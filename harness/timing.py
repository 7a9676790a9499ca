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

4. Sustained (``sustained_time_s`` > 0): blocks of steps dispatched back to back, each block ended
   by one sync of its last step, as a bare training loop runs, so the host's dispatch overlaps the
   device's work; until ``sustained_time_s`` and at least ``min_blocks`` blocks are in (or
   ``max_time_s``). A block holds as many steps as last about ``block_time_s`` at the measured
   median (so a block's one sync is a small part of it). Its figure, steps over the phase's wall
   time, is the throughput a loop delivers, stalls included; the synced steps of 3 are the latency.

``fixed_steps`` replaces both adaptive rules with counts: exactly ``max_warmup_steps`` warm-up
steps and exactly ``min_steps`` measured ones (``--steps``), then one sustained block of ``min_steps``.
Hosts of a multi-host JAX or TensorFlow case run one collective program per step, so they must all
stop after the same step;
an adaptive rule, decided on each host's own clock, would leave one host waiting forever.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

from tribench.core.errors import InvalidValue
from tribench.harness.stats import relative_ci_halfwidth

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
    sustained_time_s: float = 0.0  # the sustained phase's seconds (the CLI's --sustained-time; 0: none)
    block_time_s: float = 0.05  # about how long one sustained block lasts
    min_blocks: int = 6  # sustained blocks, at least: 6 is the fewest with a 95% CI of their median
    max_block_steps: int = 100_000

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
        if self.sustained_time_s < 0:
            raise InvalidValue(f"the sustained time must be 0 (none) or more seconds, got {self.sustained_time_s:g}")
        if self.block_time_s <= 0 or self.min_blocks < 1 or self.max_block_steps < 1:
            raise InvalidValue("a sustained block needs block_time_s > 0, min_blocks >= 1 and max_block_steps >= 1")

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
    sustained_block_steps: list[int] = field(default_factory=list)  # steps in each sustained block
    sustained_block_s: list[float] = field(default_factory=list)    # each block's wall time, its one sync included
    sustained_wall_s: float = 0.0      # the sustained phase from its first dispatch to its last sync

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


def block_size(latency_s: float, config: TimingConfig) -> int:
    """Steps per sustained block: about ``block_time_s`` at the synced median, within 1..max_block_steps."""
    if latency_s <= 0:
        return config.max_block_steps
    return max(1, min(config.max_block_steps, math.ceil(config.block_time_s / latency_s)))


def _timed_block(session, steps: int, clock: Clock) -> float:
    """``steps`` steps dispatched back to back, then one sync of the last: the block's wall time."""
    start = clock()
    handle = None
    for _ in range(steps):
        handle = session.step()
    session.sync(handle)
    return clock() - start


def measure_sustained(session, config: TimingConfig, latency_s: float,
                      clock: Clock) -> tuple[list[int], list[float], float]:
    """The sustained phase (module docstring, 4): (steps per block, block wall times, the phase's wall time)."""
    if config.sustained_time_s <= 0:
        return [], [], 0.0
    start = clock()
    if config.fixed_steps:  # the same count on every host of a lockstep run
        wall = _timed_block(session, config.min_steps, clock)
        return [config.min_steps], [wall], clock() - start
    size = block_size(latency_s, config)
    steps: list[int] = []
    walls: list[float] = []
    while True:
        walls.append(_timed_block(session, size, clock))
        steps.append(size)
        elapsed = clock() - start
        if (elapsed >= config.sustained_time_s and len(walls) >= config.min_blocks) or elapsed >= config.max_time_s:
            return steps, walls, elapsed


def measure(session, config: TimingConfig = TimingConfig(), clock: Clock = time.perf_counter,
            window: MeasurementWindow | None = None,
            after_compile: Callable[[], None] | None = None) -> TimingResult:
    """Compile step, warm-up and measurement of ``session`` (see the module docstring).

    ``window``, if given, is opened after the last warm-up step and closed after the last
    measured step (the sustained phase's last sync), so it spans the measured steps only.
    ``after_compile``, if given, runs once right after the compile step (the memory peaks' reset point).
    """
    compile_time = _timed_step(session, clock)
    if after_compile is not None:
        after_compile()
    warmup, steady = warm_up(session, config, clock)
    if window is not None:
        window.open()
    try:
        samples, reason, wall, ci = measure_steady(session, config, clock)
        block_steps, block_walls, sustained_wall = measure_sustained(session, config, statistics.median(samples),
                                                                     clock)
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
        sustained_block_steps=block_steps,
        sustained_block_s=block_walls,
        sustained_wall_s=sustained_wall,
    )
