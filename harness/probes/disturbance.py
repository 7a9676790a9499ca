"""Evidence that the machine disturbed a worker process during its measured steps.

A window opened right before the first measured step and closed right after the last
(inside the energy window, so the energy window's untimed extension steps fall outside it)
reads, at its two ends:

- steal time of the whole machine: ``/proc/stat``, the ``cpu`` line's 8th value (steal,
  in USER_HZ ticks = ``os.sysconf('SC_CLK_TCK')``), as seconds and as a fraction of the
  window's wall time times the CPUs counted in ``/proc/stat`` (the ``cpuN`` lines);
- this process's context switches: ``getrusage(RUSAGE_SELF)`` ``ru_nivcsw`` (involuntary)
  and ``ru_nvcsw`` (voluntary). RUSAGE_SELF sums every thread of the process (framework
  worker pools included), which is what a step pays for, so the counts are the process's;
- CPU pressure: ``/proc/pressure/cpu``, the ``some`` line's ``total`` (microseconds during
  which at least one runnable task of the machine waited for a CPU), as seconds and as a
  fraction of the window's wall time. It is machine-wide: the process's own threads
  waiting for each other count too.

A reading that cannot be taken (file missing, unreadable, a counter that went backwards, not
Linux) is a ``Reading`` with ``value=None`` and the reason, never 0; it is never evidence of
a disturbance either way. Opening and closing read two small files and call getrusage
(tens of microseconds), between steps, never inside a step's two clock reads; no error
escapes them, so the window can never fail a case.

The verdict (``verdict``) says ``disturbed`` with one reason per rule that fired:

- a level shift in the process's own measured step times (``harness.level_shift``);
- steal above ``max_steal_fraction`` (default 5%) of the window's CPU time;
- CPU pressure ``some`` above ``max_pressure_fraction`` (default 20%) of the window.

What these machines show (a 2-CPU Firecracker (KVM) guest, 4 s windows, two rounds each, measured while
writing this module): idle (sleeping) process: steal 0.0%, pressure some 0.5-0.7%; one busy
process alone: steal 0.0-0.1%, some 0.9-1.4%; a busy process plus one other busy process
(2 on 2 CPUs): steal 0.0-0.6%, some 0.2-1.5%; plus two others (3 on 2 CPUs): steal 0.1-0.6%,
some 51-53%; plus three others (4 on 2): some 80-99%. A torch CNN inference loop with its
2 intra-op threads on the 2 CPUs (its own threads count in the machine-wide figure): some 0.3%
alone and 10.5% with another process using 0.2 CPU. Real worker runs (``tribench run --backend
torch --workload cnn --size tiny --mode infer --batch 8``) while other sessions' test suites
shared the machine: some 50.5-50.9% with one busy pytest alongside (its steps went from 7.5 ms
to 134 ms mid-window, a level shift found at step 31 of 41) and 96.5% with three busy
processes alongside. So pressure separates "the CPUs were oversubscribed" from "they were not"
with nothing in between: 20% sits well above what a process makes on its own (< 11%) and
still catches a competitor that held a CPU for under half of the window. Steal never went
past 0.6% here, even with the machine saturated; 5% is an order of magnitude above that and
is the usual "noisy neighbour" alarm on cloud VMs.

Involuntary context switches are recorded but never count towards the verdict: in the same
runs they were 10-19/s alone, 26-626/s with one competitor on the other CPU (no contention),
89-100/s with 3 on 2 CPUs and 100-504/s with 4 on 2. The rate depends on the scheduler's
tick and migrations more than on lost CPU time, so no threshold separates the cases.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tribench.core.readings import Reading

if TYPE_CHECKING:  # the detector needs numpy; this module stays stdlib-only at run time
    from tribench.harness.level_shift import LevelShift

Clock = Callable[[], float]
ContextSwitches = Callable[[], tuple[int, int]]  # (involuntary, voluntary) so far

STAT_SOURCE = "/proc/stat: 'cpu' line, steal (8th value) in USER_HZ ticks"
PRESSURE_SOURCE = "/proc/pressure/cpu: 'some' line, total (microseconds)"
RUSAGE_SOURCE = "resource.getrusage(RUSAGE_SELF)"
MACHINE_SCOPE = "machine (all CPUs), measured window"
PROCESS_SCOPE = "process (all its threads), measured window"
_PER_CPU_LINE = re.compile(r"cpu\d+\s")


class SourceUnreadable(Exception):
    """A counter could not be read; the message is the reason recorded on the reading."""


@dataclass(frozen=True)
class DisturbanceLimits:
    """When the machine's readings make a process disturbed (see the module docstring)."""

    max_steal_fraction: float = 0.05
    max_pressure_fraction: float = 0.20

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Attempt:
    """One counter read at one end of the window: its value, or why there is none."""

    value: Any = None
    reason: str | None = None


