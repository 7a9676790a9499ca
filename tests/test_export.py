"""tribench export: pytest-benchmark JSON (checked by pytest-benchmark's own compare), the
github-action-benchmark custom JSON shape, and CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests import runfile_builder as rb
from tests.helpers import tribench
from tribench.cli import app
from tribench.reports.regression.export import to_bencher, to_github_action_benchmark, to_pytest_benchmark

PYTEST_BENCHMARK = Path(sys.executable).parent / "pytest-benchmark"
ENERGY = {"per_sample": {"value": 0.25, "unit": "J/sample", "method": "counter", "source": "rapl:package-0"}}


def sample_run(seed: int = 0, factor: float = 1.0, run_id: str = "run-a") -> dict:
    rng = np.random.default_rng(seed)
    cases = [
        rb.case([rb.repeat(rb.lognormal(rng, 50, 0.02 * factor), index=i, device_peak=2**30) for i in range(2)]),
        rb.case([rb.repeat(rb.lognormal(rng, 40, 0.01 * factor))], energy=ENERGY, workload="transformer",
                mode="infer"),
        rb.case([rb.repeat([], status="failed", error="boom")], workload="rnn"),
        rb.skipped_case(workload="rnn", mode="infer"),
    ]
    return rb.run(cases, run_id)


def test_pytest_benchmark_stats_come_from_the_raw_samples():
    run = sample_run()
    document = to_pytest_benchmark(run)
    assert [bench["name"] for bench in document["benchmarks"]] == [
        "torch/cnn-tiny/train/bs32/fp32/native/cpu", "torch/transformer-tiny/infer/bs32/fp32/native/cpu"]
    bench = document["benchmarks"][0]
    samples = [s for r in run["cases"][0]["repeats"] for s in r["timing"]["samples_s"]]
    stats = bench["stats"]
    assert stats["rounds"] == 100 and stats["data"] == samples and stats["iterations"] == 1
    assert stats["median"] == pytest.approx(statistics.median(samples))
    assert stats["mean"] == pytest.approx(statistics.fmean(samples))
    assert stats["stddev"] == pytest.approx(statistics.stdev(samples))
    assert (stats["min"], stats["max"]) == (min(samples), max(samples))
    assert stats["ops"] == pytest.approx(1 / stats["mean"]) and stats["total"] == pytest.approx(sum(samples))
    assert stats["outliers"] == f"{stats['stddev_outliers']};{stats['iqr_outliers']}"
    assert bench["fullname"] == "tribench::torch/cnn-tiny/train/bs32/fp32/native/cpu"
    assert document["commit_info"]["id"] == "a" * 40


def _real_pytest_benchmark_json(tmp_path: Path) -> dict:
    """What pytest-benchmark itself writes, to check our schema against (not a hand-written copy)."""
    (tmp_path / "test_tiny.py").write_text("def test_tiny(benchmark):\n    benchmark(sum, range(10))\n")
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                    "--benchmark-json", "real.json", "--benchmark-max-time", "0.01", "test_tiny.py"],
                   cwd=tmp_path, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": ""})
    return json.loads((tmp_path / "real.json").read_text())


def test_pytest_benchmark_json_has_the_schema_pytest_benchmark_writes(tmp_path):
    real = _real_pytest_benchmark_json(tmp_path)
    ours = to_pytest_benchmark(sample_run())
    assert set(real) <= set(ours)
    real_bench, our_bench = real["benchmarks"][0], ours["benchmarks"][0]
    assert set(real_bench) == set(our_bench)
    assert set(real_bench["stats"]) <= set(our_bench["stats"])
    assert set(real["commit_info"]) <= set(ours["commit_info"])
    for key, value in real_bench["stats"].items():
        assert type(our_bench["stats"][key]) is type(value), key


def test_pytest_benchmark_compare_loads_the_export(tmp_path):
    for name, factor in (("0001_base.json", 1.0), ("0002_head.json", 1.1)):
        path = rb.write(tmp_path / f"{name}.run", sample_run(factor=factor, run_id=name))
        result = CliRunner().invoke(app, ["export", str(path), "--to", "pytest-benchmark", "-o",
                                          str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    compared = subprocess.run([str(PYTEST_BENCHMARK), "compare", "0001_base.json", "0002_head.json",
                               "--columns", "min,max,mean,median,ops,rounds", "--csv", "table"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert compared.returncode == 0, compared.stderr
    assert "Failed to load" not in compared.stdout + compared.stderr
    rows = list(csv.DictReader((tmp_path / "table.csv").read_text().splitlines()))
    assert len(rows) == 4  # two cases x two files
    exported = json.loads((tmp_path / "0002_head.json").read_text())["benchmarks"][0]["stats"]
    cnn_rows = [row for row in rows if row["name"] == "tribench::torch/cnn-tiny/train/bs32/fp32/native/cpu"]
    assert [float(row["median"]) for row in cnn_rows][1] == pytest.approx(exported["median"])
    assert [int(row["rounds"]) for row in cnn_rows] == [100, 100]
    head_line = next(line for line in compared.stdout.splitlines()
                     if "cnn-tiny/train" in line and "(0002_head)" in line)
    assert f"{exported['median'] * 1e3:.4f} (1.10)" in head_line  # pytest-benchmark sees the 10% slowdown


CUSTOM_KEYS = {"name", "unit", "value", "range", "extra"}


def _check_custom_shape(entries) -> None:
    """github-action-benchmark's custom tools: a JSON array of {name, unit, value, range?, extra?}."""
    assert isinstance(entries, list) and entries
    for entry in entries:
        assert set(entry) <= CUSTOM_KEYS and {"name", "unit", "value"} <= set(entry)
        assert isinstance(entry["name"], str) and isinstance(entry["unit"], str)
        assert isinstance(entry["value"], (int, float)) and not isinstance(entry["value"], bool)
        assert math.isfinite(entry["value"])
        assert isinstance(entry.get("range", ""), str) and isinstance(entry.get("extra", ""), str)
    assert len({entry["name"] for entry in entries}) == len(entries)


