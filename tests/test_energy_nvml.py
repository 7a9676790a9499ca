"""NVML energy and telemetry through a fake pynvml injected in ``sys.modules``."""

import os
import sys
import time

import pytest

from tests.fakes import FakeClock
from tests.fakes import pynvml as fake
from tribench.harness.probes import nvml
from tribench.harness.probes.energy import EnergySettings, EnergyWindow
from tribench.harness.probes.nvml import NvmlProbe, Sample, integrate_power

QUIET = EnergySettings(telemetry_interval_s=60.0)  # the sampling thread never fires: exact sample counts


@pytest.fixture
def clock():
    return FakeClock(start=50.0)


@pytest.fixture
def gpu(monkeypatch, clock):
    """The fake as ``pynvml`` with one Volta-class GPU drawing 250 W; returns the fake's state."""
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    yield fake.configure(devices=[fake.FakeGpu()], clock=clock)
    fake.configure_from_env({})


def window(probe, clock, seconds):
    probe.open()
    clock.advance(seconds)
    readings = probe.close()
    return readings


def test_counter_is_read_at_the_window_ends(gpu, clock):
    probe = NvmlProbe(EnergySettings(), clock=clock)
    (reading,) = window(probe, clock, 2.0)
    assert (reading.name, reading.method, reading.scope, reading.unit) == ("gpu", "counter", "device", "J")
    assert reading.source == "nvml.nvmlDeviceGetTotalEnergyConsumption"
    assert reading.value == pytest.approx(500.0)           # 250 W x 2 s
    assert reading.window_s == 2.0
    assert reading.details["device_name"] == "NVIDIA Fake V100"
    assert reading.details["update_period_origin"].startswith("assumed")
    assert gpu.inits == gpu.shutdowns == 1                # every nvmlInit is paired
    assert not probe._sampler.running                     # the sampling thread stopped and was joined
    assert probe.min_window_s() == pytest.approx(10 * nvml.DEFAULT_UPDATE_PERIOD_S)


def test_the_baseline_update_period_sizes_the_window(gpu, clock):
    settings = EnergySettings(baselines={"gpu": {"power_w": 60.0, "update_periods": {"counter": 0.02}}})
    probe = NvmlProbe(settings, clock=clock)
    probe.open()
    assert probe.min_window_s() == pytest.approx(0.2)
    probe.close()


def test_a_window_shorter_than_the_counter_update_is_unavailable_not_zero(gpu, clock):
    gpu.devices[0].counter_period_s = 0.5
    clock.advance(0.1)  # the fake counter last updated at 0.0; the next update is at 0.5
    (reading,) = window(NvmlProbe(EnergySettings(), clock=clock), clock, 0.2)
    assert reading.method == "unavailable" and reading.value is None
    assert reading.reason == ("the NVML energy counter did not advance during the 0.2 s window "
                              "(update period ~0.1 s)")
    assert reading.short_reason == "counter did not advance"


def test_without_a_counter_power_is_sampled_and_integrated(gpu, clock):
    gpu.devices[0].energy_counter = False
    probe = NvmlProbe(EnergySettings(), clock=clock)
    (reading,) = window(probe, clock, 3.0)
    assert reading.method == "power_sampling"
    assert reading.source == "nvml.nvmlDeviceGetPowerUsage (sampled, trapezoid-integrated)"
    assert reading.value == pytest.approx(750.0)          # 250 W x 3 s, open and close samples at least
    assert reading.details["counter_missing"] == "nvmlDeviceGetTotalEnergyConsumption is not supported on this GPU"
    assert gpu.inits == gpu.shutdowns == 1


def test_the_power_sampler_thread_samples_and_stops(gpu):
    fake.configure(devices=[fake.FakeGpu(energy_counter=False)])  # the real clock: the thread really runs
    settings = EnergySettings(baselines={"gpu": {"update_periods": {"power": 0.02}}})
    probe = NvmlProbe(settings)
    probe.open()
    assert probe.sample_interval_s() == 0.02
    time.sleep(0.3)
    (reading,) = probe.close()
    assert len(probe.samples) >= 6                        # open + close + the thread's samples
    assert reading.details["samples"] == len([s for s in probe.samples if s.t <= probe.closed_at])
    assert reading.value == pytest.approx(250.0 * reading.window_s, rel=1e-6)
    assert not probe._sampler.running
    count = len(probe.samples)
    time.sleep(0.05)
    assert len(probe.samples) == count                    # nothing samples after close


