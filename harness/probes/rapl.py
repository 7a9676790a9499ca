"""CPU energy from Linux RAPL through the powercap sysfs tree.

Layout (``root`` defaults to ``/sys/class/powercap``; tests point the same code at a
fake tree): ``intel-rapl:0/{name,energy_uj,max_energy_range_uj}`` for package 0,
``intel-rapl:0:0`` ... for its subzones (``core``, ``uncore``, ``dram``),
``intel-rapl:1`` for package 1, sometimes ``psys`` for the platform. AMD CPUs expose
their package counters in the same tree. ``energy_uj`` is in microjoules and
wraps to 0 past ``max_energy_range_uj``; a delta that went backwards gets one range
added, and a slow poller thread reads the counters every ``POLL_S`` seconds so a
long window can never hide two wraps. ``intel-rapl-mmio`` zones repeat the package
counter through MMIO and are skipped so nothing is counted twice.

Since Linux 5.10 ``energy_uj`` is readable by root only (CVE-2020-8694, the
PLATYPUS side channel); a permission error becomes an ``unavailable`` reading that
says how to grant access.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tribench.harness.probes.energy import Clock, EnergyReading
from tribench.harness.probes.sampler import PeriodicSampler

POWERCAP_ROOT = Path("/sys/class/powercap")
UPDATE_PERIOD_S = 0.001  # the RAPL energy status MSRs update about every 1 ms (Intel SDM: ~976 µs)
POLL_S = 10.0            # far below the fastest wrap (~65 kJ range at several hundred W is minutes)
ZONE_PATTERN = re.compile(r"^intel-rapl:\d+(:\d+)?$")
SCOPES = {"package": "package", "dram": "dram", "psys": "machine"}
READING_NAMES = {"package": "cpu_packages", "dram": "dram", "psys": "psys"}


class RaplUnavailable(Exception):
    """RAPL cannot be read here; ``reason`` says why and what to do, ``short`` fits a table cell."""

    def __init__(self, reason: str, short: str) -> None:
        super().__init__(reason)
        self.reason, self.short = reason, short


@dataclass(frozen=True)
class Zone:
    path: Path
    zone_id: str                 # intel-rapl:0:1
    name: str                    # dram
    label: str                   # package-0/dram
    kind: str                    # package | dram | psys | core | uncore | other
    max_range_uj: int | None     # None when the range file cannot be read


def _kind(name: str) -> str:
    if name.startswith("package"):
        return "package"
    return name if name in ("dram", "psys", "core", "uncore") else "other"


def _zone_dirs(root: Path) -> dict[str, Path]:
    """Zone id -> folder, whether the tree is flat (as in /sys/class/powercap) or nested."""
    found: dict[str, Path] = {}
    for path in sorted([*root.glob("intel-rapl:*"), *root.glob("intel-rapl:*/intel-rapl:*")]):
        if ZONE_PATTERN.match(path.name) and path.is_dir():
            found.setdefault(path.name, path)
    return found


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _zone_name(path: Path) -> str:
    try:
        return (path / "name").read_text().strip()
    except OSError:
        return path.name


def discover(root: Path = POWERCAP_ROOT) -> list[Zone]:
    """Every RAPL zone under ``root``; RaplUnavailable when there is none."""
    if not root.is_dir():
        raise RaplUnavailable(
            f"no powercap interface at {root} (not Linux, or a kernel without the intel_rapl driver; "
            "virtual machines and containers usually hide RAPL)", "no RAPL on this machine")
    folders = _zone_dirs(root)
    if not folders:
        raise RaplUnavailable(
            f"no intel-rapl zones under {root} (this CPU has no RAPL, or the intel_rapl_msr driver is not "
            "loaded: try `sudo modprobe intel_rapl_msr`)", "no RAPL zones")
    names = {zone_id: _zone_name(path) for zone_id, path in folders.items()}
    zones = []
    for zone_id, path in folders.items():
        parent = zone_id.rsplit(":", 1)[0] if zone_id.count(":") == 2 else None
        name = names[zone_id]
        label = f"{names.get(parent, parent)}/{name}" if parent else name
        zones.append(Zone(path, zone_id, name, label, _kind(name), _read_int(path / "max_energy_range_uj")))
    return zones


def permission_fix(root: Path) -> str:
    return (f"since Linux 5.10 RAPL energy_uj is readable by root only (CVE-2020-8694); run as root, or grant "
            f"read access with `sudo chmod o+r {root}/intel-rapl:*/energy_uj {root}/intel-rapl:*:*/energy_uj` "
            "(lasts until reboot; a udev rule running the same chmod makes it permanent)")


def read_uj(zone: Zone, root: Path = POWERCAP_ROOT) -> int:
    """The zone's raw counter in µJ; RaplUnavailable (with the fix) when it cannot be read."""
    path = zone.path / "energy_uj"
    try:
        return int(path.read_text().strip())
    except PermissionError:
        raise RaplUnavailable(f"permission denied reading {path}: {permission_fix(root)}",
                              "RAPL energy_uj is root-only") from None
    except OSError as error:
        raise RaplUnavailable(f"cannot read {path}: {error.strerror or error}", "RAPL unreadable") from None
    except ValueError:
        raise RaplUnavailable(f"{path} does not hold a whole number of microjoules", "RAPL unreadable") from None


def delta_uj(start: int, end: int, max_range_uj: int | None) -> int | None:
    """Microjoules from ``start`` to ``end`` across at most one wrap; None if it wrapped with no known range."""
    if end >= start:
        return end - start
    if not max_range_uj:
        return None
    return end + max_range_uj - start


