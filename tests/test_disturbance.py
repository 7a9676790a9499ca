"""Evidence of a disturbed process: the /proc window (fake trees), the level-shift detector, the verdict,
the nesting inside the energy window and the worker's record."""

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fakes import FakeClock, FakeSession
from tests.helpers import fake_env, tribench
from tribench.core.readings import Reading
from tribench.core.spec import CaseSpec
from tribench.harness.aggregate import case_metrics
from tribench.harness.level_shift import LevelShift, LevelShiftRule, find_level_shift
from tribench.harness.probes.disturbance import DisturbanceLimits, DisturbanceWindow, verdict
from tribench.harness.probes.energy import EnergyReading, EnergySettings
from tribench.harness.probes.timed_window import measure_in_window
from tribench.harness.timing import NestedWindows, TimingConfig
from tribench.harness.worker import disturbance_evidence, run_case

MS = 1e-3
STAT = "cpu  8353 0 1538 106117 340 0 85 {steal} 0 0\ncpu0 434 0 310 57312 87 0 61 7 0 0\n" \
       "cpu1 7918 0 1227 48805 252 0 24 6 0 0\nintr 1 2 3\nctxt 12345\n"
PRESSURE = "some avg10=0.22 avg60=0.14 avg300=0.13 total={total}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"


