"""`tribench run` of a real tiny PyTorch case, through the CLI, into a DataFrame."""

import math
import statistics

import pytest

from tests.helpers import tribench
from tribench.harness.aggregate import used_results
from tribench.harness.results import load_run
from tribench.reports import load

EXPECTED_COLUMNS = {
    "run_id", "run_file", "started_at", "hostname", "fingerprint", "git_commit", "tags", "case_id",
    "backend", "workload", "size", "mode", "batch_size", "precision", "compile", "device", "status", "error",
    "repeats", "throughput_samples_per_s", "throughput_tokens_per_s", "step_time_median_s", "step_time_p50_s",
    "step_time_p90_s", "step_time_p99_s", "step_time_mean_s", "step_time_stdev_s", "noise_iqr_over_median",
    "step_time_ci_low_s", "step_time_ci_high_s", "samples", "compile_time_s", "params", "flops_per_step",
    "device_peak_memory_bytes", "device_peak_memory_source", "device_peak_memory_reason", "host_peak_rss_bytes",
}


def test_tribench_run_writes_a_run_file_that_loads_into_a_dataframe(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", "--backend", "torch", "--workload", "cnn", "--size", "tiny", "--mode", "train",
                    "--batch", "8", "--device", "cpu", "--min-time", "0.2", "--max-time", "1",
                    "--tag", "purpose=e2e", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"run file: {out}"
    assert "torch/cnn-tiny/train/bs8/fp32/native/cpu" in done.stdout

    run = load_run(out)
    assert run["state"] == "complete"
    assert run["environment"]["frameworks"]["torch"]["version"].startswith("2.")
    frame = load([out])
    assert EXPECTED_COLUMNS <= set(frame.columns)
    row = frame.iloc[0]
    assert row["case_id"] == "torch/cnn-tiny/train/bs8/fp32/native/cpu"
    assert row["status"] == "ok"
    assert row["params"] == 93_322
    assert row["flops_per_step"] == 5_588_480 * 8 * 3
    assert row["tags"] == "purpose=e2e"
    assert row["samples"] >= 10
    # throughput is what the loop sustained (harness.sustained): across processes, never the synced latency
    per_step = [repeat["timing"]["sustained_wall_s"] / sum(repeat["timing"]["sustained_block_steps"])
                for repeat in used_results(run["cases"][0])]  # a process flagged disturbed is left out
    assert row["throughput_samples_per_s"] == pytest.approx(8 / statistics.geometric_mean(per_step), rel=1e-9)
    assert math.isnan(row["throughput_tokens_per_s"])   # not a sequence workload
    assert row["compile_time_s"] > 0
    assert math.isnan(row["device_peak_memory_bytes"])  # the CPU allocator keeps no statistics...
    assert "no allocator statistics" in row["device_peak_memory_reason"]  # ...and the reason says so
    assert row["host_peak_rss_bytes"] > 50 * 2**20