@dataclass(frozen=True)
class Snapshot:
    time_s: float
    steal: Attempt          # (ticks, CPUs, ticks per second)
    pressure: Attempt       # microseconds
    switches: Attempt       # (involuntary, voluntary)


def _missing_reason(path: str) -> str:
    if not sys.platform.startswith("linux"):
        return f"{path} does not exist: not Linux (sys.platform is {sys.platform!r})"
    return f"{path} does not exist"


def _read_text(path: str, missing_hint: str = "") -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        raise SourceUnreadable(_missing_reason(path) + missing_hint) from None
    except OSError as error:  # e.g. EOPNOTSUPP from /proc/pressure/cpu when booted with psi=0
        raise SourceUnreadable(f"{path} unreadable: {error}") from None


def clock_ticks_per_second() -> int:
    """USER_HZ, the unit of /proc/stat's times."""
    try:
        return os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError) as error:
        raise SourceUnreadable(f"USER_HZ unknown: os.sysconf('SC_CLK_TCK') failed ({error})") from None


def read_steal(root: str, ticks_per_s: int | None = None) -> tuple[int, int, int]:
    """The machine's steal time so far in ticks, the number of CPUs and USER_HZ, from ``root``/proc/stat."""
    path = os.path.join(root, "proc", "stat")
    lines = _read_text(path).splitlines()
    total = next((line.split() for line in lines if line.split()[:1] == ["cpu"]), None)
    if total is None:
        raise SourceUnreadable(f"{path} has no 'cpu' line")
    if len(total) < 9:
        raise SourceUnreadable(f"{path}: the 'cpu' line has no steal value (8th): {' '.join(total)!r}")
    cpus = sum(1 for line in lines if _PER_CPU_LINE.match(line))
    if cpus == 0:
        raise SourceUnreadable(f"{path} has no per-CPU 'cpuN' lines")
    try:
        ticks = int(total[8])
    except ValueError:
        raise SourceUnreadable(f"{path}: steal value {total[8]!r} is not a whole number") from None
    return ticks, cpus, ticks_per_s or clock_ticks_per_second()


def read_cpu_pressure_some(root: str) -> int:
    """Microseconds so far during which some runnable task waited for a CPU, from ``root``/proc/pressure/cpu."""
    path = os.path.join(root, "proc", "pressure", "cpu")
    text = _read_text(path, " (kernel without pressure stall information, CONFIG_PSI)")
    for line in text.splitlines():
        fields = dict(item.split("=", 1) for item in line.split()[1:] if "=" in item)
        if line.startswith("some ") and "total" in fields:
            try:
                return int(fields["total"])
            except ValueError:
                raise SourceUnreadable(f"{path}: total {fields['total']!r} is not a whole number") from None
    raise SourceUnreadable(f"{path} has no 'some ... total=' line")


def process_context_switches() -> tuple[int, int]:
    """(involuntary, voluntary) context switches of this process so far, all its threads together."""
    try:
        import resource
    except ImportError:
        raise SourceUnreadable(f"the resource module (getrusage) does not exist on {sys.platform!r}") from None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nivcsw, usage.ru_nvcsw