def test_github_action_benchmark_bigger_is_better_holds_throughput():
    run = sample_run()
    entries = json.loads(json.dumps(to_github_action_benchmark(run, "customBiggerIsBetter")))
    _check_custom_shape(entries)
    assert [(e["name"], e["unit"]) for e in entries] == [
        ("torch/cnn-tiny/train/bs32/fp32/native/cpu throughput", "samples/s"),
        ("torch/transformer-tiny/infer/bs32/fp32/native/cpu throughput", "samples/s"),
        ("torch/transformer-tiny/infer/bs32/fp32/native/cpu token throughput", "tokens/s")]
    assert entries[0]["value"] == pytest.approx(run["cases"][0]["metrics"]["throughput"]["value"])
    assert entries[0]["range"].startswith("± ")


def test_github_action_benchmark_smaller_is_better_holds_latency_memory_and_measured_energy():
    run = sample_run()
    entries = json.loads(json.dumps(to_github_action_benchmark(run, "customSmallerIsBetter")))
    _check_custom_shape(entries)
    by_name = {entry["name"]: entry for entry in entries}
    p50 = by_name["torch/cnn-tiny/train/bs32/fp32/native/cpu p50 step time"]
    assert (p50["unit"], p50["value"]) == ("ms", pytest.approx(run["cases"][0]["metrics"]["step_time"]["median"] * 1e3))
    assert by_name["torch/cnn-tiny/train/bs32/fp32/native/cpu device peak memory"]["value"] == 1024.0
    assert by_name["torch/transformer-tiny/infer/bs32/fp32/native/cpu energy per sample"]["value"] == 0.25
    assert not any("throughput" in name for name in by_name)
    assert not any("rnn" in name for name in by_name)  # failed and skipped cases have nothing to export


def _check_bmf_shape(document) -> None:
    """Bencher's BMF JSON schema: benchmark -> measure -> {value (required), lower_value, upper_value} numbers."""
    assert isinstance(document, dict) and document
    for benchmark, measures in document.items():
        assert isinstance(benchmark, str) and isinstance(measures, dict) and measures
        for slug, metric in measures.items():
            assert isinstance(slug, str) and len(slug) <= 64
            assert set(metric) <= {"value", "lower_value", "upper_value"} and "value" in metric
            assert all(isinstance(number, float | int) and math.isfinite(number) for number in metric.values())
            if "lower_value" in metric:
                assert metric["lower_value"] <= metric["value"] <= metric["upper_value"], (benchmark, slug)