def test_trapezoids_follow_changing_power():
    samples = [Sample(t, {"power_w": p}, {}, None) for t, p in ((0.0, 100.0), (1.0, 200.0), (3.0, 200.0),
                                                                (9.0, 999.0))]
    assert integrate_power(samples, 0.0, 3.0) == (150.0 + 400.0, 3)   # the sample past the window is ignored
    assert integrate_power(samples[:1], 0.0, 3.0) == (None, 1)


def test_missing_library(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    state = fake.configure(library="missing")
    (reading,) = window(NvmlProbe(EnergySettings()), FakeClock(), 1.0)
    assert (reading.method, reading.value, reading.source) == ("unavailable", None, "nvml")
    assert reading.reason == "NVML library not found (libnvidia-ml.so.1): no NVIDIA driver on this machine"
    assert reading.short_reason == "NVML library not found"
    assert state.inits == 0 and state.calls == {"nvmlInit": 1}
    fake.configure_from_env({})


def test_the_real_nvidia_ml_py_is_read_the_same_way():
    """The real module on this machine: a GPU machine lists its GPUs; a machine without a driver says so."""
    assert sys.modules.get("pynvml") is not fake
    real = nvml.describe("pynvml")
    if real["available"]:
        assert real["devices"] and real["reason"] is None
    else:
        assert real["reason"] in ("NVML library not found (libnvidia-ml.so.1): no NVIDIA driver on this machine",
                                  "the NVIDIA driver is not loaded (nvmlInit: Driver Not Loaded)",
                                  "no NVIDIA GPU found")


def test_a_module_that_cannot_be_imported():
    (reading,) = window(NvmlProbe(EnergySettings(nvml_module="no_such_nvml_module")), FakeClock(), 1.0)
    assert reading.short_reason == "pynvml not installed"
    assert "install nvidia-ml-py" in reading.reason


def test_no_counter_and_no_power_is_unavailable_with_a_separate_estimate(gpu, clock):
    gpu.devices[0].energy_counter = False
    gpu.devices[0].power_reading = False
    (reading,) = window(NvmlProbe(EnergySettings(), clock=clock), clock, 2.0)
    assert reading.method == "unavailable" and reading.value is None
    assert reading.reason == ("this GPU has no energy counter (nvmlDeviceGetTotalEnergyConsumption is not "
                              "supported on this GPU) and no power reading (nvmlDeviceGetPowerUsage is not "
                              "supported on this GPU)")
    estimate = reading.estimate
    assert estimate["method"] == "estimate" and "value" not in estimate
    assert estimate["estimate"] == pytest.approx(300.0 * 0.87 * 2.0)
    assert estimate["inputs"] == {"power_limit_w": 300.0, "mean_utilization": 0.87, "window_s": 2.0}


def test_telemetry_is_summarised_with_sources_and_throttling(gpu, clock):
    gpu.devices[0].throttle_bits = fake.nvmlClocksEventReasonSwPowerCap | fake.nvmlClocksEventReasonGpuIdle
    probe = NvmlProbe(QUIET, clock=clock)
    window(probe, clock, 1.0)
    telemetry = probe.telemetry()
    fields = telemetry["fields"]
    assert fields["sm_clock_mhz"] == {"unit": "MHz", "source": "nvml.nvmlDeviceGetClockInfo(NVML_CLOCK_SM)",
                                      "scope": "device", "min": 1380.0, "median": 1380.0, "max": 1380.0, "n": 2}
    assert fields["memory_clock_mhz"]["max"] == 877.0
    assert fields["temperature_c"]["max"] == 61.0
    assert fields["device_memory_used_bytes"]["max"] == 3 * 2**30
    assert fields["process_memory_used_bytes"]["max"] == 512 * 2**20
    assert fields["process_memory_used_bytes"]["scope"] == "process"
    assert "power_w" not in fields  # the counter path does not poll power
    assert telemetry["power_limit"] == {"value": 300.0, "unit": "W", "source": "nvml.nvmlDeviceGetEnforcedPowerLimit"}
    throttle = telemetry["throttle"]
    assert throttle["throttled"] is True
    assert throttle["reasons"] == ["gpu_idle", "sw_power_cap"]
    assert throttle["throttle_reasons"] == ["sw_power_cap"]
    assert throttle["throttled_fraction"] == 1.0


def test_older_drivers_use_the_throttle_reasons_call(gpu, clock):
    gpu.devices[0].event_reasons_api = False
    gpu.devices[0].throttle_bits = fake.nvmlClocksThrottleReasonHwSlowdown
    probe = NvmlProbe(QUIET, clock=clock)
    window(probe, clock, 1.0)
    assert probe.telemetry()["throttle"]["throttle_reasons"] == ["hw_slowdown"]
    assert gpu.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 2


def test_process_memory_not_listed_says_why(gpu, clock):
    gpu.devices[0].list_this_process = False
    probe = NvmlProbe(EnergySettings(), clock=clock)
    window(probe, clock, 1.0)
    entry = probe.telemetry()["fields"]["process_memory_used_bytes"]
    assert entry["value"] is None
    assert entry["reason"].startswith(f"this process (pid {os.getpid()}) is not among NVML's compute processes")


@pytest.mark.parametrize("visible, expected", [(None, "NVIDIA Fake V100"), ("1", "NVIDIA Fake A100"),
                                               ("GPU-a100, 0", "NVIDIA Fake A100")])
def test_cuda_visible_devices_picks_the_nvml_device(gpu, clock, visible, expected, monkeypatch):
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    gpu.devices.append(fake.FakeGpu(name="NVIDIA Fake A100", uuid="GPU-a100"))
    (reading,) = window(NvmlProbe(EnergySettings(), visible=visible, clock=clock), clock, 1.0)
    assert reading.details["device_name"] == expected
    assert "notes" not in reading.details


def test_several_gpus_without_pci_bus_order_are_noted(gpu, clock, monkeypatch):
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    gpu.devices.append(fake.FakeGpu(name="NVIDIA Fake A100", uuid="GPU-a100"))
    (reading,) = window(NvmlProbe(EnergySettings(), clock=clock), clock, 1.0)
    assert "CUDA_DEVICE_ORDER is not PCI_BUS_ID" in reading.details["notes"][0]


@pytest.mark.parametrize("visible, short", [("MIG-1234", "MIG: no per-instance energy"), ("7", "NVML device not found"),
                                            ("-1", "GPU not mapped")])
def test_unmappable_devices_are_unavailable(gpu, clock, visible, short):
    (reading,) = window(NvmlProbe(EnergySettings(), visible=visible, clock=clock), clock, 1.0)
    assert reading.method == "unavailable" and reading.short_reason == short
    assert gpu.inits == gpu.shutdowns == 1


def test_a_probe_that_raises_becomes_unavailable_and_is_still_closed(gpu, clock, monkeypatch):
    probe = NvmlProbe(EnergySettings(), clock=clock)

    def boom(*args):
        raise RuntimeError("driver fell over")

    monkeypatch.setattr(nvml, "take_sample", boom)
    energy_window = EnergyWindow([probe], clock)
    energy_window.open()
    clock.advance(1.0)
    readings, telemetry = energy_window.close()
    (reading,) = readings
    assert reading.method == "unavailable" and reading.short_reason == "probe failed"
    assert reading.reason == "the gpu energy probe failed while opening: RuntimeError: driver fell over"
    assert telemetry == []
    assert gpu.inits == gpu.shutdowns == 1


def test_describe_lists_gpus_and_what_they_offer(gpu):
    gpu.devices.append(fake.FakeGpu(name="NVIDIA Fake P100", energy_counter=False))
    described = nvml.describe("pynvml")
    assert described["available"] is True
    assert [(d["name"], d["energy_counter"], d["power_reading"]) for d in described["devices"]] == [
        ("NVIDIA Fake V100", True, True), ("NVIDIA Fake P100", False, True)]
    assert gpu.inits == gpu.shutdowns == 1
