"""NVIDIA GPU energy and telemetry through NVML (``pynvml`` from nvidia-ml-py, imported lazily).

Energy: the total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since
the driver loaded, Volta and newer) read at the window's two ends. Where the GPU
has no counter, power (``nvmlDeviceGetPowerUsage``, mW) is sampled in a background
thread at the reading's update period and integrated (trapezoids). Where neither
works the reading is ``unavailable``; an estimate from the power limit and the
utilisation may then be attached, labelled as such, never as the value.

Telemetry sampled during the same window: SM and memory clocks, temperature,
power, utilisation, clock-event (throttle) reasons, the device's used memory and
this process's own GPU memory; the enforced power limit once.

Which GPU: the case's ``gpu`` device is the first one the frameworks see, i.e. NVML
index 0, or the first entry of ``CUDA_VISIBLE_DEVICES`` (an index or a ``GPU-`` UUID).
NVML numbers GPUs in PCI bus order, CUDA fastest first unless
``CUDA_DEVICE_ORDER=PCI_BUS_ID``; on machines with several different GPUs set that
variable (the reading notes it when unset). MIG instances are refused: NVML energy
is per physical GPU.
"""

from __future__ import annotations

import importlib
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tribench.harness.probes.energy import Clock, EnergyReading, EnergySettings
from tribench.harness.probes.sampler import PeriodicSampler

COUNTER_SOURCE = "nvml.nvmlDeviceGetTotalEnergyConsumption"
POWER_SOURCE = "nvml.nvmlDeviceGetPowerUsage"
DEFAULT_UPDATE_PERIOD_S = 0.1  # NVML documents no rate; assumed unless the idle baseline measured it
MIN_SAMPLE_INTERVAL_S = 0.02   # never poll the driver faster than this from the sampling thread

THROTTLE_BITS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
    0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting",
}
THROTTLING = ("sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown")

FIELDS = {  # sample field -> (unit, source, scope)
    "power_w": ("W", POWER_SOURCE, "device"),
    "sm_clock_mhz": ("MHz", "nvml.nvmlDeviceGetClockInfo(NVML_CLOCK_SM)", "device"),
    "memory_clock_mhz": ("MHz", "nvml.nvmlDeviceGetClockInfo(NVML_CLOCK_MEM)", "device"),
    "temperature_c": ("°C", "nvml.nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU)", "device"),
    "utilization_pct": ("%", "nvml.nvmlDeviceGetUtilizationRates().gpu", "device"),
    "device_memory_used_bytes": ("bytes", "nvml.nvmlDeviceGetMemoryInfo().used", "device"),
    "process_memory_used_bytes": ("bytes", "nvml.nvmlDeviceGetComputeRunningProcesses(): this pid's "
                                  "usedGpuMemory", "process"),
}


class NvmlUnavailable(Exception):
    """NVML cannot tell; ``reason`` says why, ``short`` fits a table cell."""

    def __init__(self, reason: str, short: str) -> None:
        super().__init__(reason)
        self.reason, self.short = reason, short


def _is(nvml: Any, error: BaseException, *names: str) -> bool:
    classes = tuple(getattr(nvml, name) for name in names if isinstance(getattr(nvml, name, None), type))
    return bool(classes) and isinstance(error, classes)


def init_failure(nvml: Any, error: BaseException) -> NvmlUnavailable:
    """Why ``nvmlInit`` failed, in words a user can act on."""
    if _is(nvml, error, "NVMLError_LibraryNotFound"):
        return NvmlUnavailable("NVML library not found (libnvidia-ml.so.1): no NVIDIA driver on this machine",
                               "NVML library not found")
    if _is(nvml, error, "NVMLError_DriverNotLoaded"):
        return NvmlUnavailable("the NVIDIA driver is not loaded (nvmlInit: Driver Not Loaded)",
                               "NVIDIA driver not loaded")
    if _is(nvml, error, "NVMLError_NoPermission"):
        return NvmlUnavailable("no permission to use NVML (nvmlInit: Insufficient Permissions)",
                               "NVML: no permission")
    return NvmlUnavailable(f"nvmlInit failed: {type(error).__name__}: {error}", "NVML failed to start")


def load(module_name: str = "pynvml") -> Any:
    """Import and initialise NVML; NvmlUnavailable with the reason otherwise. Pair with ``nvmlShutdown``."""
    try:
        nvml = importlib.import_module(module_name)
    except ImportError as error:
        raise NvmlUnavailable(f"{module_name} cannot be imported ({error}); install nvidia-ml-py",
                              "pynvml not installed") from None
    try:
        nvml.nvmlInit()
    except Exception as error:  # NVML raises its own NVMLError subclasses
        raise init_failure(nvml, error) from None
    return nvml


def shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:  # nothing left to do about a failing shutdown
        pass


def visible_target(visible: str | None) -> tuple[str, int | str]:
    """The NVML device behind the frameworks' first GPU: ("index", n) or ("uuid", "GPU-...")."""
    if visible is None or not visible.strip():
        return "index", 0
    first = visible.split(",")[0].strip()
    if first.isdigit():
        return "index", int(first)
    if first.startswith("GPU-"):
        return "uuid", first
    if first.startswith("MIG-"):
        raise NvmlUnavailable(f"CUDA_VISIBLE_DEVICES={visible} selects a MIG instance; NVML energy and power are "
                              "per physical GPU and cannot be attributed to one instance",
                              "MIG: no per-instance energy")
    raise NvmlUnavailable(f"cannot map CUDA_VISIBLE_DEVICES={visible!r} to an NVML device", "GPU not mapped")


@dataclass
class Device:
    handle: Any
    index: int | str
    name: str
    notes: list[str] = field(default_factory=list)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def open_device(nvml: Any, visible: str | None) -> Device:
    kind, target = visible_target(visible)
    try:
        if kind == "uuid":
            handle = nvml.nvmlDeviceGetHandleByUUID(target)
        else:
            handle = nvml.nvmlDeviceGetHandleByIndex(target)
        name = _text(nvml.nvmlDeviceGetName(handle))
        count = nvml.nvmlDeviceGetCount()
    except Exception as error:
        raise NvmlUnavailable(f"NVML has no device {target} ({type(error).__name__}: {error})",
                              "NVML device not found") from None
    notes = []
    if count > 1 and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        notes.append("several GPUs and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA's first GPU may not be NVML's "
                     f"device {target}")
    return Device(handle, target, name, notes)


def call(nvml: Any, function: str, *args: Any) -> tuple[Any, str | None]:
    """``nvml.function(*args)`` -> (value, None), or (None, why not) for any NVML error."""
    method = getattr(nvml, function, None)
    if method is None:
        return None, f"this nvidia-ml-py has no {function} (upgrade nvidia-ml-py)"
    try:
        return method(*args), None
    except Exception as error:
        if _is(nvml, error, "NVMLError_NotSupported"):
            return None, f"{function} is not supported on this GPU"
        if _is(nvml, error, "NVMLError_FunctionNotFound"):
            return None, f"the driver has no {function} (driver too old)"
        if _is(nvml, error, "NVMLError_NoPermission"):
            return None, f"{function}: insufficient permissions"
        return None, f"{function} failed: {type(error).__name__}: {error}"


def clock_event_reasons(nvml: Any, handle: Any) -> tuple[int | None, str | None]:
    value, reason = call(nvml, "nvmlDeviceGetCurrentClocksEventReasons", handle)
    if value is None:  # drivers and nvidia-ml-py before 535 name it ...ThrottleReasons
        older, _ = call(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", handle)
        if older is not None:
            return older, None
    return value, reason


def throttle_names(bits: int) -> list[str]:
    return [name for bit, name in THROTTLE_BITS.items() if bits & bit]


@dataclass
class Sample:
    t: float
    values: dict[str, float | None]
    reasons: dict[str, str]
    event_bits: int | None


def process_memory(nvml: Any, handle: Any, pid: int) -> tuple[float | None, str | None]:
    processes, reason = call(nvml, "nvmlDeviceGetComputeRunningProcesses", handle)
    if processes is None:
        return None, reason
    mine = [process for process in processes if getattr(process, "pid", None) == pid]
    if not mine:
        return None, (f"this process (pid {pid}) is not among NVML's compute processes (no CUDA context yet, "
                      "or a container's PID namespace hides it)")
    used = mine[0].usedGpuMemory
    if used is None:
        return None, "NVML does not report per-process memory on this system (WDDM or MIG)"
    return float(used), None


def take_sample(nvml: Any, handle: Any, clock: Clock, pid: int, with_power: bool) -> Sample:
    """One reading of every telemetry field (each failure kept as a reason, never as 0)."""
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}

    def keep(name: str, value: Any, reason: str | None, scale: float = 1.0) -> None:
        values[name] = None if value is None else float(value) * scale
        if reason:
            reasons[name] = reason

    t = clock()
    if with_power:
        keep("power_w", *call(nvml, "nvmlDeviceGetPowerUsage", handle), scale=1e-3)
    keep("sm_clock_mhz", *call(nvml, "nvmlDeviceGetClockInfo", handle, getattr(nvml, "NVML_CLOCK_SM", 1)))
    keep("memory_clock_mhz", *call(nvml, "nvmlDeviceGetClockInfo", handle, getattr(nvml, "NVML_CLOCK_MEM", 2)))
    keep("temperature_c", *call(nvml, "nvmlDeviceGetTemperature", handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0)))
    util, reason = call(nvml, "nvmlDeviceGetUtilizationRates", handle)
    keep("utilization_pct", None if util is None else util.gpu, reason)
    memory, reason = call(nvml, "nvmlDeviceGetMemoryInfo", handle)
    keep("device_memory_used_bytes", None if memory is None else memory.used, reason)
    keep("process_memory_used_bytes", *process_memory(nvml, handle, pid))
    bits, reason = clock_event_reasons(nvml, handle)
    if reason:
        reasons["clock_event_reasons"] = reason
    return Sample(t, values, reasons, bits)


