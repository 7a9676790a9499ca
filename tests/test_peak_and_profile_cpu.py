"""The real thing on this machine's CPU: `tribench peak`, then `tribench run --profile` using the cached peaks.

Plausibility bound for a measured fp32 matmul peak (stated, and computed below from /proc/cpuinfo):

    logical cores x highest clock listed (``cpu MHz`` in /proc/cpuinfo, or lscpu's ``CPU max MHz``)
    x 64 fp32 FLOP per cycle

64 FLOP/cycle/core is two AVX-512 FMA units x 16 fp32 lanes x 2 FLOPs (multiply and add): no x86
core does more fp32 work per cycle, and logical cores >= physical ones, so no honest measurement
can exceed it. Matmuls are 512 x 512 and the copy 16 MiB here to keep the test short on 2 cores
(the defaults are 2048 and 128 MiB).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import tribench
from tribench import backends

pytestmark = pytest.mark.slow

FLOP_PER_CYCLE_PER_CORE = 2 * 16 * 2       # 2 FMA units x 16 fp32 lanes (AVX-512) x 2 FLOPs
PEAK_ARGS = ("--size", "512", "--copy-mib", "16", "--json")


def highest_clock_hz() -> float:
    text = Path("/proc/cpuinfo").read_text()
    mhz = [float(line.split(":")[1]) for line in text.splitlines() if line.lower().startswith("cpu mhz")]
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        mhz += [float(line.split(":")[1]) for line in lscpu.splitlines() if line.startswith("CPU max MHz")]
    except OSError:
        pass
    assert mhz, "no clock listed in /proc/cpuinfo or lscpu"
    return max(mhz) * 1e6


def theoretical_fp32_max() -> float:
    return os.cpu_count() * highest_clock_hz() * FLOP_PER_CYCLE_PER_CORE


INSTALLED = [name for name in ("torch", "tensorflow", "jax", "paddle") if backends.is_installed(name)]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Peaks measured once, asked for again (torch), then a profiled run of the tiny CNN in every framework."""
    folder = tmp_path_factory.mktemp("peak")
    env = {**os.environ, "TRIBENCH_CACHE_DIR": str(folder / "cache")}
    first = tribench("peak", *PEAK_ARGS, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    cache_file = Path(json.loads(first.stdout)["cache_file"])
    mtime = cache_file.stat().st_mtime_ns
    second = tribench("peak", "--backend", "torch", *PEAK_ARGS, env=env, timeout=600)
    assert second.returncode == 0, second.stderr
    output = folder / "results" / "run.json"
    run = tribench("run", "--backend", ",".join(INSTALLED), "--workload", "cnn", "--size", "tiny", "--mode", "train",
                   "--batch", "8", "--min-time", "0", "--max-time", "0.3", "--min-steps", "5", "--no-energy",
                   "--idle-baseline", "0", "--profile", "--profile-steps", "2", "--processes", "1",
                   "--output", str(output),
                   env=env, timeout=900)
    assert run.returncode == 0, run.stderr
    return {"first": json.loads(first.stdout), "second": json.loads(second.stdout), "mtime": mtime,
            "cache_file": cache_file, "run": json.loads(output.read_text()), "run_file": output}


def rows(report: dict) -> dict[str, dict]:
    return {row["backend"]: row for row in report["rows"] if row["device"] == "cpu"}


def test_four_frameworks_are_installed_here():
    assert INSTALLED == ["torch", "tensorflow", "jax", "paddle"]


def test_peak_fp32_is_positive_and_below_the_cpus_theoretical_maximum(measured):
    bound = theoretical_fp32_max()
    found = rows(measured["first"])
    assert sorted(found) == sorted(INSTALLED)
    for backend, row in found.items():
        fp32 = row["entry"]["matmul"]["fp32"]
        assert row["origin"] == "measured"
        assert 1e9 < fp32["value"] < bound, f"{backend}: {fp32['value']:.3g} FLOP/s vs bound {bound:.3g}"
        assert fp32["median"] <= fp32["value"]
        assert row["entry"]["bandwidth"]["value"] > 1e8
        assert row["entry"]["matmul"]["tf32"]["value"] is None
        assert "not applicable to cpu" in row["entry"]["matmul"]["tf32"]["reason"]


def test_a_cached_second_call_does_not_measure_again(measured):
    (torch_row,) = measured["second"]["rows"]
    assert torch_row["origin"] == "cached"
    assert torch_row["entry"] == rows(measured["first"])["torch"]["entry"]      # same measured_at, same figures
    assert measured["cache_file"].stat().st_mtime_ns == measured["mtime"]       # the cache was not rewritten


def test_the_run_stores_the_peaks_and_every_tiny_case_has_mfu_between_0_and_1(measured):
    run = measured["run"]
    entries = run["environment"]["peaks"]["entries"]
    assert sorted(e["backend"] for e in entries) == sorted(INSTALLED)
    peak = max(e["matmul"]["fp32"]["value"] for e in entries if e["device"] == "cpu")
    assert len(run["cases"]) == len(INSTALLED)
    for case in run["cases"]:
        assert case["status"] == "ok", case["error"]
        metrics = case["metrics"]
        achieved = metrics["achieved_flops_per_s"]["value"]
        # the sustained figure behind the throughput (harness.sustained), not the synced latency
        assert metrics["throughput"]["basis"] == "sustained"
        assert achieved == pytest.approx(case["workload"]["flops_per_step"]["value"] * metrics["throughput"]["value"]
                                         / case["spec"]["batch_size"], rel=1e-12)
        assert metrics["mfu"]["value"] == achieved / peak
        assert 0 < metrics["mfu"]["value"] < 1


def test_profile_writes_a_trace_for_each_backend_with_its_top_operators(measured):
    for case in measured["run"]["cases"]:
        profile = case["metrics"]["profile"]
        assert profile["status"] == "captured", profile.get("reason")
        trace = measured["run_file"].parent / profile["trace_file"]
        assert trace.is_file() and trace.stat().st_size > 0
        assert str(trace).startswith(str(measured["run_file"].parent / "run-traces"))
        assert profile["open_with"]
        assert profile["operators"], profile.get("operators_reason")   # all four read offline here


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_top_operator_times_add_up_to_no_more_than_the_profiled_window(measured, backend):
    (case,) = [c for c in measured["run"]["cases"] if c["spec"]["backend"] == backend]
    profile = case["metrics"]["profile"]
    window = profile["window_s"]
    operators = profile["operators"]
    assert window > 0 and operators
    assert sum(op["self_s"] for op in operators) <= window
    assert all(0 <= op["total_s"] <= window and op["calls"] >= 1 for op in operators)
    assert sum(op["share"] for op in operators) <= 1.0
