"""Energy readings, the probe interface and the measurement window around the timed steps.

An ``EnergyReading`` is joules over one window with its provenance: ``method``
(``counter``: a hardware energy counter read at the window's ends;
``power_sampling``: power read in a background thread and integrated;
``unavailable``: with the ``reason``), ``source`` (the API or file read),
``scope`` (device, package, dram, machine) and the window it covers. An
estimate is never a reading's value: it lives in the separate ``estimate``
field, labelled ``method: estimate`` with the inputs it used.

A probe (NVML, RAPL, ...) is opened right after the last warm-up step's sync
and closed right after the last measured step; ``EnergyWindow`` opens and
closes all of a case's probes and turns any probe failure into an
``unavailable`` reading with the reason, so a probe never fails a case.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from tribench.core.errors import InvalidValue

METHODS = ("counter", "power_sampling", "estimate", "unavailable")
MEASURED_METHODS = ("counter", "power_sampling")
MIN_PERIODS = 10  # a window spans at least this many counter updates: quantisation error <= ~10%

# The reading that is a case's energy, per device kind; other readings (host CPU next to a GPU) are kept too.
PRIMARY_READING = {"cpu": "cpu_packages", "gpu": "gpu", "tpu": "tpu", "mps": "mps"}

Clock = Callable[[], float]


@dataclass(frozen=True)
class EnergySettings:
    """What the runner tells each worker about energy (sent in the worker's request JSON)."""

    enabled: bool = True
    idle_baseline_s: float = 2.0
    powercap_root: str = "/sys/class/powercap"
    nvml_module: str = "pynvml"
    telemetry_interval_s: float = 0.1
    min_periods: int = MIN_PERIODS
    max_extension_s: float = 10.0
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)  # reading name -> idle baseline

    def __post_init__(self) -> None:
        if self.idle_baseline_s < 0:
            raise InvalidValue(f"--idle-baseline must be 0 (off) or more seconds, got {self.idle_baseline_s}")
        if self.telemetry_interval_s <= 0 or self.min_periods < 1 or self.max_extension_s < 0:
            raise InvalidValue("energy settings need telemetry_interval_s > 0, min_periods >= 1, "
                               "max_extension_s >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnergySettings:
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in known})

    def with_baselines(self, baselines: dict[str, dict[str, Any]]) -> EnergySettings:
        return replace(self, baselines=baselines)


@dataclass(frozen=True)
class EnergyReading:
    """Joules over one window, with how they were obtained; ``value`` is None exactly when unavailable."""

    name: str
    method: str
    source: str
    scope: str
    value: float | None = None
    unit: str = "J"
    reason: str | None = None
    short_reason: str | None = None
    window_s: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    estimate: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS or self.method == "estimate":
            raise ValueError(f"reading {self.name!r}: method must be one of {MEASURED_METHODS} or unavailable")
        if self.method == "unavailable" and (self.value is not None or not self.reason):
            raise ValueError(f"unavailable reading {self.name!r} needs a reason and no value")
        if self.method != "unavailable" and self.value is None:
            raise ValueError(f"measured reading {self.name!r} needs a value")

    @classmethod
    def unavailable(cls, name: str, source: str, scope: str, reason: str, short_reason: str | None = None,
                    **extra: Any) -> EnergyReading:
        return cls(name=name, method="unavailable", source=source, scope=scope, reason=reason,
                   short_reason=short_reason or shorten(reason), **extra)

    @property
    def measured(self) -> bool:
        return self.method in MEASURED_METHODS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shorten(reason: str, limit: int = 40) -> str:
    """The first clause of a reason, for a table cell."""
    first = reason.split(";")[0].split(" (")[0].split(": ")[0].strip()
    return first if len(first) <= limit else first[: limit - 1] + "…"


class EnergyProbe(Protocol):
    """One energy source for one case. ``close`` returns readings; it must stop every thread it started."""

    name: str    # the name of its main reading (e.g. "gpu", "cpu_packages")
    source: str  # what it reads, for an unavailable reading when the probe itself fails
    scope: str

    def open(self) -> None: ...

    def min_window_s(self) -> float:
        """The shortest window this probe can measure honestly (0 when it measures nothing)."""

    def close(self) -> list[EnergyReading]: ...

    def telemetry(self) -> dict[str, Any] | None: ...


class UnavailableProbe:
    """A device without a readable energy source: one ``unavailable`` reading with the reason."""

    def __init__(self, name: str, source: str, scope: str, reason: str, short_reason: str | None = None) -> None:
        self.name, self.source, self.scope = name, source, scope
        self.reason, self.short_reason = reason, short_reason

    def open(self) -> None:
        return None

    def min_window_s(self) -> float:
        return 0.0

    def close(self) -> list[EnergyReading]:
        return [EnergyReading.unavailable(self.name, self.source, self.scope, self.reason, self.short_reason)]

    def telemetry(self) -> dict[str, Any] | None:
        return None


