"""tribench compare: every verdict category, the readings rules, outputs, exit codes and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tests import runfile_builder as rb
from tests.helpers import tribench
from tribench.cli import app
from tribench.core.errors import InvalidChoice, InvalidValue
from tribench.reports.regression import compare_render
from tribench.reports.regression.compare import (
    CompareInputError,
    CompareSettings,
    compare_sides,
    fingerprint_differences,
    join,
    point_id,
    side_from_run,
)
from tribench.reports.regression.compare_metrics import ReadingValue, parse_thresholds, reading_value


def _sides(base_cases, head_cases, base_env=None, head_env=None):
    return (side_from_run(rb.run(base_cases, "base-run", base_env), "base.json", "base"),
            side_from_run(rb.run(head_cases, "head-run", head_env), "head.json", "head"))


def _compare(base_cases, head_cases, settings=None, **envs):
    return compare_sides(*_sides(base_cases, head_cases, **envs), settings)


def _by_workload_mode(comparison):
    return {case.id.split("/")[1] + "/" + case.id.split("/")[2]: case for case in comparison.cases}


def every_category_runs():
    """A base and head run pair whose cases produce each verdict category once."""
    rng = np.random.default_rng(7)
    cnn = {"workload": "cnn"}
    base = [
        rb.simple_case(rng, 0.020, mode="train", **cnn),                             # regressed (10% slower)
        rb.simple_case(rng, 0.010, mode="infer", **cnn),                             # improved (10% faster)
        rb.simple_case(rng, 0.030, mode="train", workload="transformer"),            # unchanged
        rb.simple_case(rng, 0.030, n=8, sigma=0.4, mode="infer", workload="transformer"),  # inconclusive
        rb.simple_case(rng, 0.050, mode="train", workload="rnn", pipeline="synthetic"),    # not-comparable (spec)
        rb.simple_case(rng, 0.050, mode="infer", workload="rnn"),                    # failed in head
        rb.simple_case(rng, 0.050, size="small", mode="train", workload="rnn"),      # missing in head
    ]
    head = [
        rb.simple_case(rng, 0.022, mode="train", **cnn),
        rb.simple_case(rng, 0.009, mode="infer", **cnn),
        rb.simple_case(rng, 0.030, mode="train", workload="transformer"),
        rb.simple_case(rng, 0.033, n=8, sigma=0.4, mode="infer", workload="transformer"),
        rb.simple_case(rng, 0.050, mode="train", workload="rnn", pipeline="real"),
        rb.case([rb.repeat([], status="failed", error="worker exited with code 3")], mode="infer", workload="rnn"),
        rb.simple_case(rng, 0.040, size="small", mode="infer", workload="rnn"),      # new (only in head)
    ]
    return base, head


def test_every_verdict_category_is_produced():
    comparison = _compare(*every_category_runs())
    verdicts = {case.id: case.verdict for case in comparison.cases}
    assert verdicts == {
        "torch/cnn-tiny/train/bs32/fp32/native/cpu": "regressed",
        "torch/cnn-tiny/infer/bs32/fp32/native/cpu": "improved",
        "torch/transformer-tiny/train/bs32/fp32/native/cpu": "unchanged",
        "torch/transformer-tiny/infer/bs32/fp32/native/cpu": "inconclusive",
        "torch/rnn-tiny/train/bs32/fp32/native/cpu": "not-comparable",
        "torch/rnn-tiny/infer/bs32/fp32/native/cpu": "failed",
        "torch/rnn-small/train/bs32/fp32/native/cpu": "missing",
        "torch/rnn-small/infer/bs32/fp32/native/cpu": "new",
    }
    reasons = {case.verdict: case.reason for case in comparison.cases}
    assert reasons["not-comparable"] == "spec differs: pipeline: 'synthetic' -> 'real'"
    assert reasons["failed"] == "head failed: worker exited with code 3"
    assert (reasons["new"], reasons["missing"]) == ("only in head", "only in base")
    assert comparison.counts() == {"regressed": 1, "improved": 1, "unchanged": 1, "inconclusive": 1,
                                   "not-comparable": 1, "new": 1, "missing": 1, "failed": 1}
    assert comparison.exit_code() == 1


def test_regressed_metrics_carry_ratio_ci_and_adjusted_p():
    comparison = _compare(*every_category_runs())
    regressed = comparison.cases[0]
    throughput, p50 = regressed.metrics[0], regressed.metrics[1]
    assert (throughput.metric, throughput.direction, p50.metric, p50.direction) == \
        ("throughput", "higher", "latency_p50", "lower")
    assert throughput.ratio == pytest.approx(1 / p50.ratio)
    assert p50.ratio == pytest.approx(p50.head / p50.base)
    assert p50.ci_low - 1 > 0.05 and p50.ci_high - 1 > 0.05 and p50.ci_low < p50.ratio < p50.ci_high
    assert throughput.ci_high - 1 < -0.04
    assert p50.p_adjusted >= p50.p_value and p50.test == "welch-t on log per-process values"
    assert (p50.p_adjusted, p50.n_base, p50.n_head) == (throughput.p_adjusted, 4, 4)  # one test, two views
    assert comparison.tests == 4  # four cases reached the tests: one gated test each (p99 of 60 steps informs only)
    p99 = regressed.metrics[2]
    assert (p99.metric, p99.gated) == ("latency_p99", False) and "not gated: 4 process(es) on a side" in p99.reason
    assert 0.05 < throughput.min_detectable < 0.1 and "cannot be told from noise" in throughput.reason
    inconclusive = comparison.cases[3]
    assert any("not significant" in metric.reason for metric in inconclusive.metrics)


def test_a_fingerprint_difference_is_not_comparable_and_says_what_differs():
    rng = np.random.default_rng(1)
    base, head = [rb.simple_case(rng, 0.02)], [rb.simple_case(rng, 0.02)]
    comparison = _compare(base, head, base_env=rb.environment(), head_env=rb.environment(cpu_model="Intel Xeon"))
    case = comparison.cases[0]
    assert case.verdict == "not-comparable"
    assert case.reason == ("environment differs: cpu_model: 'AMD EPYC' -> 'Intel Xeon' "
                           "(accept with --allow-difference FIELD)")
    assert comparison.warnings == ["the runs' environments differ: cpu_model: 'AMD EPYC' -> 'Intel Xeon'"]
    allowed = _compare(base, head, CompareSettings(allow_differences=("cpu_model",)),
                       base_env=rb.environment(), head_env=rb.environment(cpu_model="Intel Xeon"))
    assert allowed.cases[0].verdict == "unchanged"


def test_only_the_cases_own_framework_version_matters():
    rng = np.random.default_rng(2)
    base, head = [rb.simple_case(rng, 0.02)], [rb.simple_case(rng, 0.02)]
    other = _compare(base, head, base_env=rb.environment(), head_env=rb.environment(frameworks={"jax": "0.11"}))
    assert other.cases[0].verdict == "unchanged"  # a torch case does not care about jax
    own = _compare(base, head, base_env=rb.environment(), head_env=rb.environment(frameworks={"torch": "2.14"}))
    assert own.cases[0].reason.startswith("environment differs: frameworks.torch: '2.13.0+cpu' -> '2.14'")
    assert fingerprint_differences({"fingerprint": "a"}, {"fingerprint": "b"}) == \
        ["fingerprint: 'a' -> 'b' (inputs not recorded)"]


def test_skipped_on_one_side_is_not_comparable():
    rng = np.random.default_rng(3)
    comparison = _compare([rb.simple_case(rng, 0.02)], [rb.skipped_case("bf16 needs AVX512-BF16")])
    assert (comparison.cases[0].verdict, comparison.cases[0].reason) == \
        ("not-comparable", "head skipped: bf16 needs AVX512-BF16")


def test_peak_memory_is_threshold_only_and_inconclusive_when_processes_disagree():
    rng = np.random.default_rng(4)
    base = [rb.case([rb.repeat(rb.lognormal(rng, 60, 0.02), host_rss=300e6)])]
    grown = [rb.case([rb.repeat(rb.lognormal(rng, 60, 0.02), host_rss=330e6)])]
    comparison = _compare(base, grown)
    memory = next(m for m in comparison.cases[0].metrics if m.metric == "host_memory")
    assert (memory.verdict, memory.p_value, memory.ratio) == ("regressed", None, pytest.approx(1.1))
    assert comparison.cases[0].verdict == "regressed"
    assert memory.reason == "+10.0% is past the 5% threshold (single readings: no test)"
    loose = _compare(base, grown, CompareSettings(thresholds=parse_thresholds("memory=15%")))
    assert next(m for m in loose.cases[0].metrics if m.metric == "host_memory").verdict == "unchanged"
    unstable = [rb.case([rb.repeat(rb.lognormal(rng, 60, 0.02), index=i, host_rss=rss)
                         for i, rss in enumerate((300e6, 360e6))])]
    stable = [rb.case([rb.repeat(rb.lognormal(rng, 60, 0.02), index=i, host_rss=300e6) for i in range(2)])]
    noisy = next(m for m in _compare(stable, unstable).cases[0].metrics if m.metric == "host_memory")
    assert (noisy.verdict, noisy.reason) == ("inconclusive", "head processes differ by 20.0% among themselves (> 5%)")


def test_device_memory_is_compared_only_where_measured():
    rng = np.random.default_rng(5)
    cpu = _compare([rb.simple_case(rng, 0.02)], [rb.simple_case(rng, 0.02)])
    assert "device_memory" not in [m.metric for m in cpu.cases[0].metrics]
    base = [rb.case([rb.repeat(rb.lognormal(rng, 60, 0.02), device_peak=1e9)])]
    head = [rb.case([rb.repeat(rb.lognormal(rng, 60, 0.02))])]
    one_sided = next(m for m in _compare(base, head).cases[0].metrics if m.metric == "device_memory")
    assert (one_sided.verdict, one_sided.reason) == \
        ("not-comparable", "measured on one side only (head: the fake keeps no allocator statistics)")


def _energy(value, method="counter"):
    return {"per_sample": {"value": value, "unit": "J/sample", "method": method, "source": "rapl:package-0",
                           "scope": "package"},
            "per_token": {"value": value / 32, "unit": "J/token", "method": method, "source": "rapl:package-0"}}


def test_energy_per_sample_is_compared_when_measured_on_both_sides_and_never_from_an_estimate():
    rng = np.random.default_rng(6)

    def case(energy):
        return rb.case([rb.repeat(rb.lognormal(rng, 60, 0.02))], energy=energy)

    measured = _compare([case(_energy(0.5))], [case(_energy(0.6))])
    energy = next(m for m in measured.cases[0].metrics if m.metric == "energy_per_sample")
    assert (energy.verdict, energy.base, energy.head, energy.unit) == ("regressed", 0.5, 0.6, "J/sample")
    estimated = _compare([case(_energy(0.5, "estimate"))], [case(_energy(0.9, "estimate"))])
    assert "energy_per_sample" not in [m.metric for m in estimated.cases[0].metrics]
    as_list = [{"name": "energy_per_sample", "unit": "J/sample", "value": 0.5, "method": "power_sampling",
                "source": "nvml"}]
    assert reading_value(case(as_list), "energy_per_sample").value == 0.5
    unavailable = {"per_sample": {"value": None, "method": "unavailable", "reason": "no RAPL on this machine"}}
    assert reading_value(case(unavailable), "energy_per_sample").reason == "no RAPL on this machine"
    assert reading_value(case(_energy(0.5, "estimate")), "energy_per_sample").value is None
    # the shape harness.probes writes: the case's energy is itself a J/sample reading over raw readings
    probe_shape = {"value": 0.4, "unit": "J/sample", "method": "counter", "source": "rapl", "scope": "package",
                   "readings": [{"name": "cpu_packages", "method": "counter", "value": 16.0, "unit": "J",
                                 "joules_per_sample": 0.4,
                                 "estimate": {"value": 0.9, "unit": "J/sample", "method": "estimate"}}]}
    assert reading_value(case(probe_shape), "energy_per_sample") == ReadingValue(0.4, "rapl", ())
    no_rapl = {"value": None, "unit": "J/sample", "method": "unavailable", "source": "rapl",
               "reason": "no powercap interface", "readings": []}
    assert reading_value(case(no_rapl), "energy_per_sample").reason == "no powercap interface"


def test_compile_time_is_reported_but_gated_only_when_asked_and_enough_processes_judge_it():
    rng = np.random.default_rng(8)

    def processes(count, compile_time):
        return [rb.case([rb.repeat(rb.lognormal(rng, 60, 0.02), index=i, compile_time=compile_time * (1 + i / 100))
                         for i in range(count)])]

    base, head = processes(5, 1.0), processes(5, 2.0)
    comparison = _compare(base, head)
    compile_time = next(m for m in comparison.cases[0].metrics if m.metric == "compile_time")
    assert (compile_time.verdict, compile_time.gated, compile_time.n_base) == ("regressed", False, 5)
    assert comparison.cases[0].verdict == "unchanged" and comparison.exit_code() == 0
    gated = _compare(base, head, CompareSettings(gate_compile=True))
    assert gated.cases[0].verdict == "regressed" and gated.exit_code() == 1
    few = next(m for m in _compare(processes(3, 1.0), processes(3, 2.0), CompareSettings(gate_compile=True))
               .cases[0].metrics if m.metric == "compile_time")
    assert few.gated is False and "not gated: 3 process(es) on a side (< 5) cannot judge a compile time" in few.reason


def test_one_process_per_side_is_inconclusive_and_says_why():
    rng = np.random.default_rng(14)
    comparison = _compare([rb.simple_case(rng, 0.02, repeats=1)], [rb.simple_case(rng, 0.03, repeats=1)])
    throughput = comparison.cases[0].metrics[0]
    assert (throughput.verdict, throughput.p_value, throughput.min_detectable) == ("inconclusive", None, None)
    assert throughput.reason.startswith("one process per side: the between-process spread is unknown")
    assert comparison.cases[0].verdict == "inconclusive" and comparison.exit_code() == 3
    assert comparison.exit_code(fail_on=()) == 0  # --allow-inconclusive


def test_per_metric_thresholds():
    rng = np.random.default_rng(9)
    base = [rb.simple_case(rng, 0.02, n=400, sigma=0.01)]
    head = [rb.simple_case(rng, 0.02 * 1.04, n=400, sigma=0.01)]  # 4% slower, measured tightly
    default = {m.metric: m.verdict for m in _compare(base, head).cases[0].metrics}
    assert (default["throughput"], default["latency_p50"]) == ("unchanged", "unchanged")
    strict = _compare(base, head, CompareSettings(thresholds=parse_thresholds("throughput=2%,p50=2%")))
    verdicts = {m.metric: (m.verdict, m.threshold) for m in strict.cases[0].metrics}
    assert verdicts["throughput"] == ("regressed", 0.02) and verdicts["latency_p50"] == ("regressed", 0.02)
    assert verdicts["latency_p99"][1] == 0.05


def test_threshold_parsing():
    thresholds = parse_thresholds("4%,throughput=3%,memory=0.01")
    assert (thresholds.default, thresholds.of("throughput"), thresholds.of("host_memory"),
            thresholds.of("device_memory"), thresholds.of("latency_p99")) == (0.04, 0.03, 0.01, 0.01, 0.04)
    with pytest.raises(InvalidValue, match="ambiguous"):
        parse_thresholds("5")
    with pytest.raises(InvalidChoice, match="unknown metric 'speed'"):
        parse_thresholds("speed=3%")


def test_sides_from_environment_labels_in_one_run_join_on_a_key():
    rng = np.random.default_rng(10)
    cases = [rb.simple_case(rng, 0.02, env="A"), rb.simple_case(rng, 0.022, env="B")]
    run = rb.run(cases)
    base = side_from_run(run, "ab.json", "A", env="A", key=point_id)
    head = side_from_run(run, "ab.json", "B", env="B", key=point_id)
    assert [(key, b is not None, h is not None) for key, b, h in join(base, head)] == \
        [("torch/cnn-tiny/train/bs32/fp32/native/cpu", True, True)]
    comparison = compare_sides(base, head)
    assert comparison.cases[0].verdict == "regressed"  # the env label itself is not a spec difference


def test_no_overlapping_cases_is_an_input_error():
    rng = np.random.default_rng(11)
    with pytest.raises(CompareInputError, match="no case in common"):
        _compare([rb.simple_case(rng, 0.02, mode="train")], [rb.simple_case(rng, 0.02, mode="infer")])


def test_markdown_and_table_escape_run_file_strings():
    rng = np.random.default_rng(12)
    base = [rb.simple_case(rng, 0.02), rb.skipped_case("<script>alert(1)</script> | *x*", mode="infer")]
    head = [rb.simple_case(rng, 0.022), rb.simple_case(rng, 0.02, mode="infer")]
    comparison = _compare(base, head)
    text = compare_render.markdown(comparison)
    assert "<script>" not in text and "&lt;script&gt;alert\\(1\\)&lt;/script&gt; \\| \\*x\\*" in text
    assert text.startswith("### tribench compare: 🔴 regression — 1 regressed, 1 not-comparable")
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(compare_render.table(comparison))
    assert "<script>alert(1)</script>" in console.export_text()  # shown literally, not as markup


# ---- the command line ---------------------------------------------------------------------------

@pytest.fixture()
def category_files(tmp_path):
    base, head = every_category_runs()
    return (rb.write(tmp_path / "base.json", rb.run(base, "base-run")),
            rb.write(tmp_path / "head.json", rb.run(head, "head-run")))


def test_cli_regression_exits_1_writes_json_and_appends_markdown_to_the_step_summary(category_files, tmp_path):
    base, head = category_files
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    result = CliRunner().invoke(app, ["compare", str(base), str(head), "--format", "markdown",
                                      "--output", str(tmp_path / "verdict.json")],
                                env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 1, result.output
    assert result.output.startswith("### tribench compare: 🔴 regression")
    written = summary.read_text()
    assert written.startswith("earlier step\n### tribench compare: 🔴 regression")
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert verdict["kind"] == "tribench-verdict" and verdict["exit_code"] == 1
    assert verdict["summary"]["regressed"] == 1 and verdict["settings"]["unit"] == "process"
    assert {case["verdict"] for case in verdict["cases"]} == {"regressed", "improved", "unchanged", "inconclusive",
                                                             "not-comparable", "new", "missing", "failed"}
    p50 = verdict["cases"][0]["metrics"][1]
    assert p50["metric"] == "latency_p50" and p50["change"] == pytest.approx(p50["ratio"] - 1)


def test_cli_exit_codes_for_a_a_and_inconclusive(tmp_path):
    rng = np.random.default_rng(13)
    same = [rb.write(tmp_path / f"{name}.json", rb.run([rb.simple_case(rng, 0.02)], name)) for name in "ab"]
    assert CliRunner().invoke(app, ["compare", *map(str, same)]).exit_code == 0
    noisy = [rb.write(tmp_path / f"noisy-{name}.json",
                      rb.run([rb.simple_case(rng, 0.02, n=8, sigma=0.4)], name)) for name in "ab"]
    runner = CliRunner()
    strict = runner.invoke(app, ["compare", *map(str, noisy), "--format", "json"])
    assert strict.exit_code == 3 and json.loads(strict.output)["summary"]["inconclusive"] == 1
    relaxed = runner.invoke(app, ["compare", *map(str, noisy), "--allow-inconclusive"])
    assert relaxed.exit_code == 0, relaxed.output
    assert "inconclusive" in relaxed.output
    both = tribench("compare", *map(str, noisy), "--allow-inconclusive", "--fail-on", "inconclusive")
    assert both.returncode == 2 and "contradict each other" in both.stderr


def test_cli_fail_on_failed(category_files):
    base, head = category_files
    result = CliRunner().invoke(app, ["compare", str(base), str(head), "--fail-on", "failed",
                                      "--threshold", "50%", "--allow-inconclusive"])
    assert result.exit_code == 1  # no regression at 50%, but a case failed in head
    fixed = CliRunner().invoke(app, ["compare", str(head), str(base), "--fail-on", "failed", "--threshold", "50%",
                                     "--allow-inconclusive"])
    assert fixed.exit_code == 0  # the same case failing only in base (fixed in head) fails nothing


@pytest.mark.parametrize("problem", ["same file", "same run", "older schema", "not a run", "no overlap",
                                     "bad threshold"])
def test_bad_inputs_get_one_line_and_exit_2(tmp_path, problem):
    rng = np.random.default_rng(15)
    good = rb.write(tmp_path / "good.json", rb.run([rb.simple_case(rng, 0.02)], "good"))
    other = rb.write(tmp_path / "other.json", rb.run([rb.simple_case(rng, 0.02)], "other"))
    args = {
        "same file": [good, good],
        "same run": [good, rb.write(tmp_path / "copy.json", json.loads(good.read_text()))],
        "older schema": [good, rb.write(tmp_path / "old.json", {**json.loads(other.read_text()), "schema_version": 0})],
        "not a run": [good, rb.write(tmp_path / "foreign.json", {"benchmarks": []})],
        "no overlap": [good, rb.write(tmp_path / "infer.json",
                                      rb.run([rb.simple_case(rng, 0.02, mode="infer")], "infer"))],
        "bad threshold": [good, other, "--threshold", "5"],
    }[problem]
    done = tribench("compare", *map(str, args))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    expected = {"same file": "are the same file", "same run": "hold the same run (good)",
                "older schema": "schema version 0 is not one this tribench can read",
                "not a run": "not a tribench run file", "no overlap": "no case in common",
                "bad threshold": "threshold '5' is ambiguous"}[problem]
    assert expected in lines[0]


def test_the_cli_imports_no_numerics_until_a_command_needs_them():
    import subprocess
    import sys

    from tests.helpers import ROOT

    code = ("import sys, tribench.cli\n"
            "print(','.join(m for m in ('numpy', 'scipy', 'pandas', 'plotly') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_two_wildly_different_processes_per_side_state_that_no_plausible_change_is_detectable():
    rng = np.random.default_rng(16)
    base = [rb.case([rb.repeat(rb.lognormal(rng, 60, m), index=i) for i, m in enumerate((0.01, 0.02))])]
    head = [rb.case([rb.repeat(rb.lognormal(rng, 60, m), index=i) for i, m in enumerate((0.011, 0.03))])]
    throughput = _compare(base, head).cases[0].metrics[0]
    assert (throughput.verdict, throughput.min_detectable) == ("inconclusive", None)
    assert "the spread itself is too uncertain for any change under 100x to be told from noise" in throughput.reason
