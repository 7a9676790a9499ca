"""A fake ``pynvml`` (nvidia-ml-py) for machines without an NVIDIA GPU.

It mirrors the real module's names and behaviour where tribench relies on them:
``NVMLError`` maps an error code to its subclass (``NVMLError_NotSupported``,
``NVMLError_LibraryNotFound``, ...), functions raise ``NVMLError_Uninitialized``
before ``nvmlInit``, the energy counter is in mJ and power in mW, clocks in MHz.

Configure in-process with ``configure(...)`` (tests inject the module as
``sys.modules["pynvml"]`` or name it in ``EnergySettings.nvml_module``); worker
processes read ``FAKE_NVML`` at import: ``counter`` (default: a Volta+ GPU whose
counter advances), ``no_counter`` (power reading only), ``no_power`` (neither),
``missing`` (the shared library fails to load), ``no_driver``; ``FAKE_NVML_POWER_W``
sets the power draw and ``FAKE_NVML_THROTTLE`` the clock-event bits.

Energy is exact: the counter reads ``start + power x time``, advancing only at
multiples of ``counter_period_s`` on the injectable ``clock``, so tests can
predict every joule.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# --- constants, as in nvidia-ml-py -----------------------------------------------------------
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2

nvmlClocksEventReasonGpuIdle = 0x1
nvmlClocksEventReasonApplicationsClocksSetting = 0x2
nvmlClocksEventReasonSwPowerCap = 0x4
nvmlClocksEventReasonHwSlowdown = 0x8
nvmlClocksEventReasonSyncBoost = 0x10
nvmlClocksEventReasonSwThermalSlowdown = 0x20
nvmlClocksEventReasonHwThermalSlowdown = 0x40
nvmlClocksEventReasonHwPowerBrakeSlowdown = 0x80
nvmlClocksEventReasonNone = 0x0
nvmlClocksThrottleReasonSwPowerCap = nvmlClocksEventReasonSwPowerCap
nvmlClocksThrottleReasonHwSlowdown = nvmlClocksEventReasonHwSlowdown


# --- errors, as in nvidia-ml-py ---------------------------------------------------------------
class NVMLError(Exception):
    _valClassMapping: dict[int, type] = {}
    _errcode_to_string = {
        NVML_ERROR_UNINITIALIZED: "Uninitialized",
        NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
        NVML_ERROR_NOT_SUPPORTED: "Not Supported",
        NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
        NVML_ERROR_NOT_FOUND: "Not Found",
        NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
        NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
        NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
        NVML_ERROR_GPU_IS_LOST: "GPU is lost",
        NVML_ERROR_UNKNOWN: "Unknown Error",
    }

    def __new__(cls, value):
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value=None):
        super().__init__(self.value)

    def __str__(self):
        return self._errcode_to_string.get(self.value, f"NVML Error with code {self.value}")


def _error_class(name: str, code: int) -> type:
    def new(cls, *args):
        return NVMLError.__new__(cls, code)

    klass = type(name, (NVMLError,), {"__new__": new})
    klass.__module__ = __name__
    NVMLError._valClassMapping[code] = klass
    return klass


NVMLError_Uninitialized = _error_class("NVMLError_Uninitialized", NVML_ERROR_UNINITIALIZED)
NVMLError_InvalidArgument = _error_class("NVMLError_InvalidArgument", NVML_ERROR_INVALID_ARGUMENT)
NVMLError_NotSupported = _error_class("NVMLError_NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NoPermission = _error_class("NVMLError_NoPermission", NVML_ERROR_NO_PERMISSION)
NVMLError_NotFound = _error_class("NVMLError_NotFound", NVML_ERROR_NOT_FOUND)
NVMLError_DriverNotLoaded = _error_class("NVMLError_DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_LibraryNotFound = _error_class("NVMLError_LibraryNotFound", NVML_ERROR_LIBRARY_NOT_FOUND)
NVMLError_FunctionNotFound = _error_class("NVMLError_FunctionNotFound", NVML_ERROR_FUNCTION_NOT_FOUND)
NVMLError_GpuIsLost = _error_class("NVMLError_GpuIsLost", NVML_ERROR_GPU_IS_LOST)
NVMLError_Unknown = _error_class("NVMLError_Unknown", NVML_ERROR_UNKNOWN)


# --- the fake machine -------------------------------------------------------------------------
@dataclass
class FakeGpu:
    name: str = "NVIDIA Fake V100"
    uuid: str = "GPU-00000000-fake-0000-0000-000000000000"
    energy_counter: bool = True
    power_reading: bool = True
    power_w: float = 250.0
    wobble_w: float = 0.0             # power alternates +-wobble at each power update (to time updates)
    counter_period_s: float = 0.01
    power_period_s: float = 0.02
    start_mj: int = 1_000_000_000
    power_limit_mw: int = 300_000
    sm_clock_mhz: int = 1380
    memory_clock_mhz: int = 877
    temperature_c: int = 61
    utilization_pct: int = 87
    throttle_bits: int = 0
    memory_total: int = 16 * 2**30
    memory_used: int = 3 * 2**30
    process_memory: int | None = 512 * 2**20   # this process's usage; None: NVML reports no value
    list_this_process: bool = True
    event_reasons_api: bool = True            # False: only the older ...ThrottleReasons exists


@dataclass
class FakeState:
    library: str = "ok"               # ok | missing | no_driver
    devices: list[FakeGpu] = field(default_factory=lambda: [FakeGpu()])
    clock: Callable[[], float] = time.perf_counter
    t0: float | None = None
    initialised: int = 0
    inits: int = 0
    shutdowns: int = 0
    calls: dict[str, int] = field(default_factory=dict)


STATE = FakeState()


def configure(library: str = "ok", devices: list[FakeGpu] | None = None,
              clock: Callable[[], float] = time.perf_counter) -> FakeState:
    """Reset the fake: which library state, which GPUs, which clock drives the counters."""
    global STATE
    STATE = FakeState(library=library, devices=devices if devices is not None else [FakeGpu()], clock=clock)
    STATE.t0 = clock()
    return STATE


def configure_from_env(environ=os.environ) -> FakeState:
    mode = environ.get("FAKE_NVML", "counter")
    gpu = FakeGpu(power_w=float(environ.get("FAKE_NVML_POWER_W", "250")),
                  throttle_bits=int(environ.get("FAKE_NVML_THROTTLE", "0"), 0))
    if mode in ("no_counter", "no_power"):
        gpu.energy_counter = False
        gpu.name = "NVIDIA Fake P100"
    if mode == "no_power":
        gpu.power_reading = False
    library = {"missing": "missing", "no_driver": "no_driver"}.get(mode, "ok")
    return configure(library=library, devices=[gpu])


def _count(name: str) -> None:
    STATE.calls[name] = STATE.calls.get(name, 0) + 1


def _check(name: str) -> None:
    _count(name)
    if STATE.initialised <= 0:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)


def _elapsed() -> float:
    return STATE.clock() - STATE.t0


# --- the API ----------------------------------------------------------------------------------
def nvmlInit():
    _count("nvmlInit")
    if STATE.library == "missing":
        raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
    if STATE.library == "no_driver":
        raise NVMLError(NVML_ERROR_DRIVER_NOT_LOADED)
    STATE.initialised += 1
    STATE.inits += 1


def nvmlShutdown():
    _check("nvmlShutdown")
    STATE.initialised -= 1
    STATE.shutdowns += 1


def nvmlSystemGetDriverVersion():
    _check("nvmlSystemGetDriverVersion")
    return "550.00.fake"


def nvmlDeviceGetCount():
    _check("nvmlDeviceGetCount")
    return len(STATE.devices)


def nvmlDeviceGetHandleByIndex(index):
    _check("nvmlDeviceGetHandleByIndex")
    if not 0 <= index < len(STATE.devices):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return STATE.devices[index]


def nvmlDeviceGetHandleByUUID(uuid):
    _check("nvmlDeviceGetHandleByUUID")
    for device in STATE.devices:
        if device.uuid == uuid:
            return device
    raise NVMLError(NVML_ERROR_NOT_FOUND)


def nvmlDeviceGetName(handle):
    _check("nvmlDeviceGetName")
    return handle.name


def nvmlDeviceGetUUID(handle):
    _check("nvmlDeviceGetUUID")
    return handle.uuid


def nvmlDeviceGetTotalEnergyConsumption(handle):
    """mJ since the driver loaded; advances by power x time at each counter update."""
    _check("nvmlDeviceGetTotalEnergyConsumption")
    if not handle.energy_counter:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    updated = math.floor(_elapsed() / handle.counter_period_s + 1e-9) * handle.counter_period_s
    return handle.start_mj + int(round(handle.power_w * 1000 * updated))


def nvmlDeviceGetPowerUsage(handle):
    """mW, the draw of the current power-update period."""
    _check("nvmlDeviceGetPowerUsage")
    if not handle.power_reading:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    update = math.floor(_elapsed() / handle.power_period_s + 1e-9)
    wobble = handle.wobble_w if update % 2 else -handle.wobble_w
    return int(round((handle.power_w + wobble) * 1000))


def nvmlDeviceGetEnforcedPowerLimit(handle):
    _check("nvmlDeviceGetEnforcedPowerLimit")
    return handle.power_limit_mw


def nvmlDeviceGetClockInfo(handle, type):
    _check("nvmlDeviceGetClockInfo")
    if type == NVML_CLOCK_SM:
        return handle.sm_clock_mhz
    if type == NVML_CLOCK_MEM:
        return handle.memory_clock_mhz
    raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)


def nvmlDeviceGetTemperature(handle, sensor):
    _check("nvmlDeviceGetTemperature")
    if sensor != NVML_TEMPERATURE_GPU:
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return handle.temperature_c


def nvmlDeviceGetCurrentClocksEventReasons(handle):
    _check("nvmlDeviceGetCurrentClocksEventReasons")
    if not handle.event_reasons_api:
        raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)
    return handle.throttle_bits


def nvmlDeviceGetCurrentClocksThrottleReasons(handle):
    _check("nvmlDeviceGetCurrentClocksThrottleReasons")
    return handle.throttle_bits


class c_nvmlMemory_t:
    def __init__(self, total: int, free: int, used: int) -> None:
        self.total, self.free, self.used = total, free, used


class c_nvmlUtilization_t:
    def __init__(self, gpu: int, memory: int) -> None:
        self.gpu, self.memory = gpu, memory


class nvmlFriendlyObject:
    def __init__(self, **fields) -> None:
        self.__dict__.update(fields)


def nvmlDeviceGetMemoryInfo(handle, version=None):
    _check("nvmlDeviceGetMemoryInfo")
    return c_nvmlMemory_t(handle.memory_total, handle.memory_total - handle.memory_used, handle.memory_used)


def nvmlDeviceGetUtilizationRates(handle):
    _check("nvmlDeviceGetUtilizationRates")
    return c_nvmlUtilization_t(handle.utilization_pct, 40)


def nvmlDeviceGetComputeRunningProcesses(handle):
    _check("nvmlDeviceGetComputeRunningProcesses")
    others = [nvmlFriendlyObject(pid=1, usedGpuMemory=2**30, gpuInstanceId=0, computeInstanceId=0)]
    if not handle.list_this_process:
        return others
    mine = nvmlFriendlyObject(pid=os.getpid(), usedGpuMemory=handle.process_memory, gpuInstanceId=0,
                              computeInstanceId=0)
    return others + [mine]


configure_from_env()