def _failure(probe: EnergyProbe, stage: str, error: BaseException) -> EnergyReading:
    reason = f"the {probe.name} energy probe failed while {stage}: {type(error).__name__}: {error}"
    return EnergyReading.unavailable(probe.name, probe.source, probe.scope, reason, "probe failed")


def with_idle(reading: EnergyReading, baselines: Mapping[str, Mapping[str, Any]]) -> EnergyReading:
    """Add the idle power and the net-of-idle energy where a baseline for this reading exists."""
    if not reading.measured or reading.window_s is None:
        return reading
    baseline = baselines.get(reading.name) or {}
    idle = baseline.get("power_w")
    if idle is None:
        why = baseline.get("reason") or "no idle baseline was measured (--idle-baseline 0, or no source then)"
        return replace(reading, details={**reading.details, "net_reason": f"no idle power: {why}"})
    net = reading.value - idle * reading.window_s
    return replace(reading, details={**reading.details, "idle_power_w": idle, "net_value": net})


class EnergyWindow:
    """Opens every probe, later closes them; a probe that raises becomes an unavailable reading."""

    def __init__(self, probes: list[EnergyProbe], clock: Clock = time.perf_counter) -> None:
        self.probes = list(probes)
        self.clock = clock
        self.failed: dict[int, EnergyReading] = {}
        self.opened_at: float | None = None

    def open(self) -> None:
        for index, probe in enumerate(self.probes):
            try:
                probe.open()
            except Exception as error:  # a probe must never fail the case
                self.failed[index] = _failure(probe, "opening", error)
        self.opened_at = self.clock()

    def elapsed(self) -> float:
        return 0.0 if self.opened_at is None else self.clock() - self.opened_at

    def min_window_s(self) -> float:
        needed = [0.0]
        for index, probe in enumerate(self.probes):
            if index not in self.failed:
                try:
                    needed.append(probe.min_window_s())
                except Exception as error:
                    self.failed[index] = _failure(probe, "sizing the window", error)
        return max(needed)

    def close(self) -> tuple[list[EnergyReading], list[dict[str, Any]]]:
        """Close every probe (always); return the readings and each probe's telemetry."""
        readings: list[EnergyReading] = []
        telemetry: list[dict[str, Any]] = []
        for index, probe in enumerate(self.probes):
            try:
                closed = probe.close()
                extra = probe.telemetry()
            except Exception as error:
                closed, extra = [_failure(probe, "closing", error)], None
            readings.extend([self.failed[index]] if index in self.failed else closed)
            if extra and index not in self.failed:
                telemetry.append(extra)
        return readings, telemetry


def per_sample(reading: EnergyReading | None, steps: int, batch_size: int) -> dict[str, Any]:
    """This process's joules per sample from its main reading (value None with the reason otherwise)."""
    if reading is None:
        return {"value": None, "unit": "J/sample", "method": "unavailable", "reason": "no reading for this device"}
    if not reading.measured or steps <= 0:
        return {"value": None, "unit": "J/sample", "method": "unavailable", "source": reading.source,
                "reason": reading.reason or "no step ran inside the window"}
    return {"value": reading.value / (steps * batch_size), "unit": "J/sample", "method": reading.method,
            "source": reading.source, "scope": reading.scope}


def window_record(readings: list[EnergyReading], telemetry: list[dict[str, Any]], device: str,
                  window: dict[str, Any], settings: EnergySettings, batch_size: int) -> dict[str, Any]:
    """The ``energy`` entry of a worker's result: window facts, readings (gross and net), telemetry."""
    readings = [flag_short(with_idle(reading, settings.baselines), window) for reading in readings]
    primary = PRIMARY_READING.get(device, device)
    main = next((reading for reading in readings if reading.name == primary), None)
    return {
        "enabled": settings.enabled,
        "device": device,
        "primary": primary,
        "window": window,
        "per_sample": per_sample(main, window.get("steps", 0), batch_size),
        "readings": [reading.to_dict() for reading in readings],
        "telemetry": telemetry,
    }


def flag_short(reading: EnergyReading, window: dict[str, Any]) -> EnergyReading:
    """Flag a measured reading whose window stayed shorter than its source needs (never zero it)."""
    if not reading.measured or window.get("wall_s", 0.0) >= window.get("min_window_s", 0.0):
        return reading
    note = (f"window {window['wall_s']:.3g} s is shorter than {window['min_window_s']:.3g} s "
            "(the source's update period x the minimum periods); the value is uncertain")
    return replace(reading, details={**reading.details, "short_window": True, "note": note})


def disabled_record(device: str) -> dict[str, Any]:
    """The ``energy`` entry when energy measurement is switched off (``--no-energy``)."""
    name = PRIMARY_READING.get(device, device)
    reading = EnergyReading.unavailable(name, "none", "device" if device != "cpu" else "package",
                                        "energy measurement switched off (--no-energy)", "--no-energy")
    return {"enabled": False, "device": device, "primary": name, "window": None,
            "per_sample": per_sample(reading, 0, 1), "readings": [reading.to_dict()], "telemetry": []}