def _attempt(read: Callable[[], Any]) -> Attempt:
    try:
        return Attempt(value=read())
    except SourceUnreadable as error:
        return Attempt(reason=str(error))
    except Exception as error:  # a malformed file must not fail the case: the reading says what went wrong
        return Attempt(reason=f"{type(error).__name__}: {error}")


def take_snapshot(root: str, clock: Clock, context_switches: ContextSwitches, ticks_per_s: int | None) -> Snapshot:
    return Snapshot(
        time_s=clock(),
        steal=_attempt(lambda: read_steal(root, ticks_per_s)),
        pressure=_attempt(lambda: read_cpu_pressure_some(root)),
        switches=_attempt(context_switches),
    )


def _delta(before: Attempt, after: Attempt, pick: Callable[[Any], int], what: str) -> int | str:
    """The counter's growth over the window (in its own unit), or the reason there is none (a str)."""
    for end, attempt in (("open", before), ("close", after)):
        if attempt.reason is not None:
            return f"at the window's {end}: {attempt.reason}"
    growth = pick(after.value) - pick(before.value)
    if growth < 0:
        return f"{what} went backwards over the window ({pick(before.value)} -> {pick(after.value)})"
    return growth


def _pair(name: str, unit: str, fraction_unit: str, source: str, scope: str,
          growth: float | str, denominator_s: float) -> list[Reading]:
    """A counter's growth and that growth as a fraction of ``denominator_s``, or both unavailable."""
    fraction_name = name.removesuffix("_s") + "_fraction"
    if isinstance(growth, str):
        return [Reading.unavailable(name, unit, source, scope, growth),
                Reading.unavailable(fraction_name, fraction_unit, source, scope, growth)]
    if denominator_s <= 0:
        return [Reading(name, unit, source, scope, growth),
                Reading.unavailable(fraction_name, fraction_unit, source, scope, "the window lasted no time")]
    return [Reading(name, unit, source, scope, growth),
            Reading(fraction_name, fraction_unit, source, scope, growth / denominator_s)]


def steal_readings(before: Snapshot, after: Snapshot) -> list[Reading]:
    wall = after.time_s - before.time_s
    ticks = _delta(before.steal, after.steal, lambda value: value[0], "the steal tick count")
    cpus, ticks_per_s = after.steal.value[1:] if after.steal.value else (0, 1)
    growth = ticks if isinstance(ticks, str) else ticks / ticks_per_s
    unit = f"fraction of window wall time x {cpus} CPUs" if cpus else "fraction of window wall time x CPUs"
    return _pair("steal_s", "s", unit, STAT_SOURCE, MACHINE_SCOPE, growth, wall * cpus)


def pressure_readings(before: Snapshot, after: Snapshot) -> list[Reading]:
    wall = after.time_s - before.time_s
    microseconds = _delta(before.pressure, after.pressure, int, "the pressure total")
    growth = microseconds if isinstance(microseconds, str) else microseconds / 1e6
    return _pair("cpu_pressure_some_s", "s", "fraction of window wall time", PRESSURE_SOURCE, MACHINE_SCOPE,
                 growth, wall)


def context_switch_readings(before: Snapshot, after: Snapshot) -> list[Reading]:
    readings = []
    for index, name, field_name in ((0, "involuntary_context_switches", "ru_nivcsw"),
                                    (1, "voluntary_context_switches", "ru_nvcsw")):
        growth = _delta(before.switches, after.switches, lambda value, i=index: value[i], field_name)
        source = f"{RUSAGE_SOURCE}.{field_name}"
        readings.append(Reading.unavailable(name, "switches", source, PROCESS_SCOPE, growth)
                        if isinstance(growth, str) else Reading(name, "switches", source, PROCESS_SCOPE, growth))
    return readings


