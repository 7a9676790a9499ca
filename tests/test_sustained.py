"""Throughput a loop really delivers (issue 13 item 2): blocks of steps with one sync each, apart from the
latency of single synced steps; the run file, MFU and compare use the sustained figure."""

import math
import statistics

import pytest

from tests import runfile_builder as rb
from tests.fakes import FakeClock, FakeSession, QueuedDeviceSession
from tribench.core.errors import InvalidValue
from tribench.core.spec import CaseSpec
from tribench.harness.aggregate import case_metrics
from tribench.harness.process_stats import across_processes
from tribench.harness.timing import TimingConfig, measure
from tribench.reports.regression.compare import compare_sides, side_from_run

T = 1 / 1024  # dyadic: sums are exact


def timed(session, clock, **config):
    return measure(session, TimingConfig(**config), clock)


def test_a_block_overlaps_dispatch_with_device_work_as_a_bare_loop_does():
    # each step: T of host dispatch, 4T of device work queued behind the previous step's
    clock = FakeClock(start=0.0)
    session = QueuedDeviceSession(clock, dispatch_s=T, device_s=4 * T)
    result = timed(session, clock, min_steps=10, min_time_s=0.0, warmup_window=2, sustained_time_s=100 * T,
                   block_time_s=40 * T, min_blocks=3)
    assert set(result.samples_s) == {5 * T}  # a synced step is dispatch + device work: the latency
    # blocks of ceil(40T / 5T) = 8 steps: the first dispatch, then 8 device steps back to back
    assert result.sustained_block_steps == [8, 8, 8, 8]  # 4 blocks of 33T: the first to pass 100T
    assert result.sustained_block_s == [33 * T] * 4
    assert result.sustained_wall_s == 4 * 33 * T
    sustained_step = result.sustained_wall_s / sum(result.sustained_block_steps)
    assert sustained_step == 33 * T / 8  # 4.125T per step, against 5T synced


def test_each_block_ends_with_one_sync_of_its_last_step():
    clock = FakeClock(start=0.0)
    session = FakeSession(clock, [T] * 100_000)
    result = timed(session, clock, min_steps=10, min_time_s=0.0, warmup_window=2, sustained_time_s=64 * T,
                   block_time_s=16 * T, min_blocks=2)
    blocks = len(result.sustained_block_steps)
    assert result.sustained_block_steps == [16] * blocks
    synced_in_blocks = session.synced[-blocks:]
    assert synced_in_blocks == [session.steps - 16 * (blocks - 1 - i) for i in range(blocks)]
    assert result.sustained_block_s == [16 * T] * blocks


def test_at_least_min_blocks_run_even_past_the_sustained_time():
    clock = FakeClock(start=0.0)
    result = timed(FakeSession(clock, [T] * 100_000), clock, min_steps=10, min_time_s=0.0, warmup_window=2,
                   sustained_time_s=T, block_time_s=4 * T, min_blocks=5)
    assert result.sustained_block_steps == [4] * 5


def test_no_sustained_time_means_no_sustained_phase():
    clock = FakeClock(start=0.0)
    result = timed(FakeSession(clock, [T] * 10_000), clock, min_steps=10, min_time_s=0.0, warmup_window=2)
    assert (result.sustained_block_steps, result.sustained_block_s, result.sustained_wall_s) == ([], [], 0.0)


def test_counted_steps_run_one_block_of_the_same_count_on_every_host():
    clock = FakeClock(start=0.0)
    config = TimingConfig(sustained_time_s=0.3).with_fixed_steps(12, 3)
    result = measure(FakeSession(clock, [T] * 1000), config, clock)
    assert result.sustained_block_steps == [12]
    assert result.sustained_block_s == [12 * T]


def test_sustained_settings_are_checked():
    with pytest.raises(InvalidValue, match="sustained"):
        TimingConfig(sustained_time_s=-1)
    with pytest.raises(InvalidValue, match="block"):
        TimingConfig(block_time_s=0)


# --------------------------------------------------------------------------- the case's metrics


def sustained_repeat(samples, steps, walls, index=0):
    result = rb.repeat(samples, index=index)
    result["timing"].update({"sustained_block_steps": steps, "sustained_block_s": walls,
                             "sustained_wall_s": float(sum(walls))})
    return result


SPEC = CaseSpec("torch", "cnn", "tiny", "train", 32)


