"""Efficiency: achieved FLOP/s, MFU against the best measured peak, % of datasheet spec, roofline, table cell.

Run files are built in code with exact step times, so every figure is checked exactly.
"""

from __future__ import annotations

import copy

import pytest

from tribench.core.spec import CaseSpec
from tribench.harness import efficiency, traffic
from tribench.harness import peak_measure as pm
from tribench.harness.results import RunFile
from tribench.reports.text.table import mfu_caption, mfu_cell
from tribench.suites import workloads

SPEC = CaseSpec(backend="torch", workload="cnn", size="tiny", mode="train", batch_size=32)
MEDIAN = 0.004


def entry(backend: str, device: str, name: str, fp32: float | None, bf16: float | None = None,
          tf32: float | None = None, bandwidth: float = 2e10, math: str = "fp32") -> dict:
    values = {"fp32": fp32, "tf32": tf32, "bf16": bf16, "fp16": None}
    matmul = {p: (pm.measured(pm.Timed((v,), 1), pm.FLOPS_UNIT, f"{backend} matmul {p}") if v
                  else pm.unavailable(pm.FLOPS_UNIT, f"{backend} cannot run {p} on {device}"))
              for p, v in values.items()}
    copy_peak = pm.measured(pm.Timed((bandwidth,), 1), pm.BANDWIDTH_UNIT, f"{backend} copy")
    return pm.record(backend, "1.0", device, name, pm.PeakOptions(), matmul, copy_peak, math)


def environment_with(*entries: dict) -> dict:
    return {"frameworks": {"torch": {"device_names": {"cpu": "AMD EPYC"}}},
            "peaks": {"machine_fingerprint": "f", "entries": list(entries)}}


CPU_ENV = environment_with(entry("torch", "cpu", "AMD EPYC", 5e10, bf16=9e10),
                           entry("jax", "cpu", "AMD EPYC", 8e10, bandwidth=3e10),
                           entry("jax", "gpu", "NVIDIA H200", 5e13, bf16=7e14, tf32=3e14, math="tf32"))


def test_mfu_is_achieved_over_the_best_peak_any_framework_reached_on_the_device():
    flops = workloads.get("cnn").flops_per_step("tiny", "train", 32)
    metrics = efficiency.case_efficiency(SPEC.to_dict(), flops, MEDIAN, CPU_ENV)
    achieved = metrics["achieved_flops_per_s"]["value"]
    assert achieved == flops / MEDIAN
    assert metrics["mfu"]["value"] == achieved / 8e10
    assert (metrics["mfu"]["peak_backend"], metrics["mfu"]["peak_precision"]) == ("jax", "fp32")
    assert metrics["spec_fraction"]["value"] is None
    assert metrics["spec_fraction"]["reason"].startswith("no datasheet entry for AMD EPYC")


def test_precision_picks_the_peak_and_fp32_on_a_gpu_is_held_against_true_fp32():
    bf16 = efficiency.case_efficiency({**SPEC.to_dict(), "precision": "bf16"}, 1e9, 0.01, CPU_ENV)
    assert bf16["mfu"]["value"] == (1e9 / 0.01) / 9e10
    gpu = {**SPEC.to_dict(), "backend": "jax", "device": "gpu"}
    # the cached JAX GPU peak says its default fp32 math is TF32 (written before harness.numerics); tribench now
    # runs fp32 cases with TF32 off, so they are held against the true-fp32 peak and datasheet figure
    on_gpu = efficiency.case_efficiency(gpu, 1e12, 0.01, CPU_ENV)
    assert on_gpu["mfu"]["peak_precision"] == "fp32"
    assert on_gpu["mfu"]["value"] == (1e12 / 0.01) / 5e13
    assert on_gpu["spec_fraction"]["value"] == (1e12 / 0.01) / 67e12  # H200 datasheet, dense fp32
    assert on_gpu["spec_fraction"]["device_name"] == "NVIDIA H200"
    tf32 = efficiency.case_efficiency({**gpu, "precision": "tf32"}, 1e12, 0.01, CPU_ENV)
    assert tf32["mfu"]["peak_precision"] == "tf32"
    assert tf32["mfu"]["value"] == (1e12 / 0.01) / 3e14
    assert tf32["spec_fraction"]["value"] == (1e12 / 0.01) / 494.7e12  # H200 datasheet, dense TF32


def test_no_peak_means_no_mfu_with_the_reason_never_zero():
    none = efficiency.case_efficiency(SPEC.to_dict(), 1e9, 0.01, {"frameworks": {}})
    assert none["achieved_flops_per_s"]["value"] == 1e11
    assert none["mfu"]["value"] is None and none["mfu"]["reason"] == efficiency.NO_PEAKS
    fp16 = efficiency.case_efficiency({**SPEC.to_dict(), "precision": "fp16"}, 1e9, 0.01, CPU_ENV)
    assert fp16["mfu"]["value"] is None
    assert "no measured fp16 matmul peak on cpu" in fp16["mfu"]["reason"]
    assert "torch: torch cannot run fp16 on cpu" in fp16["mfu"]["reason"]


