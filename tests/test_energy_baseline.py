"""The idle baseline: idle power per source and the sources' real update periods (fake clock, fake sources)."""

import pytest

from tests.fakes import FakeClock
from tests.fakes import pynvml as fake
from tests.test_energy_rapl import make_tree
from tribench.harness.probes.baseline import ChangeTimer, change_period, measure_idle
from tribench.harness.probes.energy import EnergySettings

FAKE_NVML = "tests.fakes.pynvml"


class Idle:
    """``sleep`` for the baseline: moves the fake clock and lets the fake RAPL counter run at ``watts``."""

    def __init__(self, clock, tree=None, watts=40.0):
        self.clock, self.tree, self.watts = clock, tree, watts
        self.energy_uj = 1_000_000.0
        self.slept = 0.0

    def __call__(self, seconds):
        self.clock.advance(seconds)
        self.slept += seconds
        if self.tree is not None:
            self.energy_uj += self.watts * 1e6 * seconds
            (self.tree / "intel-rapl:0" / "energy_uj").write_text(f"{round(self.energy_uj)}\n")


@pytest.fixture
def clock():
    return FakeClock(start=0.0)


@pytest.fixture
def idle_gpu(clock):
    """A GPU idling at 60 W whose counter updates every 10 ms and whose power reading every 20 ms."""
    yield fake.configure(devices=[fake.FakeGpu(power_w=60.0, wobble_w=1.0, counter_period_s=0.01,
                                               power_period_s=0.02)], clock=clock)
    fake.configure_from_env({})


def test_gpu_idle_power_and_update_periods(idle_gpu, clock, tmp_path):
    settings = EnergySettings(idle_baseline_s=2.0, nvml_module=FAKE_NVML, powercap_root=str(tmp_path / "none"),
                              telemetry_interval_s=60.0)
    sleep = Idle(clock)
    baseline = measure_idle({"gpu", "cpu"}, settings, clock, sleep)
    assert baseline["seconds"] == 2.0 and baseline["reason"] is None
    gpu = baseline["readings"]["gpu"]
    assert (gpu["method"], gpu["source"], gpu["scope"]) == ("counter", "nvml.nvmlDeviceGetTotalEnergyConsumption",
                                                           "device")
    assert gpu["power_w"] == pytest.approx(60.0, rel=0.01)
    assert gpu["update_periods"]["counter"] == pytest.approx(0.01)
    assert gpu["update_periods"]["power"] == pytest.approx(0.02)
    host = baseline["readings"]["cpu_packages"]
    assert host["power_w"] is None and host["reason"].startswith("no powercap interface")
    assert idle_gpu.inits == idle_gpu.shutdowns == 1
    assert sleep.slept == pytest.approx(2.0, abs=0.01)


def test_cpu_idle_power_from_rapl(clock, tmp_path):
    tree = make_tree(tmp_path, {"intel-rapl:0": ("package-0", 1_000_000)})
    settings = EnergySettings(idle_baseline_s=1.5, powercap_root=str(tree))
    sleep = Idle(clock, tree, watts=40.0)
    baseline = measure_idle({"cpu"}, settings, clock, sleep)
    package = baseline["readings"]["cpu_packages"]
    assert package["method"] == "counter" and package["source"] == "rapl:package-0"
    assert package["power_w"] == pytest.approx(40.0)
    assert package["energy_j"] == pytest.approx(60.0)
    assert sleep.slept == 1.5  # nothing to poll: one plain sleep


def test_nothing_to_measure_costs_no_time(clock, tmp_path):
    sleep = Idle(clock)
    baseline = measure_idle({"cpu"}, EnergySettings(powercap_root=str(tmp_path / "none")), clock, sleep)
    assert sleep.slept == 0.0
    assert baseline["seconds"] == 0.0
    assert baseline["reason"] == "no idle baseline: no energy source to measure"
    assert baseline["readings"]["cpu_packages"]["power_w"] is None


@pytest.mark.parametrize("settings, why", [(EnergySettings(idle_baseline_s=0), "--idle-baseline 0"),
                                           (EnergySettings(enabled=False), "energy measurement is off")])
def test_switched_off(settings, why, clock):
    sleep = Idle(clock)
    assert measure_idle({"cpu"}, settings, clock, sleep) == {"seconds": 0.0, "reason": f"no idle baseline: {why}",
                                                            "readings": {}}
    assert sleep.slept == 0.0


def test_change_period_is_the_median_interval_between_changes():
    timer = ChangeTimer()
    for now, value in [(0.0, 1), (0.1, 1), (0.2, 2), (0.3, 2), (0.4, 3), (0.55, 4), (0.6, 4), (0.8, 5)]:
        timer.observe(now, {"counter": value})
    assert timer.periods()["counter"] == pytest.approx(0.2)
    assert change_period([0.1, 0.2]) is None  # two changes are one interval: not enough to trust