class FakeProc:
    """A /proc tree in a temporary folder whose counters the test moves between open and close."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "proc" / "pressure").mkdir(parents=True)

    def write(self, steal_ticks: int | None = None, pressure_us: int | None = None) -> None:
        if steal_ticks is not None:
            (self.root / "proc" / "stat").write_text(STAT.format(steal=steal_ticks))
        if pressure_us is not None:
            (self.root / "proc" / "pressure" / "cpu").write_text(PRESSURE.format(total=pressure_us))


class FakeSwitches:
    def __init__(self, *counts: tuple[int, int]) -> None:
        self._counts = iter(counts)

    def __call__(self) -> tuple[int, int]:
        return next(self._counts)


def window_over(proc, before, after, wall_s=4.0, switches=((10, 5), (30, 6))):
    """Open a window on the fake tree at ``before`` counters, move them to ``after`` and the clock by ``wall_s``."""
    clock = FakeClock(start=0.0)
    window = DisturbanceWindow(root=str(proc.root), clock=clock, context_switches=FakeSwitches(*switches),
                               ticks_per_s=100)
    proc.write(**before)
    window.open()
    proc.write(**after)
    clock.advance(wall_s)
    window.close(session=None)
    return {reading.name: reading for reading in window.readings()}


@pytest.fixture
def proc(tmp_path):
    return FakeProc(tmp_path)


# --- the window over a fake /proc ------------------------------------------------------------------------


def test_steal_pressure_and_context_switches_over_the_window(proc):
    readings = window_over(proc, {"steal_ticks": 13, "pressure_us": 2_000_000},
                           {"steal_ticks": 113, "pressure_us": 3_000_000})
    assert readings["steal_s"].value == 1.0                 # 100 ticks at USER_HZ 100
    assert readings["steal_fraction"].value == 0.125        # 1 s of 4 s x 2 CPUs
    assert readings["steal_fraction"].unit == "fraction of window wall time x 2 CPUs"
    assert readings["cpu_pressure_some_s"].value == 1.0
    assert readings["cpu_pressure_some_fraction"].value == 0.25
    assert readings["involuntary_context_switches"].value == 20
    assert readings["voluntary_context_switches"].value == 1
    assert readings["steal_s"].source == "/proc/stat: 'cpu' line, steal (8th value) in USER_HZ ticks"
    assert readings["cpu_pressure_some_s"].source == "/proc/pressure/cpu: 'some' line, total (microseconds)"
    assert readings["involuntary_context_switches"].source == "resource.getrusage(RUSAGE_SELF).ru_nivcsw"
    assert readings["involuntary_context_switches"].scope == "process (all its threads), measured window"
    assert all(reading.available for reading in readings.values())


def test_a_missing_pressure_file_is_unavailable_with_the_reason_not_zero(proc):
    readings = window_over(proc, {"steal_ticks": 13}, {"steal_ticks": 13})
    path = proc.root / "proc" / "pressure" / "cpu"
    reason = f"at the window's open: {path} does not exist (kernel without pressure stall information, CONFIG_PSI)"
    if not sys.platform.startswith("linux"):
        reason = reason.replace("does not exist", f"does not exist: not Linux (sys.platform is {sys.platform!r})")
    for name in ("cpu_pressure_some_s", "cpu_pressure_some_fraction"):
        assert readings[name].value is None
        assert readings[name].reason == reason
        assert readings[name].to_dict()["status"] == "unavailable"
    assert readings["steal_s"].value == 0.0  # a real 0: the counter was read twice and did not move
    assert readings["steal_fraction"].value == 0.0


def test_a_file_gone_before_the_close_names_the_close(proc):
    clock = FakeClock(start=0.0)
    window = DisturbanceWindow(root=str(proc.root), clock=clock, context_switches=FakeSwitches((1, 1), (2, 2)),
                               ticks_per_s=100)
    proc.write(steal_ticks=13, pressure_us=5)
    window.open()
    (proc.root / "proc" / "stat").unlink()
    clock.advance(1.0)
    window.close(None)
    readings = {reading.name: reading for reading in window.readings()}
    assert readings["steal_s"].reason == f"at the window's close: {proc.root / 'proc' / 'stat'} does not exist"
    assert readings["cpu_pressure_some_s"].value == 0.0


def test_a_counter_that_went_backwards_is_unavailable(proc):
    readings = window_over(proc, {"steal_ticks": 500, "pressure_us": 10}, {"steal_ticks": 400, "pressure_us": 10})
    assert readings["steal_s"].reason == "the steal tick count went backwards over the window (500 -> 400)"
    assert readings["steal_fraction"].value is None


def test_a_stat_line_without_steal_is_unavailable(proc):
    (proc.root / "proc" / "stat").write_text("cpu  1 2 3 4 5 6 7\ncpu0 1 2 3 4 5 6 7\n")
    readings = window_over(proc, {"pressure_us": 10}, {"pressure_us": 10})
    assert readings["steal_s"].reason == (f"at the window's open: {proc.root / 'proc' / 'stat'}: the 'cpu' line has "
                                          "no steal value (8th): 'cpu 1 2 3 4 5 6 7'")


def test_a_window_never_closed_reports_every_reading_unavailable(proc):
    window = DisturbanceWindow(root=str(proc.root))
    window.open()
    readings = window.readings()
    assert [reading.name for reading in readings] == [
        "steal_s", "steal_fraction", "cpu_pressure_some_s", "cpu_pressure_some_fraction",
        "involuntary_context_switches", "voluntary_context_switches"]
    assert {reading.reason for reading in readings} == {
        "the disturbance window was not opened and closed around the measured steps"}
    assert window.wall_s is None


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc")
def test_the_real_proc_gives_measured_non_negative_readings():
    window = DisturbanceWindow()
    window.open()
    window.close(None)
    readings = {reading.name: reading for reading in window.readings()}
    names = ["steal_s", "steal_fraction", "involuntary_context_switches", "voluntary_context_switches"]
    if Path("/proc/pressure/cpu").exists():
        names += ["cpu_pressure_some_s", "cpu_pressure_some_fraction"]
    for name in names:
        assert readings[name].value is not None and readings[name].value >= 0, readings[name]


# --- the level-shift detector -----------------------------------------------------------------------------


def log_normal(seed, n, sigma=0.03, median=MS):
    return median * np.exp(np.random.default_rng(seed).normal(0.0, sigma, n))


def test_the_issue_example_is_found_at_step_300():
    shift = find_level_shift([1.0 * MS] * 300 + [2.7 * MS] * 200)
    assert shift == LevelShift(index=300, steps=500, median_before_s=1.0 * MS, median_after_s=2.7 * MS,
                               ratio=2.7 * MS / (1.0 * MS), p_value=0.0)


def test_the_issue_example_with_noise_is_found_at_step_300():
    times = np.r_[log_normal(1, 300), log_normal(2, 200, median=2.7 * MS)]
    shift = find_level_shift(times)
    assert shift is not None and shift.index == 300
    assert shift.ratio == pytest.approx(2.7, rel=0.02)
    assert shift.p_value < 1e-10


def test_a_speed_up_is_a_level_shift_too():
    shift = find_level_shift([2.0 * MS] * 100 + [1.0 * MS] * 100)
    assert shift is not None and (shift.index, shift.ratio) == (100, 0.5)


def test_iid_log_normal_noise_gives_no_shift_in_at_least_99_of_100_seeds():
    sizes = np.random.default_rng(12).integers(50, 2001, size=100)
    found = [seed for seed, n in enumerate(sizes) if find_level_shift(log_normal(seed, int(n))) is not None]
    assert len(found) <= 1, found


def test_the_significance_test_alone_keeps_its_false_positive_rate():
    """Size rule off (min_ratio 1): only the Bonferroni-corrected Welch test stands between noise and a shift."""
    significance_only = LevelShiftRule(min_ratio=1.0)
    sizes = np.random.default_rng(7).integers(50, 2001, size=200)
    found = [seed for seed, n in enumerate(sizes)
             if find_level_shift(log_normal(seed, int(n)), significance_only) is not None]
    assert len(found) <= 2, found  # alpha = 1% of 200 seeds is 2; Bonferroni keeps it below


def test_a_five_percent_shift_is_significant_but_below_the_size_rule():
    times = np.r_[log_normal(3, 300), log_normal(4, 200, median=1.05 * MS)]
    assert find_level_shift(times) is None
    significant = find_level_shift(times, LevelShiftRule(min_ratio=1.0))
    assert significant is not None and abs(significant.index - 300) <= 10


def test_a_few_isolated_stalls_are_not_a_level_shift():
    for seed in range(20):
        times = log_normal(seed, 500)
        stalls = np.random.default_rng(100 + seed).choice(500, size=5, replace=False)
        times[stalls] *= 10
        assert find_level_shift(times) is None, seed


def test_segments_must_be_long_enough():
    assert LevelShiftRule().min_segment(50) == 10
    assert LevelShiftRule().min_segment(2000) == 200
    assert find_level_shift([1.0 * MS] * 10 + [3.0 * MS] * 9) is None  # 19 steps: two segments of 10 do not fit
    assert find_level_shift([1.0 * MS] * 990 + [3.0 * MS] * 10) is None  # a 1% tail is below 10% of the steps
    assert find_level_shift([1.0 * MS] * 10 + [3.0 * MS] * 10).index == 10


def test_constant_steps_have_no_shift_and_bad_steps_are_refused():
    assert find_level_shift([0.25] * 100) is None
    with pytest.raises(ValueError, match="positive"):
        find_level_shift([1.0] * 50 + [0.0] * 50)


# --- the verdict ------------------------------------------------------------------------------------------


def fraction(name, value):
    return Reading(name, "fraction", "fake", "machine", value)


def test_quiet_readings_are_not_disturbed():
    readings = [fraction("steal_fraction", 0.05), fraction("cpu_pressure_some_fraction", 0.20),
                Reading("involuntary_context_switches", "switches", "fake", "process", 100_000)]
    assert verdict(readings, None) == (False, [])  # at the limits is not above them; switches never count


def test_each_rule_gives_its_own_reason():
    shift = LevelShift(index=300, steps=500, median_before_s=1.0 * MS, median_after_s=2.7 * MS, ratio=2.7,
                       p_value=0.0)
    readings = [fraction("steal_fraction", 0.0625), fraction("cpu_pressure_some_fraction", 0.5)]
    assert verdict(readings, shift) == (True, [
        "level shift at measured step 300 of 500: median step time 1 ms -> 2.7 ms (x2.7, p=0)",
        "steal time 6.2% of the window's CPU time (limit 5%)",
        "CPU pressure 'some' 50.0% of the window: runnable tasks waited for a CPU (limit 20%)",
    ])


def test_limits_are_settings():
    readings = [fraction("steal_fraction", 0.03)]
    assert verdict(readings, None, DisturbanceLimits(max_steal_fraction=0.02)) == (
        True, ["steal time 3.0% of the window's CPU time (limit 2%)"])


def test_unavailable_readings_are_no_evidence_either_way():
    readings = [Reading.unavailable("steal_fraction", "fraction", "fake", "machine", "gone"),
                Reading.unavailable("cpu_pressure_some_fraction", "fraction", "fake", "machine", "no PSI")]
    assert verdict(readings, None) == (False, [])


# --- the window around the measured steps -----------------------------------------------------------------


class Recorder:
    def __init__(self, name, log, fail_close=False):
        self.name, self.log, self.fail_close = name, log, fail_close

    def open(self):
        self.log.append(f"open {self.name}")

    def close(self, session):
        self.log.append(f"close {self.name}")
        if self.fail_close:
            raise OSError(f"{self.name} broke")


def test_nested_windows_open_in_order_and_close_in_reverse_even_after_an_error():
    log = []
    nested = NestedWindows(Recorder("energy", log), None, Recorder("disturbance", log, fail_close=True))
    nested.open()
    with pytest.raises(OSError, match="disturbance broke"):
        nested.close(session=None)
    assert log == ["open energy", "open disturbance", "close disturbance", "close energy"]


class SlowCounterProbe:
    """An energy probe that needs a 3 s window: the energy window runs untimed steps to reach it."""

    name, source, scope = "cpu_packages", "fake counter", "package"

    def __init__(self, clock):
        self.clock = clock

    def open(self):
        self.opened = self.clock()

    def min_window_s(self):
        return 3.0

    def close(self):
        seconds = self.clock() - self.opened
        return [EnergyReading(name=self.name, method="counter", source=self.source, scope=self.scope,
                              value=10.0 * seconds, window_s=seconds)]

    def telemetry(self):
        return None


CONFIG = TimingConfig(min_steps=6, min_time_s=1.5, max_time_s=10.0, warmup_window=2, max_warmup_steps=4)


@pytest.mark.parametrize("energy_on", [True, False])
def test_the_disturbance_window_spans_the_measured_steps_only(proc, energy_on):
    proc.write(steal_ticks=0, pressure_us=0)
    clock = FakeClock(start=0.0)
    session = FakeSession(clock, itertools.repeat(0.25))
    window = DisturbanceWindow(root=str(proc.root), clock=clock, ticks_per_s=100)
    timing, energy = measure_in_window(session, CONFIG, [SlowCounterProbe(clock)], EnergySettings(enabled=energy_on),
                                       "cpu", batch_size=8, clock=clock, inner=window)
    assert len(timing.samples_s) == 6 and timing.measure_wall_s == 1.5
    assert window.wall_s == 1.5  # no compile, warm-up or extension step inside
    if energy_on:
        assert (energy["window"]["wall_s"], energy["window"]["extra_steps"]) == (3.0, 6)


# --- the worker's record ----------------------------------------------------------------------------------


def test_the_record_is_json_with_readings_shift_verdict_and_limits(proc):
    proc.write(steal_ticks=13, pressure_us=0)
    clock = FakeClock(start=0.0)
    window = DisturbanceWindow(root=str(proc.root), clock=clock, context_switches=FakeSwitches((0, 0), (7, 1)),
                               ticks_per_s=100)
    window.open()
    proc.write(steal_ticks=13, pressure_us=1_000_000)
    clock.advance(2.0)
    window.close(None)
    record = json.loads(json.dumps(disturbance_evidence(window, [1.0 * MS] * 300 + [2.7 * MS] * 200)))
    assert record["window_s"] == 2.0
    assert record["level_shift"]["index"] == 300 and record["level_shift"]["ratio"] == 2.7
    assert record["disturbed"] is True
    assert record["reasons"] == [
        "level shift at measured step 300 of 500: median step time 1 ms -> 2.7 ms (x2.7, p=0)",
        "CPU pressure 'some' 50.0% of the window: runnable tasks waited for a CPU (limit 20%)",
    ]
    assert record["limits"] == {"max_steal_fraction": 0.05, "max_pressure_fraction": 0.2, "level_shift": {
        "alpha": 0.01, "min_ratio": 1.1, "min_segment_steps": 10, "min_segment_fraction": 0.1}}
    values = {reading["name"]: (reading["value"], reading["status"]) for reading in record["readings"]}
    assert values == {"steal_s": (0.0, "measured"), "steal_fraction": (0.0, "measured"),
                      "cpu_pressure_some_s": (1.0, "measured"), "cpu_pressure_some_fraction": (0.5, "measured"),
                      "involuntary_context_switches": (7, "measured"), "voluntary_context_switches": (1, "measured")}


def test_run_case_carries_the_disturbance_record(proc, monkeypatch):
    monkeypatch.setenv("TRIBENCH_EXTRA_BACKENDS", "fake=tests.fakes.backend")
    monkeypatch.setenv("FAKE_STEP_S", "0.0001")
    proc.write(steal_ticks=13)  # no pressure file: unavailable, with the reason
    spec = CaseSpec("fake", "cnn", "tiny", "infer", 4)
    result = run_case(spec, TimingConfig().with_fixed_steps(20, warmup_steps=2), EnergySettings(enabled=False),
                      disturbance=DisturbanceWindow(root=str(proc.root)))
    record = json.loads(json.dumps(result["disturbance"]))
    readings = {reading["name"]: reading for reading in record["readings"]}
    assert readings["steal_s"]["value"] == 0.0
    assert readings["cpu_pressure_some_s"]["status"] == "unavailable"
    assert "pressure" in readings["cpu_pressure_some_s"]["reason"]
    assert readings["involuntary_context_switches"]["status"] == "measured"
    wall = result["timing"]["measure_wall_s"]
    assert wall <= record["window_s"] < wall + 0.05  # opened just before the measured steps, closed just after
    assert record["disturbed"] is (record["level_shift"] is not None)  # the fake tree holds no other evidence
    assert record["reasons"] == ([] if record["level_shift"] is None else [record["reasons"][0]])


def test_a_real_worker_run_records_disturbance_per_process_and_the_case_lists_it(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", "--backend", "fake", "--workload", "cnn", "--mode", "infer", "--size", "tiny",
                    "--batch", "2", "--repeats", "2", "--min-time", "0.05", "--max-time", "0.2",
                    "--output", str(out), env=fake_env())
    assert done.returncode == 0, done.stderr
    (case,) = json.loads(out.read_text())["cases"]
    records = [repeat["disturbance"] for repeat in case["repeats"]]
    assert [sorted(record) for record in records] == [
        ["disturbed", "level_shift", "limits", "readings", "reasons", "window_s"]] * 2
    step_time = case["metrics"]["step_time"]
    assert step_time["disturbed"] == [record["disturbed"] for record in records]
    assert step_time["disturbance_reasons"] == [record["reasons"] for record in records]


def test_case_metrics_say_not_recorded_for_processes_from_before_the_probe():
    spec = CaseSpec("fake", "cnn", "tiny", "infer", 4)
    timing = {"samples_s": [0.5, 0.5], "compile_time_s": 1.0, "stop_reason": "converged", "warmup_steady": True}
    old = {"status": "ok", "timing": timing, "setup_time_s": 0.1, "param_count": 1, "memory": []}
    reason = "steal time 9.0% of the window's CPU time (limit 5%)"
    new = {**old, "disturbance": {"disturbed": True, "reasons": [reason]}}
    step_time = case_metrics(spec, [old, new])["step_time"]
    assert step_time["disturbed"] == [None, True]
    assert step_time["disturbance_reasons"] == [None, [reason]]
