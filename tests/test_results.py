"""The run file: atomic rewrites, derived metrics, strict loading, and the DataFrame loader."""

import json
import math

import pytest

from tribench import reports
from tribench.core.errors import ResultFileError
from tribench.core.spec import CaseSpec
from tribench.harness.results import RunFile, load_run

SPEC = CaseSpec("torch", "transformer", "tiny", "train", 8)


def process(samples, status="ok", compile_time=2.0, memory=()):
    return {
        "status": status, "error": None if status == "ok" else "boom", "setup_time_s": 0.5,
        "param_count": 229_096, "memory": list(memory), "wall_s": 3.0, "exit_code": 0, "stderr_tail": "",
        "timing": {"compile_time_s": compile_time, "warmup_samples_s": [1.0], "warmup_steady": True,
                   "samples_s": samples, "stop_reason": "converged", "measure_wall_s": sum(samples),
                   "final_ci_rel_halfwidth": 0.0},
    }


def new_run(tmp_path):
    return RunFile(tmp_path / "run.json", {"fingerprint": "abc", "machine": {"hostname": "h"}}, {}, {"k": "v"}, ["x"])


def test_metrics_are_derived_exactly_from_the_samples(tmp_path):
    run = new_run(tmp_path)
    case = run.record(SPEC, process([0.25, 0.5, 0.5, 1.0, 0.5]))
    metrics = case["metrics"]
    assert metrics["throughput"] == {"value": 16.0, "unit": "samples/s", "basis": "synced-steps",
                                     "source": "batch_size / median synced step time (geometric mean of per-process "
                                               "medians); no sustained measurement in this file"}
    assert metrics["token_throughput"]["value"] == 8 * 32 / 0.5
    assert metrics["token_throughput"]["unit"] == "tokens/s"
    assert metrics["step_time"]["p50"] == 0.5
    assert metrics["step_time"]["iqr"] == 0.0
    assert metrics["compile_time"]["value"] == 2.0
    assert case["workload"]["flops_per_step"]["value"] == 10_911_744 * 8 * 3
    assert case["workload"]["expected_params"] == 229_096


def test_processes_are_the_unit_of_the_estimate_and_the_worst_status_wins(tmp_path):
    run = new_run(tmp_path)
    case = run.record(SPEC, process([1.0, 1.0, 1.0]))
    assert case["metrics"]["step_time"]["ci_basis"] == "within-process"  # one process: its own CI, labelled
    case = run.record(SPEC, process([3.0, 3.0, 3.0], compile_time=4.0))
    assert case["status"] == "ok"
    step = case["metrics"]["step_time"]
    assert step["per_repeat_median"] == [1.0, 3.0]
    assert step["median"] == pytest.approx(3.0 ** 0.5)  # geometric mean of the two processes' medians
    assert case["metrics"]["throughput"]["value"] == pytest.approx(8 / 3.0 ** 0.5)
    assert (step["ci_basis"], step["processes"], step["n"]) == ("across-processes", 2, 6)
    half = 12.706204736174698 * math.log(3.0) / math.sqrt(2) / math.sqrt(2)  # t(0.975, 1) * s / sqrt(n)
    assert (step["ci_low"], step["ci_high"]) == (pytest.approx(3.0 ** 0.5 * math.exp(-half)),
                                                 pytest.approx(3.0 ** 0.5 * math.exp(half)))
    assert case["metrics"]["compile_time"]["value"] == 3.0
    case = run.record(SPEC, {"status": "timeout", "error": "timed out after 5 s", "wall_s": 5.0,
                             "exit_code": -9, "stderr_tail": ""})
    assert (case["status"], case["error"]) == ("timeout", "timed out after 5 s")
    assert case["metrics"]["step_time"]["n"] == 6  # the good repeats still count


def test_memory_takes_the_largest_measured_reading_over_repeats(tmp_path):
    run = new_run(tmp_path)
    read = lambda v: {"name": "device_peak_allocated", "unit": "bytes", "source": "s", "scope": "device",  # noqa
                      "value": v, "reason": None if v else "no"}
    run.record(SPEC, process([1.0], memory=[read(5.0)]))
    case = run.record(SPEC, process([1.0], memory=[read(7.0)]))
    assert case["metrics"]["memory"][0]["value"] == 7.0


def test_every_record_leaves_a_complete_file_on_disk(tmp_path):
    run = new_run(tmp_path)
    run.save()
    assert json.loads((tmp_path / "run.json").read_text())["cases"] == []
    run.record(SPEC, process([1.0]))
    on_disk = json.loads((tmp_path / "run.json").read_text())
    assert [case["id"] for case in on_disk["cases"]] == [SPEC.id]
    assert on_disk["state"] == "running"
    run.finish("complete")
    assert load_run(tmp_path / "run.json")["state"] == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # no temp files left behind


@pytest.mark.parametrize("content, message", [
    ('{"kind": "tribench-run", "schema_version": 1, "cases": [', "not valid JSON"),
    ("\x00\x01binary", "not valid JSON"),
    ('{"name": "some other tool"}', 'not a tribench run file (expected "kind": "tribench-run")'),
    ('[1, 2]', "not a tribench run file"),
    ('{"kind": "tribench-run", "schema_version": 99, "cases": []}', "is newer than this tribench reads"),
    ('{"kind": "tribench-run", "schema_version": 0, "cases": []}', "re-run the benchmark with this version"),
    ('{"kind": "tribench-run", "schema_version": 1}', "has no list of cases"),
])
def test_bad_run_files_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultFileError) as error:
        load_run(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_missing_run_file(tmp_path):
    with pytest.raises(ResultFileError, match="no such run file"):
        load_run(tmp_path / "nope.json")


def test_loader_gives_one_row_per_case_per_run(tmp_path):
    first, second = new_run(tmp_path), RunFile(tmp_path / "b.json", {}, {}, {}, [])
    first.record(SPEC, process([0.5]))
    first.record(CaseSpec("torch", "cnn", "tiny", "infer", 4), {"status": "skipped", "error": "no gpu",
                 "wall_s": 0.0, "exit_code": None, "stderr_tail": ""})
    second.record(SPEC, process([0.25]))
    frame = reports.load([tmp_path / "run.json", tmp_path / "b.json"])
    assert len(frame) == 3
    assert list(frame["throughput_samples_per_s"][[0, 2]]) == [16.0, 32.0]
    assert frame.loc[1, "status"] == "skipped" and frame.loc[1, "error"] == "no gpu"
    assert frame.loc[0, "tags"] == "k=v"
    assert frame.loc[0, "fingerprint"] == "abc"
    assert frame.loc[0, "batch_size"] == 8
