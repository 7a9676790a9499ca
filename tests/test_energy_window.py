"""The energy window around the timed steps (fake clock, fake probes) and the case's energy metrics."""

import itertools

import pytest

from tests.fakes import FakeClock, FakeSession
from tribench.core.spec import CaseSpec
from tribench.harness.aggregate import case_metrics
from tribench.harness.probes.energy import EnergyReading, EnergySettings, window_record
from tribench.harness.probes.energy_summary import OLD_RUN, case_energy, case_telemetry
from tribench.harness.probes.timed_window import measure_in_window
from tribench.harness.timing import TimingConfig, measure
from tribench.reports.frame import case_row
from tribench.reports.text.table import energy_cell

STEP = 0.25  # dyadic: the fake clock's sums are exact
CONFIG = TimingConfig(min_steps=6, min_time_s=1.5, max_time_s=10.0, warmup_window=2, max_warmup_steps=4)


class RecordingProbe:
    """A probe drawing 100 W that records when (in steps and seconds) it was opened and closed."""

    name, source, scope = "cpu_packages", "fake counter", "package"

    def __init__(self, session, clock, needs_s=0.0, fail_on=None):
        self.session, self.clock, self.needs_s, self.fail_on = session, clock, needs_s, fail_on
        self.opened = self.closed = None

    def open(self):
        if self.fail_on == "open":
            raise OSError("sensor gone")
        self.opened = (self.session.steps, self.clock())

    def min_window_s(self):
        return self.needs_s

    def close(self):
        if self.fail_on == "close":
            raise OSError("sensor gone")
        self.closed = (self.session.steps, self.clock())
        seconds = self.closed[1] - self.opened[1]
        return [EnergyReading(name=self.name, method="counter", source=self.source, scope=self.scope,
                              value=100.0 * seconds, window_s=seconds)]

    def telemetry(self):
        return None


def run(needs_s=0.0, settings=EnergySettings(), fail_on=None, durations=None):
    clock = FakeClock(start=0.0)
    session = FakeSession(clock, durations or itertools.repeat(STEP))
    probe = RecordingProbe(session, clock, needs_s, fail_on)
    timing, record = measure_in_window(session, CONFIG, [probe], settings, "cpu", batch_size=8, clock=clock)
    return timing, record, probe


def test_the_window_holds_the_measured_steps_only():
    timing, record, probe = run()
    assert len(timing.warmup_samples_s) == 4
    assert probe.opened == (1 + 4, 1.25)          # after the compile step and warm-up, at a step boundary
    assert probe.closed == (1 + 4 + 6, 2.75)      # right after the 6th measured step
    assert timing.samples_s == [STEP] * 6
    assert record["window"] == {"wall_s": 1.5, "timed_steps": 6, "extra_steps": 0, "steps": 6,
                                "min_window_s": 0.0, "extended": False}
    (reading,) = record["readings"]
    assert (reading["method"], reading["value"], reading["window_s"]) == ("counter", 150.0, 1.5)
    assert record["per_sample"] == {"value": 150.0 / 48, "unit": "J/sample", "method": "counter",
                                    "source": "fake counter", "scope": "package"}


def test_a_short_window_is_extended_with_untimed_steps():
    timing, record, probe = run(needs_s=2.0)
    assert timing.samples_s == [STEP] * 6         # extension steps never enter the timing samples
    assert record["window"]["extra_steps"] == 2 and record["window"]["steps"] == 8
    assert record["window"]["extended"] is True and record["window"]["wall_s"] == 2.0
    assert probe.closed[0] == 1 + 4 + 8
    assert record["readings"][0]["value"] == 200.0
    assert record["per_sample"]["value"] == 200.0 / (8 * 8)


def test_a_window_that_cannot_be_extended_enough_is_flagged_not_zeroed():
    _, record, _ = run(needs_s=3.0, settings=EnergySettings(max_extension_s=0.5))
    assert record["window"]["extra_steps"] == 2 and record["window"]["wall_s"] == 2.0
    (reading,) = record["readings"]
    assert reading["value"] == 200.0
    assert reading["details"]["short_window"] is True
    assert reading["details"]["note"].startswith("window 2 s is shorter than 3 s")


def test_energy_off_times_exactly_as_before_and_says_why():
    timing, record, probe = run(settings=EnergySettings(enabled=False))
    clock = FakeClock(start=0.0)
    plain = measure(FakeSession(clock, itertools.repeat(STEP)), CONFIG, clock)
    assert timing == plain
    assert probe.opened is None
    assert record["enabled"] is False and record["window"] is None
    assert record["per_sample"]["reason"] == "energy measurement switched off (--no-energy)"
    assert record["readings"][0]["short_reason"] == "--no-energy"


@pytest.mark.parametrize("stage", ["open", "close"])
def test_a_failing_probe_makes_energy_unavailable_not_the_case(stage):
    timing, record, _ = run(fail_on=stage)
    assert len(timing.samples_s) == 6
    (reading,) = record["readings"]
    assert reading["method"] == "unavailable" and reading["value"] is None
    word = "opening" if stage == "open" else "closing"
    assert reading["reason"] == f"the cpu_packages energy probe failed while {word}: OSError: sensor gone"


def test_the_window_is_closed_when_a_step_raises():
    def durations():
        yield from [STEP] * 8
        raise RuntimeError("device lost")

    clock = FakeClock(start=0.0)
    session = FakeSession(clock, durations())
    probe = RecordingProbe(session, clock)
    with pytest.raises(RuntimeError, match="device lost"):
        measure_in_window(session, CONFIG, [probe], EnergySettings(), "cpu", batch_size=8, clock=clock)
    assert probe.opened == (5, 1.25) and probe.closed == (8, 2.0)  # closed (threads stopped) on the way out