def test_bencher_metric_format_holds_both_directions_with_the_ci_as_bounds():
    run = sample_run()
    document = json.loads(json.dumps(to_bencher(run)))
    _check_bmf_shape(document)
    assert list(document) == ["torch/cnn-tiny/train/bs32/fp32/native/cpu",
                              "torch/transformer-tiny/infer/bs32/fp32/native/cpu"]
    cnn, transformer = (document[name] for name in document)
    case = run["cases"][0]["metrics"]
    step = case["step_time"]
    assert sorted(cnn) == ["device-peak-memory", "host-peak-rss", "latency", "latency-p99", "throughput"]
    assert cnn["latency"] == {"value": pytest.approx(step["median"] * 1e9),
                              "lower_value": pytest.approx(step["ci_low"] * 1e9),
                              "upper_value": pytest.approx(step["ci_high"] * 1e9)}
    assert case["throughput"].get("basis") != "sustained"  # so its CI is the median step time's, inverted
    assert cnn["throughput"] == {"value": pytest.approx(case["throughput"]["value"]),
                                 "lower_value": pytest.approx(32 / step["ci_high"]),
                                 "upper_value": pytest.approx(32 / step["ci_low"])}
    assert cnn["device-peak-memory"] == {"value": 2.0**30}
    assert sorted(transformer) == ["energy-per-sample", "host-peak-rss", "latency", "latency-p99", "throughput",
                                   "token-throughput"]
    assert transformer["energy-per-sample"] == {"value": 0.25}
    tokens = run["cases"][1]["workload"]["tokens_per_sample"]
    assert transformer["token-throughput"]["value"] == pytest.approx(transformer["throughput"]["value"] * tokens)


def test_bencher_bounds_a_sustained_throughput_by_its_own_ci_and_leaves_out_what_has_none():
    run = sample_run()
    metrics = run["cases"][0]["metrics"]
    metrics["throughput"].update(basis="sustained", value=1000.0, ci_low=950.0, ci_high=1040.0)
    metrics["step_time"].update(ci_low=None, ci_high=None)
    measures = to_bencher(run)["torch/cnn-tiny/train/bs32/fp32/native/cpu"]
    assert measures["throughput"] == {"value": 1000.0, "lower_value": 950.0, "upper_value": 1040.0}
    assert measures["latency"] == {"value": pytest.approx(metrics["step_time"]["median"] * 1e9)}


def test_cli_export_github_action_benchmark_and_csv(tmp_path):
    path = rb.write(tmp_path / "run.json", sample_run())
    result = CliRunner().invoke(app, ["export", str(path), "--to", "github-action-benchmark",
                                      "--tool", "customBiggerIsBetter"])
    assert result.exit_code == 0, result.output
    _check_custom_shape(json.loads(result.stdout))
    table = CliRunner().invoke(app, ["export", str(path), "--to", "csv", "-o", str(tmp_path / "run.csv")])
    assert table.exit_code == 0, table.output
    rows = list(csv.DictReader(io.StringIO((tmp_path / "run.csv").read_text())))
    assert [row["status"] for row in rows] == ["ok", "ok", "failed", "skipped"]
    assert float(rows[0]["throughput_samples_per_s"]) == pytest.approx(
        sample_run()["cases"][0]["metrics"]["throughput"]["value"])
    bencher = CliRunner().invoke(app, ["export", str(path), "--to", "bencher"])
    assert bencher.exit_code == 0, bencher.output
    assert json.loads(bencher.stdout) == json.loads(json.dumps(to_bencher(sample_run())))


@pytest.mark.parametrize("args, message", [
    (["--to", "xml"], "unknown export format 'xml'"),
    (["--to", "github-action-benchmark"], "needs --tool customBiggerIsBetter"),
    (["--to", "github-action-benchmark", "--tool", "bigger"], "unknown github-action-benchmark tool 'bigger'"),
])
def test_export_bad_options_get_one_line_and_exit_2(tmp_path, args, message):
    path = rb.write(tmp_path / "run.json", sample_run())
    done = tribench("export", str(path), *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