class ZoneCounter:
    """Accumulates one zone's energy from successive raw reads, wrap by wrap."""

    def __init__(self, zone: Zone, first: int) -> None:
        self.zone = zone
        self.last = first
        self.total_uj = 0
        self.wraps = 0
        self.broken: str | None = None

    def update(self, raw: int) -> None:
        step = delta_uj(self.last, raw, self.zone.max_range_uj)
        if step is None:
            self.broken = (f"{self.zone.path / 'energy_uj'} went backwards ({self.last} -> {raw} µJ) and "
                           "max_energy_range_uj is unreadable, so the wrap cannot be undone")
        else:
            self.wraps += raw < self.last
            self.total_uj += step
        self.last = raw


class RaplProbe:
    """Package (and DRAM, platform) energy of the CPU over the window, by counter."""

    name = "cpu_packages"
    source = "rapl"
    scope = "package"

    def __init__(self, root: Path | str = POWERCAP_ROOT, clock: Clock = time.perf_counter,
                 min_periods: int = 10, poll_s: float = POLL_S) -> None:
        self.root = Path(root)
        self.clock = clock
        self.min_periods = min_periods
        self.poll_s = poll_s
        self.counters: list[ZoneCounter] = []
        self.unavailable: RaplUnavailable | None = None
        self._lock = threading.Lock()
        self._poller: PeriodicSampler | None = None
        self._opened = self._closed = 0.0

    def open(self) -> None:
        try:
            zones = discover(self.root)
            self.counters = [ZoneCounter(zone, read_uj(zone, self.root)) for zone in zones]
        except RaplUnavailable as error:
            self.unavailable = error
            return
        self._opened = self.clock()
        self._poller = PeriodicSampler(self._poll, self.poll_s, name="tribench-rapl")
        self._poller.start()

    def _poll(self) -> None:
        with self._lock:
            for counter in self.counters:
                counter.update(read_uj(counter.zone, self.root))

    def min_window_s(self) -> float:
        return 0.0 if self.unavailable else self.min_periods * UPDATE_PERIOD_S

    def close(self) -> list[EnergyReading]:
        if self._poller is not None:
            self._poller.stop()
        if self.unavailable:
            return [EnergyReading.unavailable(self.name, "rapl", "package", self.unavailable.reason,
                                              self.unavailable.short)]
        try:
            self._poll()  # the final read, at the window's end
        except RaplUnavailable as error:
            return [EnergyReading.unavailable(self.name, "rapl", "package", error.reason, error.short)]
        self._closed = self.clock()
        if self._poller is not None and self._poller.error is not None:
            error = self._poller.error
            reason = getattr(error, "reason", f"{type(error).__name__}: {error}")
            return [EnergyReading.unavailable(self.name, "rapl", "package", f"RAPL poll failed: {reason}")]
        return self._readings()

    def _readings(self) -> list[EnergyReading]:
        window = self._closed - self._opened
        readings = []
        for kind in ("package", "dram", "psys"):
            chosen = [counter for counter in self.counters if counter.zone.kind == kind]
            if chosen:
                readings.append(self._sum(kind, chosen, window))
        if not any(counter.zone.kind == "package" for counter in self.counters):
            readings.insert(0, EnergyReading.unavailable(
                self.name, "rapl", "package", f"no package zone among the RAPL zones under {self.root}",
                "no RAPL package zone"))
        return readings

    def _sum(self, kind: str, counters: list[ZoneCounter], window: float) -> EnergyReading:
        name, scope = READING_NAMES[kind], SCOPES[kind]
        source = "+".join(f"rapl:{counter.zone.label}" for counter in counters)
        broken = [counter.broken for counter in counters if counter.broken]
        if broken:
            return EnergyReading.unavailable(name, source, scope, broken[0], "RAPL wrap unknown")
        joules = sum(counter.total_uj for counter in counters) / 1e6
        if joules == 0:
            return EnergyReading.unavailable(
                name, source, scope, f"the RAPL counter did not advance during the {window:.3g} s window "
                "(a frozen or virtualised counter)", "RAPL counter did not advance")
        return EnergyReading(name=name, method="counter", source=source, scope=scope, value=joules,
                             window_s=window, details=self._details(counters))

    def _details(self, counters: list[ZoneCounter]) -> dict[str, Any]:
        labels = {counter.zone.label for counter in counters}
        zones = {counter.zone.label: counter.total_uj / 1e6 for counter in self.counters
                 if counter.zone.label in labels or counter.zone.label.split("/")[0] in labels}
        return {
            "files": [str(counter.zone.path / "energy_uj") for counter in counters],
            "zones_j": zones,
            "wraps": sum(counter.wraps for counter in counters),
            "update_period_s": UPDATE_PERIOD_S,
            "update_period_origin": "RAPL hardware update interval (~1 ms, Intel SDM)",
        }

    def telemetry(self) -> dict[str, Any] | None:
        return None


def describe(root: Path | str = POWERCAP_ROOT) -> dict[str, Any]:
    """For ``tribench env``: which RAPL zones this machine offers, or why none can be read."""
    root = Path(root)
    try:
        zones = discover(root)
        for zone in zones:
            read_uj(zone, root)
    except RaplUnavailable as error:
        return {"source": "rapl", "available": False, "reason": error.reason, "domains": []}
    return {"source": "rapl", "available": True, "reason": None,
            "domains": [f"rapl:{zone.label}" for zone in zones], "root": str(root)}
