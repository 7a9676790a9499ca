"""Profiling, the framework-neutral part and the trace readers, without importing any framework.

Operator tables are checked on hand-made traces with exact times; the worker is checked with a
fake backend whose session records when ``profile`` ran (after the timed steps, never in them).
The real frameworks' traces are checked in tests/test_peak_and_profile_cpu.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers import ROOT, fake_env, tribench
from tribench.backends.jax.profiling import table_from_trace
from tribench.backends.tensorflow.xplane import table_from_xspace
from tribench.backends.torch.profiling import _rows as torch_rows
from tribench.core.spec import CaseSpec
from tribench.harness import profiling
from tribench.harness.profiling import OperatorRow, OpEvent, ProfileOptions, ProfileRequest, operator_table
from tribench.harness.timing import TimingConfig

PROFILED_BACKEND = "fakeprof=tests.fakes.profiled_backend"


def rows_by_name(rows: list[OperatorRow]) -> dict[str, OperatorRow]:
    return {row.operator: row for row in rows}


# ---------------------------------------------------------------- the operator table


def test_self_time_excludes_nested_children_on_the_same_thread():
    events = [OpEvent("outer", 1, 0.0, 10.0), OpEvent("inner", 1, 2.0, 5.0), OpEvent("inner", 1, 6.0, 7.0)]
    rows, window = operator_table(events, [(0.0, 20.0)])
    by = rows_by_name(rows)
    assert window == 20.0
    assert (by["outer"].calls, by["outer"].total_s, by["outer"].self_s) == (1, 10.0, 6.0)
    assert (by["inner"].calls, by["inner"].total_s, by["inner"].self_s) == (2, 4.0, 4.0)
    assert by["outer"].share == 6.0 / 20.0
    assert [row.operator for row in rows] == ["outer", "inner"]          # sorted by self time


def test_concurrent_threads_share_the_wall_clock_so_self_times_never_exceed_the_window():
    # two threads fully busy over the same 4 s window: summed durations are 8 s, wall time is 4 s
    events = [OpEvent("a", "t1", 0.0, 4.0), OpEvent("b", "t2", 0.0, 2.0), OpEvent("c", "t2", 2.0, 4.0)]
    rows, window = operator_table(events, [(0.0, 4.0)])
    by = rows_by_name(rows)
    assert sum(row.total_s for row in rows) == 8.0
    assert (by["a"].self_s, by["b"].self_s, by["c"].self_s) == (2.0, 1.0, 1.0)
    assert sum(row.self_s for row in rows) == window == 4.0
    assert sum(row.share for row in rows) == 1.0


def test_events_are_clipped_to_the_profiled_steps():
    events = [OpEvent("warm", 1, -5.0, -1.0), OpEvent("edge", 1, 9.0, 12.0), OpEvent("in", 1, 1.0, 2.0)]
    rows, window = operator_table(events, [(0.0, 5.0), (8.0, 10.0), (4.0, 6.0)])
    by = rows_by_name(rows)
    assert window == 8.0                                  # (0, 6) merged with (4, 6), plus (8, 10)
    assert "warm" not in by
    assert (by["edge"].total_s, by["edge"].self_s) == (1.0, 1.0)
    assert by["in"].self_s == 1.0


# ---------------------------------------------------------------- the three readers


def chrome_events(*events: dict) -> dict:
    meta = [{"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
            {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/device:GPU:0"}},
            {"ph": "M", "pid": 2, "tid": 7, "name": "thread_name", "args": {"name": "XLA Ops"}}]
    return {"traceEvents": meta + list(events)}


def x(name: str, ts: float, dur: float, pid: int = 1, tid: int = 1, **args) -> dict:
    return {"ph": "X", "pid": pid, "tid": tid, "ts": ts, "dur": dur, "name": name, "args": args}


def test_jax_reader_takes_xla_ops_inside_the_step_markers():
    trace = chrome_events(
        x("tribench_step", 0, 100), x("tribench_step", 200, 100),
        x("fusion.1", 10, 30, tid=2, hlo_op="fusion.1"), x("fusion.1", 210, 50, tid=3, hlo_op="fusion.1"),
        x("dot.2", 50, 20, tid=2, hlo_op="dot.2"), x("PjitFunction(step)", 5, 90),    # host launch: not an op
        x("copy.3", 400, 10, tid=2, hlo_op="copy.3"))                                  # outside the steps
    rows, window = table_from_trace(trace)
    by = rows_by_name(rows)
    assert window == pytest.approx(200e-6)
    assert set(by) == {"fusion.1", "dot.2"}
    assert by["fusion.1"].calls == 2 and by["fusion.1"].total_s == pytest.approx(80e-6)
    assert sum(row.self_s for row in rows) <= window


def test_jax_reader_prefers_the_device_xla_ops_line_over_host_launches():
    trace = chrome_events(
        x("tribench_step", 0, 100),
        x("fusion.1", 10, 30, hlo_op="fusion.1"),                               # host-side launch event
        x("fusion.1", 20, 40, pid=2, tid=7, hlo_op="fusion.1"),                  # device "XLA Ops" line
        x("fusion.1", 20, 40, pid=2, tid=9, hlo_op="fusion.1"))                  # raw stream (same kernel)
    rows, _ = table_from_trace(trace)
    assert [(row.operator, row.calls, row.total_s) for row in rows] == [("fusion.1", 1, pytest.approx(40e-6))]


def xplane(planes: list) -> SimpleNamespace:
    return SimpleNamespace(planes=planes)


def plane(name: str, lines: list, events: dict[int, str], stats: dict[int, str], plane_id: int = 0):
    return SimpleNamespace(
        id=plane_id, name=name, lines=lines,
        event_metadata={key: SimpleNamespace(name=value) for key, value in events.items()},
        stat_metadata={key: SimpleNamespace(name=value) for key, value in stats.items()})


def line(name: str, events: list, line_id: int = 0, timestamp_ns: int = 1000):
    return SimpleNamespace(id=line_id, name=name, timestamp_ns=timestamp_ns, events=[
        SimpleNamespace(metadata_id=meta, offset_ps=offset, duration_ps=duration,
                        stats=[SimpleNamespace(metadata_id=stat) for stat in stats])
        for meta, offset, duration, stats in events])


US_PS = 1_000_000   # picoseconds per microsecond


def test_tensorflow_reader_groups_executor_ops_by_type_within_the_steps():
    names = {1: "tribench_step", 2: "dense/MatMul:MatMul", 3: "dense_1/MatMul:MatMul", 4: "relu:Relu",
             5: "ExecutorState::Process", 6: "EagerLocalExecute: __inference_step_1"}
    host = plane("/host:CPU", [
        line("python", [(1, 0, 100 * US_PS, []), (6, 1 * US_PS, 90 * US_PS, [])], line_id=1),
        line("tf_Compute/1", [(5, 5 * US_PS, 50 * US_PS, []), (2, 10 * US_PS, 20 * US_PS, []),
                              (4, 35 * US_PS, 10 * US_PS, [])], line_id=2),
        line("tf_Compute/2", [(3, 10 * US_PS, 20 * US_PS, [])], line_id=3)], names, {})
    rows, window, what = table_from_xspace(xplane([host]))
    by = rows_by_name(rows)
    assert what == "TensorFlow op executions grouped by op type"
    assert window == pytest.approx(100e-6)
    assert set(by) == {"MatMul", "Relu"}
    assert by["MatMul"].calls == 2 and by["MatMul"].total_s == pytest.approx(40e-6)
    assert by["MatMul"].self_s == pytest.approx(20e-6)       # the two MatMuls ran at the same time
    assert sum(row.self_s for row in rows) <= window


def test_tensorflow_reader_uses_xla_ops_when_the_step_was_compiled():
    names = {1: "tribench_step", 2: "convolution.3", 3: "cluster:_XlaRun"}
    host = plane("/host:CPU", [
        line("python", [(1, 0, 100 * US_PS, [])], line_id=1),
        line("tf_Compute/1", [(3, 5 * US_PS, 60 * US_PS, [])], line_id=2),
        line("Eigen/1", [(2, 10 * US_PS, 30 * US_PS, [7])], line_id=3)], names, {7: "hlo_op"})
    rows, _, what = table_from_xspace(xplane([host]))
    assert what.startswith("XLA op executions")
    assert [(row.operator, row.calls) for row in rows] == [("convolution.3", 1)]


def test_torch_rows_come_from_key_averages_and_the_step_annotation_is_the_window():
    averages = [
        SimpleNamespace(key="tribench_step", count=3, cpu_time_total=3000.0, self_cpu_time_total=100.0,
                        device_time_total=0.0, self_device_time_total=0.0),
        SimpleNamespace(key="aten::linear", count=6, cpu_time_total=2400.0, self_cpu_time_total=400.0,
                        device_time_total=0.0, self_device_time_total=0.0),
        SimpleNamespace(key="aten::addmm", count=6, cpu_time_total=2000.0, self_cpu_time_total=2000.0,
                        device_time_total=0.0, self_device_time_total=0.0),
    ]
    rows, window = torch_rows(averages, device_time=False)
    by = rows_by_name(rows)
    assert window == pytest.approx(3000e-6)
    assert set(by) == {"aten::linear", "aten::addmm"}
    assert by["aten::addmm"] == OperatorRow("aten::addmm", 6, pytest.approx(2000e-6), pytest.approx(2000e-6),
                                            pytest.approx(2000 / 3000))


# ---------------------------------------------------------------- where traces go, what a case records


def test_traces_go_under_the_run_folder_with_a_slug_per_case(tmp_path):
    run_file = tmp_path / "results" / "today.json"
    request = ProfileOptions(run_file, steps=2).request_for("torch/cnn-tiny/train/bs32/fp32/eager/cpu")
    assert Path(request.folder) == tmp_path / "results" / "today-traces" / "torch_cnn-tiny_train_bs32_fp32_eager_cpu"
    assert Path(request.run_folder) == tmp_path / "results"
    assert request.steps == 2


def test_recorded_paths_are_relative_to_the_run_folder_and_the_table_keeps_the_top_operators(tmp_path):
    request = ProfileRequest(str(tmp_path / "run-traces" / "case"), str(tmp_path), 3)
    rows = [OperatorRow(f"op{i}", 1, float(i), float(i), i / 100) for i in range(40)]
    result = profiling.from_backend({"tool": "t", "trace_file": str(tmp_path / "run-traces" / "case" / "x.json"),
                                     "window_s": 100.0, "operators": rows}, request)
    assert result.trace_dir == "run-traces/case" and result.trace_file == "run-traces/case/x.json"
    assert result.operators_total == 40 and len(result.operators) == profiling.TOP_OPERATORS
    assert result.operators[0].operator == "op39"
    assert profiling.resolve_trace(tmp_path / "run.json", result.to_dict()) == tmp_path / "run-traces/case/x.json"
    assert profiling.ProfileResult.from_dict(result.to_dict()) == result


def test_a_session_without_profile_or_with_a_failing_one_records_why(tmp_path):
    request = ProfileRequest(str(tmp_path / "t"), str(tmp_path), 2)
    plain = profiling.capture(object(), request)
    assert plain["status"] == "unavailable" and "has no profile() method" in plain["reason"]

    class Broken:
        def profile(self, steps, folder):
            raise RuntimeError("boom")

    broken = profiling.capture(Broken(), request)
    assert broken["status"] == "unavailable"
    assert broken["reason"] == "profiling failed: RuntimeError: boom"


# ---------------------------------------------------------------- the worker: after the timed window, never in it


def test_the_worker_profiles_after_measurement_and_the_samples_hold_only_timed_steps(tmp_path, monkeypatch):
    from tribench.harness import worker

    monkeypatch.setenv("TRIBENCH_EXTRA_BACKENDS", PROFILED_BACKEND)
    monkeypatch.setenv("FAKE_PROFILE", "ok")
    spec = CaseSpec(backend="fakeprof", workload="cnn", size="tiny", mode="train", batch_size=4)
    config = TimingConfig(min_steps=5, min_time_s=0.0, max_time_s=0.5, max_warmup_steps=3, target_ci=0.5)
    request = ProfileOptions(tmp_path / "run.json", steps=2).request_for(spec.id)
    result = worker.run_case(spec, config, profile=request)
    timing = result["timing"]
    timed_steps = 1 + len(timing["warmup_samples_s"]) + len(timing["samples_s"])   # compile + warm-up + measured
    trace = json.loads((tmp_path / "run-traces" / profiling.case_slug(spec.id) / "trace.json").read_text())
    assert trace["steps_before_profile"] == timed_steps          # profile ran after the last timed step
    assert result["profile"]["status"] == "captured"
    assert result["profile"]["trace_file"] == f"run-traces/{profiling.case_slug(spec.id)}/trace.json"
    assert result["profile"]["operators"][0]["operator"] == "sleep"


def test_a_failing_profiler_leaves_the_case_ok_and_profiles_only_the_first_repeat(tmp_path):
    env = fake_env(TRIBENCH_EXTRA_BACKENDS=PROFILED_BACKEND, FAKE_PROFILE="raise")
    output = tmp_path / "run.json"
    done = tribench("run", "--backend", "fakeprof", "--workload", "cnn", "--mode", "train", "--repeats", "2",
                    "--min-time", "0", "--max-time", "0.05", "--min-steps", "3", "--no-energy", "--idle-baseline", "0",
                    "--profile", "--profile-steps", "2", "--output", str(output), env=env)
    assert done.returncode == 0, done.stderr
    (case,) = json.loads(output.read_text())["cases"]
    assert case["status"] == "ok"
    first, second = case["repeats"]
    assert first["profile"] == {**first["profile"], "status": "unavailable",
                                "reason": "profiling failed: RuntimeError: the fake profiler broke"}
    assert "profile" not in second
    assert case["metrics"]["profile"]["status"] == "unavailable"
    assert f"traces: {output.parent / 'run-traces'}" in done.stdout.replace("\n", "")


def test_a_profiler_that_kills_the_worker_keeps_the_measured_result(tmp_path):
    env = fake_env(TRIBENCH_EXTRA_BACKENDS=PROFILED_BACKEND, FAKE_PROFILE="crash")
    output = tmp_path / "run.json"
    done = tribench("run", "--backend", "fakeprof", "--workload", "cnn", "--mode", "train", "--min-time", "0",
                    "--max-time", "0.05", "--min-steps", "3", "--no-energy", "--idle-baseline", "0", "--profile",
                    "--output", str(output), env=env)
    assert done.returncode == 0, done.stderr
    (case,) = json.loads(output.read_text())["cases"]
    assert case["status"] == "ok" and case["repeats"][0]["exit_code"] == 5
    assert case["metrics"]["step_time"]["n"] >= 3
    assert case["metrics"]["profile"]["reason"] == "the worker process died while profiling; see the case's stderr tail"


def test_imports_stay_framework_free():
    import subprocess
    import sys

    code = ("import sys, tribench.harness.profiling, tribench.harness.peak, tribench.harness.peak_measure, "
            "tribench.harness.datasheet, tribench.harness.efficiency, tribench.harness.traffic, tribench.cli.peak, "
            "tribench.backends.torch.profiling, tribench.backends.jax.profiling, "
            "tribench.backends.tensorflow.profiling, tribench.backends.tensorflow.xplane\n"
            "print([m for m in ('torch', 'tensorflow', 'jax', 'pandas', 'plotly') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
