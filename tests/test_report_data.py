"""What every report format is built on: throughput CIs, energy read defensively, series, colours, numbers."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from tribench.reports import dataset
from tribench.reports.energy_reading import ESTIMATE_ONLY, NO_ENERGY, energy_per_sample
from tribench.reports.html.charts import thin
from tribench.reports.report_format import ci_text, number, whole

DATA = Path(__file__).resolve().parent / "data"


def test_throughput_ci_swaps_the_step_time_bounds():
    assert dataset.throughput_ci(32, {"ci_low": 0.01, "ci_high": 0.02}) == (1600.0, 3200.0)
    assert dataset.throughput_ci(32, {"ci_low": None, "ci_high": None}) == (None, None)  # too few samples
    assert dataset.throughput_ci("32", {"ci_low": 0.01, "ci_high": 0.02}) == (None, None)  # not a number


def test_rows_follow_the_run_file_exactly():
    data = dataset.load([DATA / "run-sweep.json"])
    run = json.loads((DATA / "run-sweep.json").read_text())
    assert len(data.frame) == len(run["cases"]) == 16
    for case in run["cases"]:
        row = data.frame[data.frame["case_id"] == case["id"]].iloc[0]
        step, batch = case["metrics"]["step_time"], case["spec"]["batch_size"]
        assert row["throughput_samples_per_s"] == batch / step["median"]
        if step["ci_low"] is None:  # too few steps for a CI: missing, never made up
            assert math.isnan(row["throughput_ci_low"]) and math.isnan(row["throughput_ci_high"])
        else:
            assert row["throughput_ci_low"] == batch / step["ci_high"]
            assert row["throughput_ci_high"] == batch / step["ci_low"]
        assert row["samples_s"] == case["repeats"][0]["timing"]["samples_s"]
        assert row["task"] == f"{case['spec']['workload']}-tiny"
        assert row["variant"] == f"{case['spec']['mode']} · bs{batch} · fp32 · eager"


def test_rows_are_ordered_train_before_infer_and_by_batch():
    frame = dataset.load([DATA / "run-sweep.json"]).frame
    cnn = frame[frame["workload"] == "cnn"]
    assert list(zip(cnn["mode"], cnn["batch_size"], strict=True))[::2] == [
        ("train", 8.0), ("train", 32.0), ("infer", 8.0), ("infer", 32.0)]


def test_one_colour_per_backend_fixed_for_builtins_and_spare_for_others():
    colours = dataset.backend_colours(["zzz", "torch", "jax", "fake", "tensorflow", "torch"])
    assert colours == {"fake": dataset.SPARE_COLOURS[0], "jax": "#5E35B1", "tensorflow": "#F2A900",
                       "torch": "#EE4C2C", "zzz": dataset.SPARE_COLOURS[1]}


def test_series_name_device_and_run_only_when_they_vary(tmp_path):
    single = dataset.load([DATA / "run-sweep.json"])
    assert set(single.frame["series"]) == {"torch", "jax"} and single.series_title == "backend"
    pair = dataset.load([DATA / "run-fingerprint-a.json", DATA / "run-fingerprint-b.json"])
    labels = [run.label for run in pair.runs]
    assert set(pair.frame["series"]) == {f"torch · {label}" for label in labels}
    assert pair.series_title == "backend · run"
    assert sorted(pair.patterns.values()) == ["", "/"]  # same colour, told apart by pattern


def test_same_run_id_twice_gets_distinct_labels(tmp_path):
    copy = tmp_path / "copy.json"
    shutil.copy(DATA / "run-sweep.json", copy)
    runs = dataset.load_runs([DATA / "run-sweep.json", copy])
    run_id = runs[0].data["run_id"]
    assert [run.label for run in runs] == [f"{run_id} (run-sweep.json)", f"{run_id} (copy.json)"]
    runs = dataset.load_runs([copy, copy])
    assert [run.label for run in runs] == [f"{run_id} (copy.json) #1", f"{run_id} (copy.json) #2"]


def test_fingerprint_differences_name_the_fields():
    pair = dataset.load([DATA / "run-fingerprint-a.json", DATA / "run-fingerprint-b.json"])
    assert pair.fingerprints_differ()
    assert dataset.fingerprint_differences(pair) == [("env_vars", ["{}", '{"OMP_NUM_THREADS": "1"}'])]
    assert not dataset.load([DATA / "run-sweep.json"]).fingerprints_differ()


# ---------------------------------------------------------------- energy, read defensively

MEASURED = {"value": 0.25, "unit": "J/sample", "method": "counter", "source": "rapl:package-0", "scope": "package",
            "reason": None, "net": {"value": 0.1, "unit": "J/sample"}}


@pytest.mark.parametrize(("energy", "value", "reason"), [
    (None, None, NO_ENERGY),  # run files written before energy was measured
    (MEASURED, 0.25, None),
    ({"value": None, "unit": "J/sample", "method": "unavailable", "source": "rapl", "reason": "no RAPL here",
      "estimate": {"estimate": 9.0, "unit": "J/sample", "method": "estimate"}}, None, "no RAPL here"),
    ([{"name": "gpu0", "unit": "J/sample", "value": 2.0, "method": "power_sampling", "source": "nvml"}], 2.0, None),
    ([{"name": "tdp", "unit": "J/sample", "value": 3.0, "method": "estimate", "source": "TDP x time"}],
     None, ESTIMATE_ONLY),  # an estimate is never shown as a measurement
    ({"value": True, "unit": "J/sample", "method": "counter"}, None,
     "the run file's energy entry holds no measured joules per sample"),
    ({"value": 12.0, "unit": "J", "method": "counter", "readings": []}, None,
     "the run file's energy entry holds no measured joules per sample"),  # total joules are not per sample
])
def test_energy_per_sample(energy, value, reason):
    result = energy_per_sample({"energy": energy} if energy is not None else {})
    assert result["value"] == value
    assert result["reason"] == reason
    if value is not None:
        assert result["unit"] == "J/sample" and result["source"]


def test_energy_column_in_the_frame(tmp_path):
    run = json.loads((DATA / "run-fingerprint-a.json").read_text())
    run["cases"][0]["metrics"]["energy"] = MEASURED
    run["cases"][1]["metrics"]["energy"] = {"value": None, "unit": "J/sample", "method": "unavailable",
                                            "reason": "no counter on this device"}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    frame = dataset.load([path]).frame
    assert frame.loc[frame["case_id"] == run["cases"][0]["id"], "energy_j_per_sample"].item() == 0.25
    second = frame[frame["case_id"] == run["cases"][1]["id"]].iloc[0]
    assert second["energy_j_per_sample"] != second["energy_j_per_sample"]  # NaN, never 0
    assert second["energy_reason"] == "no counter on this device"


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(("value", "text"), [
    (14989.4, "14,989"), (235.44, "235.4"), (8.9137, "8.914"), (0.0123456, "0.01235"), (0, "0"), (None, "n/a"),
    (float("nan"), "n/a"), (1234567.0, "1,234,567"),
])
def test_number(value, text):
    assert number(value) == text


def test_whole_and_ci_text():
    assert whole(32.0) == "32" and whole(None) == "n/a" and whole(7) == "7"
    assert ci_text(1000.0, 1234.5) == "1,000 – 1,234"
    assert ci_text(None, 3.0) == "n/a (too few steps)"


def test_thin_keeps_order_statistics():
    samples = [float(i) for i in range(10_000, 0, -1)]
    kept = thin(samples, 101)
    assert len(kept) == 101 and kept[0] == 1.0 and kept[-1] == 10_000.0 and kept == sorted(kept)
    assert kept[50] == 5001.0  # sorted[round(50 * 9999 / 100)]: the median survives
    assert thin([3.0, 1.0], 101) == [3.0, 1.0]  # few samples: all kept, untouched