def process_result(samples: list[float]) -> dict:
    return {"status": "ok", "error": None, "setup_time_s": 1.0, "param_count": 93322,
            "timing": {"compile_time_s": 0.5, "warmup_samples_s": [], "warmup_steady": True, "samples_s": samples,
                       "stop_reason": "converged", "measure_wall_s": sum(samples), "final_ci_rel_halfwidth": 0.01},
            "memory": []}


def test_the_run_file_derives_mfu_from_the_peaks_in_its_environment(tmp_path):
    run = RunFile(tmp_path / "run.json", copy.deepcopy(CPU_ENV), {}, {}, ["tribench"])
    case = run.record(SPEC, process_result([0.03, 0.04, 0.05]))
    metrics = case["metrics"]
    flops = case["workload"]["flops_per_step"]["value"]
    assert metrics["achieved_flops_per_s"]["value"] == flops / 0.04
    stored_peak = max(e["matmul"]["fp32"]["value"] for e in run.data["environment"]["peaks"]["entries"]
                      if e["device"] == "cpu")
    assert metrics["mfu"]["value"] == metrics["achieved_flops_per_s"]["value"] / stored_peak
    assert 0 < metrics["mfu"]["value"] < 1


def test_the_table_shows_mfu_and_says_once_why_it_is_missing(tmp_path):
    with_peaks = RunFile(tmp_path / "a.json", copy.deepcopy(CPU_ENV), {}, {}, ["tribench"])
    case = with_peaks.record(SPEC, process_result([0.004] * 5))
    assert mfu_cell(case["metrics"]).split("\n")[0] == f"{case['metrics']['mfu']['value'] * 100:.1f}%"
    assert mfu_caption(with_peaks.data) is None
    without = RunFile(tmp_path / "b.json", {"frameworks": {}}, {}, {}, ["tribench"])
    case = without.record(SPEC, process_result([0.004] * 5))
    assert mfu_cell(case["metrics"]).startswith("n/a\n")
    assert mfu_caption(without.data) == f"MFU n/a: {efficiency.NO_PEAKS}"


# ---------------------------------------------------------------- roofline


def test_analytic_bytes_of_the_tiny_cnn():
    # conv outputs 26x26x32 + 11x11x64 + 3x3x64, dense 64, logits 10 = 21,632 + 7,744 + 576 + 74 per sample
    assert traffic.activation_elements_per_sample(workloads.get("cnn").architecture("tiny")) == 30_026
    expected = 30_026 * 8 * 4 * 6 + 93_322 * 40
    assert traffic.bytes_per_step("cnn", "tiny", "train", 8, "fp32") == expected
    assert traffic.bytes_per_step("cnn", "tiny", "infer", 8, "bf16") == 30_026 * 8 * 2 * 2 + 93_322 * 4


def test_every_workload_size_has_a_positive_traffic_estimate():
    for workload in workloads.WORKLOADS.values():
        for size in workload.sizes:
            assert traffic.bytes_per_step(workload.name, size, "train", 2, "fp32") > 0


def test_roofline_point_uses_xla_cost_analysis_where_profiled_else_the_analytic_estimate(tmp_path):
    run = RunFile(tmp_path / "run.json", copy.deepcopy(CPU_ENV), {}, {}, ["tribench"])
    case = run.record(SPEC, process_result([0.004] * 5))
    point = efficiency.roofline_point(case, run.data)
    flops = case["workload"]["flops_per_step"]["value"]
    moved = traffic.bytes_per_step("cnn", "tiny", "train", 32, "fp32")
    assert point["arithmetic_intensity"] == flops / moved
    assert point["intensity_source"].startswith("analytic FLOPs / analytic estimate")
    assert point["roof_peak_flops_per_s"] == 8e10 and point["roof_bandwidth_bytes_per_s"] == 3e10
    assert point["roof_ridge_flop_per_byte"] == 8e10 / 3e10
    assert point["attainable_flops_per_s"] == min(8e10, point["arithmetic_intensity"] * 3e10)
    assert point["bound"] == ("memory" if point["arithmetic_intensity"] < 8e10 / 3e10 else "compute")

    case["metrics"]["profile"] = {"extra": {"xla_cost_analysis": {"flops": 2e9, "bytes_accessed": 1e8}}}
    profiled = efficiency.roofline_point(case, run.data)
    assert profiled["arithmetic_intensity"] == 20.0
    assert profiled["intensity_source"].startswith("XLA cost analysis")
    assert profiled["bound"] == "compute"


def test_efficiency_columns_flatten_values_and_reasons(tmp_path):
    run = RunFile(tmp_path / "run.json", {"frameworks": {}}, {}, {}, ["tribench"])
    case = run.record(SPEC, process_result([0.004] * 5))
    columns = efficiency.efficiency_columns(case)
    assert columns["achieved_flops_per_s"] == pytest.approx(case["workload"]["flops_per_step"]["value"] / 0.004)
    assert columns["mfu"] is None and columns["mfu_reason"] == efficiency.NO_PEAKS