@dataclass
class DisturbanceWindow:
    """The window as ``timing.measure`` sees it; ``root`` stands for "/" (tests pass a fake /proc tree)."""

    root: str = "/"
    clock: Clock = time.perf_counter
    context_switches: ContextSwitches = process_context_switches
    ticks_per_s: int | None = None  # USER_HZ; None: os.sysconf('SC_CLK_TCK')
    _ends: list[Snapshot] = field(default_factory=list, init=False, repr=False)

    def open(self) -> None:
        self._ends = [take_snapshot(self.root, self.clock, self.context_switches, self.ticks_per_s)]

    def close(self, session: Any = None) -> None:
        if len(self._ends) == 1:
            self._ends.append(take_snapshot(self.root, self.clock, self.context_switches, self.ticks_per_s))

    @property
    def wall_s(self) -> float | None:
        return self._ends[1].time_s - self._ends[0].time_s if len(self._ends) == 2 else None

    def readings(self) -> list[Reading]:
        """Every reading of the window (closed, or every one unavailable with the reason)."""
        if len(self._ends) != 2:
            return never_closed_readings()
        before, after = self._ends
        return steal_readings(before, after) + pressure_readings(before, after) + context_switch_readings(
            before, after)


def never_closed_readings() -> list[Reading]:
    reason = "the disturbance window was not opened and closed around the measured steps"
    names = (("steal_s", "s", STAT_SOURCE, MACHINE_SCOPE),
             ("steal_fraction", "fraction of window wall time x CPUs", STAT_SOURCE, MACHINE_SCOPE),
             ("cpu_pressure_some_s", "s", PRESSURE_SOURCE, MACHINE_SCOPE),
             ("cpu_pressure_some_fraction", "fraction of window wall time", PRESSURE_SOURCE, MACHINE_SCOPE),
             ("involuntary_context_switches", "switches", f"{RUSAGE_SOURCE}.ru_nivcsw", PROCESS_SCOPE),
             ("voluntary_context_switches", "switches", f"{RUSAGE_SOURCE}.ru_nvcsw", PROCESS_SCOPE))
    return [Reading.unavailable(name, unit, source, scope, reason) for name, unit, source, scope in names]


def _value(readings: list[Reading], name: str) -> float | None:
    return next((reading.value for reading in readings if reading.name == name), None)


def verdict(readings: list[Reading], level_shift: LevelShift | None,
            limits: DisturbanceLimits = DisturbanceLimits()) -> tuple[bool, list[str]]:
    """``(disturbed, reasons)``: one line per rule that fired; an unavailable reading fires none."""
    reasons = []
    if level_shift is not None:
        reasons.append(level_shift.describe())
    steal = _value(readings, "steal_fraction")
    if steal is not None and steal > limits.max_steal_fraction:
        reasons.append(f"steal time {steal:.1%} of the window's CPU time (limit {limits.max_steal_fraction:.0%})")
    pressure = _value(readings, "cpu_pressure_some_fraction")
    if pressure is not None and pressure > limits.max_pressure_fraction:
        reasons.append(f"CPU pressure 'some' {pressure:.1%} of the window: runnable tasks waited for a CPU "
                       f"(limit {limits.max_pressure_fraction:.0%})")
    return bool(reasons), reasons


def disturbance_record(window: DisturbanceWindow, level_shift: LevelShift | None,
                       rule: dict[str, Any], limits: DisturbanceLimits = DisturbanceLimits()) -> dict[str, Any]:
    """The worker's JSON ``disturbance`` record: readings, level shift (or None), verdict and its limits.

    ``rule`` is the level-shift rule's settings as a dict (``LevelShiftRule.to_dict()``).
    """
    readings = window.readings()
    disturbed, reasons = verdict(readings, level_shift, limits)
    return {
        "window_s": window.wall_s,
        "readings": [reading.to_dict() for reading in readings],
        "level_shift": level_shift.to_dict() if level_shift is not None else None,
        "disturbed": disturbed,
        "reasons": reasons,
        "limits": {**limits.to_dict(), "level_shift": rule},
    }