def integrate_power(samples: list[Sample], start: float, end: float) -> tuple[float | None, int]:
    """Trapezoid integral (J) of the power samples within [start, end]; (None, n) with fewer than 2."""
    points = sorted((s.t, s.values["power_w"]) for s in samples
                    if start <= s.t <= end and s.values.get("power_w") is not None)
    if len(points) < 2:
        return None, len(points)
    joules = sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(points, points[1:], strict=False))
    return joules, len(points)


def summarize_field(name: str, samples: list[Sample]) -> dict[str, Any]:
    unit, source, scope = FIELDS[name]
    values = [s.values[name] for s in samples if s.values.get(name) is not None]
    if not values:
        reason = next((s.reasons[name] for s in samples if name in s.reasons), "not sampled")
        return {"unit": unit, "source": source, "scope": scope, "value": None, "reason": reason}
    return {"unit": unit, "source": source, "scope": scope, "min": min(values),
            "median": statistics.median(values), "max": max(values), "n": len(values)}


def summarize_throttle(samples: list[Sample]) -> dict[str, Any]:
    source = "nvml.nvmlDeviceGetCurrentClocksEventReasons"
    bits = [s.event_bits for s in samples if s.event_bits is not None]
    if not bits:
        reason = next((s.reasons["clock_event_reasons"] for s in samples if "clock_event_reasons" in s.reasons),
                      "not sampled")
        return {"source": source, "throttled": None, "reason": reason}
    seen = 0
    for value in bits:
        seen |= value
    throttling = [value for value in bits if set(throttle_names(value)) & set(THROTTLING)]
    reasons = throttle_names(seen)
    return {"source": source, "reasons": reasons, "throttle_reasons": [r for r in reasons if r in THROTTLING],
            "throttled": bool(throttling), "throttled_fraction": len(throttling) / len(bits), "n": len(bits)}


def update_period(settings: EnergySettings, key: str) -> tuple[float, str]:
    """The counter's or the power reading's update period: measured by the idle baseline, else assumed."""
    measured = (settings.baselines.get("gpu") or {}).get("update_periods", {}).get(key)
    if measured:
        return float(measured), "measured during the idle baseline"
    return DEFAULT_UPDATE_PERIOD_S, "assumed (NVML documents no update rate; measure it with --idle-baseline)"