# --- the case's energy metrics -----------------------------------------------------------------
def repeat_with(joules, seconds, steps, idle_w=None, batch=32, method="counter"):
    reading = EnergyReading(name="cpu_packages", method=method, source="rapl:package-0", scope="package",
                            value=joules, window_s=seconds)
    baselines = {"cpu_packages": {"power_w": idle_w}} if idle_w is not None else {}
    window = {"wall_s": seconds, "timed_steps": steps, "extra_steps": 0, "steps": steps, "min_window_s": 0.01,
              "extended": False}
    record = window_record([reading], [], "cpu", window, EnergySettings(baselines=baselines), batch)
    return {"status": "ok", "energy": record}


def test_case_energy_pools_the_windows_of_every_repeat():
    repeats = [repeat_with(100.0, 1.0, 10, idle_w=50.0), repeat_with(300.0, 2.0, 30, idle_w=50.0)]
    energy = case_energy(32, 32, repeats)
    assert (energy["value"], energy["unit"], energy["method"]) == (400.0 / 1280, "J/sample", "counter")
    assert (energy["source"], energy["scope"], energy["reason"]) == ("rapl:package-0", "package", None)
    assert energy["per_repeat"] == [100.0 / 320, 300.0 / 960]
    assert energy["samples_per_joule"]["value"] == 1280 / 400.0
    assert energy["average_power"] == {"value": 400.0 / 3.0, "unit": "W", "source": "joules / window seconds"}
    assert energy["per_token"]["value"] == 400.0 / (1280 * 32)
    assert energy["net"]["value"] == (50.0 + 200.0) / 1280 and energy["net"]["idle_power_w"] == 50.0
    assert energy["readings"][0]["value"] == 400.0 and energy["readings"][0]["unit"] == "J"


def test_net_energy_needs_a_baseline_and_says_so():
    energy = case_energy(32, None, [repeat_with(100.0, 1.0, 10)])
    assert energy["net"]["value"] is None
    assert energy["net"]["reason"].startswith("no idle power: no idle baseline was measured")
    assert "per_token" not in energy


def test_unavailable_energy_keeps_the_reason_and_an_estimate_apart():
    reading = EnergyReading.unavailable("gpu", "nvml", "device", "this GPU has no energy counter (...)",
                                        "no GPU energy counter", window_s=2.0,
                                        estimate={"method": "estimate", "estimate": 320.0, "unit": "J",
                                                  "inputs": {"power_limit_w": 300.0}})
    window = {"wall_s": 2.0, "timed_steps": 10, "extra_steps": 0, "steps": 10, "min_window_s": 0.0,
              "extended": False}
    record = window_record([reading], [], "gpu", window, EnergySettings(), 32)
    energy = case_energy(32, None, [{"status": "ok", "energy": record}])
    assert energy["value"] is None and energy["method"] == "unavailable"
    assert energy["short_reason"] == "no GPU energy counter"
    assert energy["estimate"]["estimate"] == 1.0 and energy["estimate"]["unit"] == "J/sample"
    assert "value" not in energy["estimate"]
    assert energy_cell({"energy": energy}) == "n/a: no GPU energy counter"


def test_run_files_from_before_energy_say_it_was_not_recorded():
    energy = case_energy(32, None, [{"status": "ok"}])
    assert energy["value"] is None and energy["reason"] == OLD_RUN


def test_case_metrics_frame_and_table_carry_the_energy():
    spec = CaseSpec("fake", "transformer", "tiny", "infer", 32)
    repeats = [{**repeat_with(100.0, 1.0, 10, idle_w=20.0), "timing": {"samples_s": [0.1] * 10,
                "compile_time_s": 1.0, "stop_reason": "converged", "warmup_steady": True},
                "setup_time_s": 0.1, "param_count": 1, "memory": []}]
    metrics = case_metrics(spec, repeats)
    assert metrics["energy"]["per_token"]["value"] == 100.0 / (320 * 32)
    row = case_row({}, {"id": spec.id, "spec": spec.to_dict(), "status": "ok", "metrics": metrics}, "x.json")
    assert row["energy_per_sample_j"] == 100.0 / 320
    assert (row["energy_method"], row["energy_source"], row["energy_scope"]) == ("counter", "rapl:package-0",
                                                                                 "package")
    assert row["average_power_w"] == 100.0 and row["samples_per_joule"] == 3.2
    assert row["energy_net_per_sample_j"] == 80.0 / 320
    assert energy_cell(metrics) == "312 mJ/sample"


def test_throttling_is_marked_in_the_table():
    telemetry = {"source": "nvml", "device": {}, "power_limit": {}, "samples": 3, "fields": {},
                 "throttle": {"source": "s", "throttled": True, "reasons": ["sw_power_cap"],
                              "throttle_reasons": ["sw_power_cap"], "throttled_fraction": 0.5}}
    repeats = [{"energy": {"telemetry": [telemetry]}}, {"energy": {"telemetry": [
        {**telemetry, "throttle": {**telemetry["throttle"], "throttled": False, "throttle_reasons": [],
                                   "throttled_fraction": 0.0}}]}}]
    merged = case_telemetry(repeats)
    assert merged["throttle"]["throttled"] is True and merged["samples"] == 6
    energy = case_energy(32, None, [repeat_with(100.0, 1.0, 10)])
    assert energy_cell({"energy": energy, "telemetry": merged}) == "312 mJ/sample\n[bold red]throttled[/]"