def test_throughput_is_samples_over_the_sustained_wall_time_across_processes():
    repeats = [sustained_repeat([0.010] * 20, [10, 10], [0.080, 0.080], 0),
               sustained_repeat([0.010] * 20, [10, 10], [0.090, 0.090], 1),
               sustained_repeat([0.010] * 20, [10, 10], [0.085, 0.085], 2)]
    metrics = case_metrics(SPEC, repeats)
    per_step = [0.008, 0.009, 0.0085]
    expected = across_processes(per_step)
    throughput = metrics["throughput"]
    assert throughput["basis"] == "sustained"
    assert throughput["value"] == pytest.approx(32 / expected.center, rel=1e-12)
    assert throughput["ci_low"] == pytest.approx(32 / expected.ci_high, rel=1e-12)
    assert throughput["ci_high"] == pytest.approx(32 / expected.ci_low, rel=1e-12)
    assert throughput["per_process"] == pytest.approx([32 / value for value in per_step], rel=1e-12)
    assert throughput["processes"] == 3
    assert "one sync per block" in throughput["source"]
    # the latency stays what single synced steps took, labelled as latency
    assert metrics["step_time"]["median"] == pytest.approx(0.010)
    assert metrics["step_time"]["source"].startswith("latency")


def test_mfu_uses_the_sustained_figure():
    from tests.test_efficiency import entry, environment_with

    env = environment_with(entry("torch", "cpu", "AMD EPYC", 1e12))
    repeats = [sustained_repeat([0.010] * 20, [10], [0.05], i) for i in range(3)]
    metrics = case_metrics(SPEC, repeats, env)
    from tribench.suites import workloads

    flops = workloads.get("cnn").flops_per_step("tiny", "train", 32)
    assert metrics["achieved_flops_per_s"]["value"] == pytest.approx(flops / 0.005, rel=1e-9)
    assert metrics["mfu"]["value"] == pytest.approx(flops / 0.005 / 1e12, rel=1e-9)


def test_one_process_gets_the_ci_of_its_blocks():
    metrics = case_metrics(SPEC, [sustained_repeat([0.010] * 20, [10] * 8,
                                                   [0.08, 0.081, 0.079, 0.08, 0.082, 0.078, 0.08, 0.08])])
    throughput = metrics["throughput"]
    assert throughput["value"] == pytest.approx(32 * 80 / 0.64)
    assert throughput["ci_basis"] == "within-process"
    assert throughput["ci_low"] < throughput["value"] < throughput["ci_high"]


def test_a_file_without_sustained_blocks_keeps_the_synced_median_and_says_so():
    metrics = case_metrics(SPEC, [rb.repeat([0.010] * 20, index=i) for i in range(3)])
    assert metrics["throughput"]["basis"] == "synced-steps"
    assert metrics["throughput"]["value"] == pytest.approx(3200)
    assert "no sustained measurement" in metrics["throughput"]["source"]


# --------------------------------------------------------------------------- compare


def _run(per_step_s, latency_s):
    repeats = [sustained_repeat([latency] * 30, [10] * 4, [10 * step] * 4, i)
               for i, (step, latency) in enumerate(zip(per_step_s, latency_s, strict=True))]
    return rb.run([rb.case(repeats)])


def test_compare_judges_throughput_on_sustained_values_and_latency_on_its_own():
    base = _run([0.0080, 0.0081, 0.0079, 0.0080], [0.010, 0.0101, 0.0099, 0.010])
    # head: the loop is 20% slower, a single synced step is not
    head = _run([0.0096, 0.0097, 0.0095, 0.0096], [0.010, 0.0101, 0.0099, 0.010])
    comparison = compare_sides(side_from_run(base, "b.json", "base"), side_from_run(head, "h.json", "head"))
    by_name = {metric.metric: metric for metric in comparison.cases[0].metrics}
    assert by_name["throughput"].verdict == "regressed"
    assert by_name["throughput"].ratio == pytest.approx(
        statistics.geometric_mean([1 / v for v in (0.0096, 0.0097, 0.0095, 0.0096)])
        / statistics.geometric_mean([1 / v for v in (0.0080, 0.0081, 0.0079, 0.0080)]), rel=1e-9)
    assert by_name["throughput"].basis == "per-process sustained throughput"
    assert by_name["latency_p50"].verdict != "regressed"
    assert by_name["latency_p50"].family == "latency_p50"  # its own test, not a copy of throughput's


def test_compare_falls_back_to_synced_medians_when_a_side_has_no_blocks():
    base = rb.run([rb.case([rb.repeat([0.010] * 30, index=i) for i in range(4)])])
    head = _run([0.0080] * 4, [0.010, 0.0101, 0.0099, 0.010])
    comparison = compare_sides(side_from_run(base, "b.json", "base"), side_from_run(head, "h.json", "head"))
    by_name = {metric.metric: metric for metric in comparison.cases[0].metrics}
    assert by_name["throughput"].basis == "per-process median"
    assert by_name["latency_p50"].family == "throughput"
    assert math.isclose(by_name["throughput"].ratio, by_name["latency_p50"].ratio ** -1, rel_tol=1e-9)