class NvmlProbe:
    """Energy of the case's GPU over the window (counter, else sampled power) plus telemetry."""

    name = "gpu"
    source = COUNTER_SOURCE
    scope = "device"

    def __init__(self, settings: EnergySettings = EnergySettings(), visible: str | None = None,
                 clock: Clock = time.perf_counter, pid: int | None = None) -> None:
        self.settings = settings
        self.visible = visible
        self.clock = clock
        self.pid = os.getpid() if pid is None else pid
        self.nvml: Any = None
        self.device: Device | None = None
        self.unavailable: NvmlUnavailable | None = None
        self.method = "unavailable"
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._sampler: PeriodicSampler | None = None
        self._telemetry: dict[str, Any] | None = None
        self.power_limit: dict[str, Any] = {}

    # -- opening ---------------------------------------------------------------------------------
    def open(self) -> None:
        try:
            self.nvml = load(self.settings.nvml_module)
            self.device = open_device(self.nvml, self.visible)
        except NvmlUnavailable as error:
            self.unavailable = error
            if self.nvml is not None:
                shutdown(self.nvml)
                self.nvml = None
            return
        handle = self.device.handle
        self.counter_start, self.counter_reason = call(self.nvml, "nvmlDeviceGetTotalEnergyConsumption", handle)
        power, self.power_reason = call(self.nvml, "nvmlDeviceGetPowerUsage", handle)
        self.method = ("counter" if self.counter_start is not None
                       else "power_sampling" if power is not None else "unavailable")
        self._read_power_limit(handle)
        self.opened_at = self.clock()  # right after the counter's first read
        first = take_sample(self.nvml, handle, self.clock, self.pid, self.method == "power_sampling")
        self._record(first)
        if self.method == "power_sampling":
            self.opened_at = first.t  # the integral starts at the first power sample
        self._sampler = PeriodicSampler(self._sample_now, self.sample_interval_s(), name="tribench-nvml")
        self._sampler.start()

    def _read_power_limit(self, handle: Any) -> None:
        limit, reason = call(self.nvml, "nvmlDeviceGetEnforcedPowerLimit", handle)
        source = "nvml.nvmlDeviceGetEnforcedPowerLimit"
        self.power_limit = ({"value": limit / 1e3, "unit": "W", "source": source} if limit is not None
                            else {"value": None, "unit": "W", "source": source, "reason": reason})

    def sample_interval_s(self) -> float:
        if self.method == "power_sampling":
            return max(MIN_SAMPLE_INTERVAL_S, update_period(self.settings, "power")[0])
        return max(MIN_SAMPLE_INTERVAL_S, self.settings.telemetry_interval_s)

    def _record(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    def _sample_now(self) -> None:
        self._record(take_sample(self.nvml, self.device.handle, self.clock, self.pid,
                                 self.method == "power_sampling"))

    def min_window_s(self) -> float:
        if self.method == "counter":
            return self.settings.min_periods * update_period(self.settings, "counter")[0]
        if self.method == "power_sampling":
            return self.settings.min_periods * self.sample_interval_s()
        return 0.0

    def raw_counters(self) -> dict[str, float]:
        """The raw counter (mJ) and power (mW) right now; the idle baseline times their updates."""
        if self.device is None:
            return {}
        raw = {}
        for key, function in (("counter", "nvmlDeviceGetTotalEnergyConsumption"), ("power", "nvmlDeviceGetPowerUsage")):
            value, _ = call(self.nvml, function, self.device.handle)
            if value is not None:
                raw[key] = float(value)
        return raw

    # -- closing ---------------------------------------------------------------------------------
    def close(self) -> list[EnergyReading]:
        if self.unavailable:
            return [EnergyReading.unavailable(self.name, "nvml", "device", self.unavailable.reason,
                                              self.unavailable.short)]
        try:
            return [self._close_measured()]
        finally:
            if self._sampler is not None:
                self._sampler.stop()
            shutdown(self.nvml)

    def _close_measured(self) -> EnergyReading:
        handle = self.device.handle
        counter_end, end_reason = (call(self.nvml, "nvmlDeviceGetTotalEnergyConsumption", handle)
                                   if self.method == "counter" else (None, None))
        self.closed_at = self.clock()
        final = take_sample(self.nvml, handle, self.clock, self.pid, self.method == "power_sampling")
        if self.method == "power_sampling":
            self.closed_at = final.t  # the integral ends at the last power sample
        self._record(final)
        if self._sampler is not None:
            self._sampler.stop()
        with self._lock:  # a sample the thread took after the final one lies outside the window
            samples = sorted((s for s in self.samples if s.t <= final.t), key=lambda s: s.t)
        self._telemetry = self._summary(samples)
        window = self.closed_at - self.opened_at
        if self.method == "counter":
            return self._counter_reading(counter_end, end_reason, window)
        if self.method == "power_sampling":
            return self._power_reading(samples, window)
        return self._unavailable_reading(samples, window)

    def _details(self, **extra: Any) -> dict[str, Any]:
        details = {"nvml_device": self.device.index, "device_name": self.device.name, **extra}
        if self.device.notes:
            details["notes"] = list(self.device.notes)
        if self._sampler is not None and self._sampler.error is not None:
            details["sampler_error"] = f"{type(self._sampler.error).__name__}: {self._sampler.error}"
        return details

    def _counter_reading(self, end: float | None, end_reason: str | None, window: float) -> EnergyReading:
        period, origin = update_period(self.settings, "counter")
        if end is None:
            return EnergyReading.unavailable(self.name, COUNTER_SOURCE, "device",
                                             f"reading the counter at the window's end failed: {end_reason}")
        delta = end - self.counter_start
        if delta <= 0:
            what = "did not advance" if delta == 0 else "went backwards (driver reloaded?)"
            return EnergyReading.unavailable(
                self.name, COUNTER_SOURCE, "device",
                f"the NVML energy counter {what} during the {window:.3g} s window (update period ~{period:g} s)",
                f"counter {what.split(' (')[0]}")
        return EnergyReading(name=self.name, method="counter", source=COUNTER_SOURCE, scope="device",
                             value=delta / 1e3, window_s=window,
                             details=self._details(counter_mj=[self.counter_start, end], update_period_s=period,
                                                   update_period_origin=origin))

    def _power_reading(self, samples: list[Sample], window: float) -> EnergyReading:
        joules, count = integrate_power(samples, self.opened_at, self.closed_at)
        interval = self.sample_interval_s()
        if joules is None or joules <= 0:
            reason = (f"only {count} power sample(s) in the {window:.3g} s window" if joules is None
                      else "the sampled power integrates to nothing")
            return EnergyReading.unavailable(self.name, POWER_SOURCE, "device", reason, "too few power samples")
        period, origin = update_period(self.settings, "power")
        return EnergyReading(
            name=self.name, method="power_sampling", source=f"{POWER_SOURCE} (sampled, trapezoid-integrated)",
            scope="device", value=joules, window_s=window,
            details=self._details(samples=count, interval_s=interval, update_period_s=period,
                                  update_period_origin=origin, counter_missing=self.counter_reason))

    def _unavailable_reading(self, samples: list[Sample], window: float) -> EnergyReading:
        reason = (f"this GPU has no energy counter ({self.counter_reason}) and no power reading "
                  f"({self.power_reason})")
        return EnergyReading.unavailable(self.name, "nvml", "device", reason, "no GPU energy counter",
                                         window_s=window, details=self._details(),
                                         estimate=self._estimate(samples, window))

    def _estimate(self, samples: list[Sample], window: float) -> dict[str, Any] | None:
        """Power limit x mean utilisation x window: a labelled guess, never a measurement."""
        utilisation = [s.values["utilization_pct"] for s in samples if s.values.get("utilization_pct") is not None]
        limit = self.power_limit.get("value")
        if limit is None or not utilisation:
            return None
        mean = statistics.fmean(utilisation) / 100
        return {"method": "estimate", "estimate": limit * mean * window, "unit": "J",
                "formula": "enforced power limit x mean GPU utilisation x window",
                "inputs": {"power_limit_w": limit, "mean_utilization": mean, "window_s": window},
                "note": "not a measurement: never used as the energy value, in comparisons or CI verdicts"}

    def _summary(self, samples: list[Sample]) -> dict[str, Any]:
        return {
            "source": "nvml", "device": {"nvml_device": self.device.index, "name": self.device.name},
            "interval_s": self.sample_interval_s(), "samples": len(samples),
            "power_limit": self.power_limit,
            "fields": {name: summarize_field(name, samples) for name in FIELDS
                       if name != "power_w" or self.method == "power_sampling"},
            "throttle": summarize_throttle(samples),
        }

    def telemetry(self) -> dict[str, Any] | None:
        return self._telemetry


def describe(module_name: str = "pynvml") -> dict[str, Any]:
    """For ``tribench env``: which NVIDIA GPUs offer an energy counter or a power reading, or why none."""
    try:
        nvml = load(module_name)
    except NvmlUnavailable as error:
        return {"source": "nvml", "available": False, "reason": error.reason, "devices": []}
    try:
        count, reason = call(nvml, "nvmlDeviceGetCount")
        devices = [_describe_device(nvml, index) for index in range(count or 0)]
    finally:
        shutdown(nvml)
    if count is None:
        return {"source": "nvml", "available": False, "reason": reason, "devices": []}
    usable = [device for device in devices if device["energy_counter"] or device["power_reading"]]
    reason = (None if usable else "no NVIDIA GPU found" if not devices
              else "no GPU has an energy counter or a power reading")
    return {"source": "nvml", "available": bool(usable), "reason": reason, "devices": devices}


def _describe_device(nvml: Any, index: int) -> dict[str, Any]:
    handle, reason = call(nvml, "nvmlDeviceGetHandleByIndex", index)
    if handle is None:
        return {"index": index, "name": "?", "energy_counter": False, "energy_counter_reason": reason,
                "power_reading": False, "power_reading_reason": reason}
    name, _ = call(nvml, "nvmlDeviceGetName", handle)
    counter, counter_reason = call(nvml, "nvmlDeviceGetTotalEnergyConsumption", handle)
    power, power_reason = call(nvml, "nvmlDeviceGetPowerUsage", handle)
    return {"index": index, "name": _text(name) if name is not None else "?",
            "energy_counter": counter is not None, "energy_counter_reason": counter_reason,
            "power_reading": power is not None, "power_reading_reason": power_reason}
