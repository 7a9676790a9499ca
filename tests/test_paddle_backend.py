"""The PaddlePaddle backend (issue 17): pure device/precision rules, the rank environment, the profiler's table,
GPU and accelerator paths through fakes of Paddle's own functions, real sessions on the CPU (loss drops,
compiled = native, parameters), and the whole tool through the CLI: a worker that imports Paddle alone, the
smoke cases, two data-parallel ranks over gloo, a profile, peaks, a report and a comparison."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.helpers import ROOT, paddle_import, tribench
from tribench import backends
from tribench.backends.base import CaseSkipped
from tribench.backends.paddle import devices, distributed, profiling
from tribench.backends.paddle.devices import DeviceFacts
from tribench.core.spec import CaseSpec
from tribench.harness.env_capture import reason_to_capture
from tribench.harness.results import load_run
from tribench.suites import workloads

with paddle_import():  # a test dependency (the [paddle] extra is part of [all]); its import leaks no variable
    import paddle

    from tribench.backends.paddle import adapter

FAST = ("--size", "tiny", "--min-time", "0.1", "--max-time", "0.3", "--min-steps", "5", "--no-energy",
        "--idle-baseline", "0")
HIDE_FOLDER = ROOT / "tests" / "hide_frameworks"
OTHERS = ("torch", "tensorflow", "jax", "keras", "flax", "optax")


def case(workload: str, mode: str = "train", **fields) -> CaseSpec:
    return CaseSpec(**{"backend": "paddle", "workload": workload, "size": "tiny", "mode": mode, "batch_size": 8,
                       **fields})


def _run(tmp_path: Path, *args: str, env=None, timeout: float = 600) -> dict:
    output = tmp_path / "run.json"
    done = tribench("run", *args, "--output", str(output), env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return load_run(output)


# ---------------------------------------------------------------- rules and facts (no device needed)


def test_device_rules():
    assert devices.device_skip_reason("cpu", gpu_available=False, build="3.3.1") is None
    assert devices.device_skip_reason("gpu", gpu_available=True, build="3.3.1") is None
    assert devices.device_skip_reason("gpu", gpu_available=False, build="3.3.1") == (
        "no CUDA or ROCm GPU visible to paddle 3.3.1 (a CPU build, or no GPU: paddle.device.cuda.device_count() is 0)")
    assert devices.device_skip_reason("tpu", gpu_available=True, build="3.3.1") == (
        "the paddle backend does not drive TPUs (PaddlePaddle has no TPU device)")
    assert devices.device_skip_reason("mps", gpu_available=True, build="3.3.1") == (
        "the paddle backend does not drive Apple MPS (PaddlePaddle has no MPS device)")
    assert (devices.place_of("cpu"), devices.place_of("gpu", 3)) == ("cpu", "gpu:3")


@pytest.mark.parametrize("capability, precision, reason", [
    ((8, 0), "bf16", None), ((8, 0), "fp16", None), ((8, 0), "tf32", None),
    ((7, 5), "fp16", None),
    ((7, 5), "bf16", "bf16 needs CUDA compute capability >= 8.0 for native bf16 math; T4 has 7.5"),
    ((7, 5), "tf32", "tf32 needs CUDA compute capability >= 8.0 (Ampere); this GPU has 7.5"),
    ((6, 1), "fp16", "fp16 needs CUDA compute capability >= 7.0 for tensor cores; T4 has 6.1"),
])
def test_gpu_precision_rules(capability, precision, reason):
    assert devices.precision_skip_reason(precision, DeviceFacts("gpu", "T4", compute_capability=capability)) == reason


def test_rocm_and_cpu_precision_rules():
    rocm = DeviceFacts("gpu", "MI300X", rocm=True)
    assert devices.precision_skip_reason("bf16", rocm) is None and devices.precision_skip_reason("fp16", rocm) is None
    assert devices.precision_skip_reason("tf32", rocm) == (
        "tf32 is an NVIDIA tensor-core mode; this GPU is served by ROCm")
    plain = DeviceFacts("cpu", "x86", cpu_flags=frozenset({"avx2"}))
    amx = DeviceFacts("cpu", "x86", cpu_flags=frozenset({"avx512_bf16", "amx_bf16", "avx512_fp16"}))
    for facts in (plain, amx):  # whatever the CPU: Paddle's auto_cast does nothing on a CPU place
        assert devices.precision_skip_reason("bf16", facts) == (
            "bf16 on a CPU is not mixed precision in Paddle 3.3: paddle.amp.auto_cast switches itself off on a CPU "
            "place, so the case would run fp32 under a bf16 label")
        assert devices.precision_skip_reason("fp16", facts).startswith("fp16 on a CPU is not mixed precision")
    assert devices.precision_skip_reason("fp32", plain) is None
    assert devices.uses_grad_scaler("fp16", "train") and not devices.uses_grad_scaler("bf16", "train")
    assert not devices.uses_grad_scaler("fp16", "infer")
    assert (devices.amp_dtype("bf16"), devices.amp_dtype("fp16"), devices.amp_dtype("tf32")) == (
        "bfloat16", "float16", None)


def test_the_torchrun_variables_become_paddles():
    torchrun = {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}
    assert distributed.paddle_env(torchrun, "cpu") == {
        "PADDLE_TRAINER_ID": "3", "PADDLE_TRAINERS_NUM": "4", "PADDLE_CURRENT_ENDPOINT": "10.0.0.1:29500",
        "PADDLE_TRAINER_ENDPOINTS": ",".join(["10.0.0.1:29500"] * 4), "PADDLE_MASTER": "10.0.0.1:29500",
        "PADDLE_DISTRI_BACKEND": "gloo"}
    gpu = distributed.paddle_env(torchrun, "gpu")
    assert gpu["FLAGS_selected_gpus"] == "1" and "PADDLE_DISTRI_BACKEND" not in gpu   # NCCL: Paddle's default


def test_the_registry_is_the_one_place_that_names_paddle():
    entry = backends.entry("paddle")
    assert (entry.module, entry.requires, entry.install_hint, entry.launch) == (
        "tribench.backends.paddle.adapter", ("paddle",), "pip install -e '.[paddle]'", "process-per-device")
    assert backends.lstm_second_bias("paddle") and backends.lstm_second_bias("torch")
    assert not backends.lstm_second_bias("jax") and not backends.lstm_second_bias("an-old-backend")
    assert dict(entry.compile_modes)["compiled"] == "paddle.jit.to_static (CINN where Paddle was built with it)"
    assert reason_to_capture("FLAGS_use_mkldnn") == "PaddlePaddle runtime flags (FLAGS_*)"
    assert reason_to_capture("PADDLE_TRAINER_ID") == "PaddlePaddle's distributed and runtime settings"


def test_expected_parameters_count_paddles_second_lstm_bias():
    from tribench.harness.aggregate import workload_facts

    rnn = workloads.get("rnn")
    assert workload_facts(case("rnn"))["expected_params"] == rnn.expected_params("tiny", lstm_second_bias=True)
    assert workload_facts(CaseSpec("jax", "rnn", "tiny", "train", 8))["expected_params"] == rnn.expected_params("tiny")


# ---------------------------------------------------------------- profiler table


OP = "operator"


def _node(name: str, start: int, end: int, kind: str = OP, children=(), gpu: float = 0.0):
    return SimpleNamespace(name=name, type=kind, start_ns=start, end_ns=end, cpu_time=end - start, gpu_time=gpu,
                           children_node=list(children))


def test_operator_rows_keep_an_ops_own_phases_and_take_out_the_operators_inside_it():
    launch = _node("matmul kernel launch", 10, 90, kind="phase")
    matmul = _node("matmul dygraph", 0, 100, children=[launch])
    inner_add = _node("add dygraph", 210, 250)
    composite = _node("composite dygraph", 200, 300, children=[_node("wrapper", 205, 260, "phase", [inner_add])])
    program = _node("Global_Dy2StGradNode", 400, 1000, children=[_node("interpreter_core_run", 400, 1000, "phase")])
    executor = [_node("pd_op.conv2d_grad", 450, 750), _node("pd_op.add_grad", 760, 900),
                _node("pd_op.outside", 990, 1100)]                        # not entirely inside: not subtracted
    threads = {"main": [matmul, launch, composite, composite.children_node[0], inner_add, program,
                        program.children_node[0]], "executor": executor}
    rows = {row.operator: row for row in profiling.operator_rows(threads, OP, window_ns=2000, device_time=False)}
    matmul_row = rows["matmul dygraph"]
    assert matmul_row.calls == 1 and matmul_row.total_s == matmul_row.self_s == pytest.approx(100e-9)  # phases: its own
    assert rows["composite dygraph"].self_s == pytest.approx(60e-9)      # less the add run inside it
    assert rows["add dygraph"].self_s == pytest.approx(40e-9)
    assert rows["Global_Dy2StGradNode"].self_s == pytest.approx((600 - 300 - 140) * 1e-9)  # less the program's ops
    assert rows["pd_op.conv2d_grad"].self_s == pytest.approx(300e-9)
    assert rows["matmul dygraph"].share == pytest.approx(0.05)
    assert "matmul kernel launch" not in rows and "interpreter_core_run" not in rows
    gpu = profiling.operator_rows({"main": [_node("conv2d dygraph", 0, 5, gpu=2e6)]}, OP, window_ns=4e6,
                                  device_time=True)
    assert (gpu[0].total_s, gpu[0].share) == (pytest.approx(2e-3), 0.5)   # device time on a GPU


# ---------------------------------------------------------------- GPU and other devices, through fakes


def test_availability_lists_xpus_and_custom_devices_it_cannot_run(monkeypatch):
    monkeypatch.setattr(paddle, "is_compiled_with_xpu", lambda: True)
    monkeypatch.setattr(paddle.device.xpu, "device_count", lambda: 2)
    monkeypatch.setattr(paddle.device, "get_all_custom_device_type", lambda: ["npu"])
    monkeypatch.setattr(paddle.device, "get_available_custom_device", lambda: ["npu:0", "npu:1", "npu:2"])
    assert adapter.other_accelerators() == {"xpu": 2, "npu": 3}
    found = adapter.availability()
    assert found.devices == ("cpu",)                                  # tribench runs no case on them
    assert found.device_names["xpu"] == "2 x xpu" and found.device_names["npu"] == "3 x npu"
    assert ("3 npu device(s) found: tribench's device axis (cpu, gpu, tpu, mps) has no kind for npu, so no case "
            "runs there") in found.notes


def test_availability_on_this_cpu():
    found = adapter.availability()
    assert (found.name, found.installed, found.version, found.devices) == ("paddle", True, paddle.__version__,
                                                                          ("cpu",))
    assert found.details["cinn"] is paddle.is_compiled_with_cinn()
    assert "bf16 on cpu is skipped: bf16 on a CPU is not mixed precision in Paddle 3.3" in " ".join(found.notes)


def test_a_gpu_session_reads_paddles_allocator_and_syncs(monkeypatch):
    calls = []
    cuda = paddle.device.cuda
    monkeypatch.setattr(cuda, "synchronize", lambda *a: calls.append("sync"))
    monkeypatch.setattr(cuda, "reset_max_memory_allocated", lambda *a: calls.append("reset allocated"))
    monkeypatch.setattr(cuda, "reset_max_memory_reserved", lambda *a: calls.append("reset reserved"))
    monkeypatch.setattr(cuda, "memory_allocated", lambda *a: 1000)
    monkeypatch.setattr(cuda, "max_memory_allocated", lambda *a: 5000)
    monkeypatch.setattr(cuda, "max_memory_reserved", lambda *a: 8192)
    session = adapter.PaddleSession(paddle.nn.Linear(2, 2), lambda x: x, adapter.Batch(None, None), case("cnn"),
                                    "gpu")
    before = {reading.name: reading for reading in session.memory()}
    assert before["peak_allocated_growth"].value is None and before["peak_allocated"].value == 5000
    session.mark_window()
    session.sync(None)
    readings = {reading.name: reading for reading in session.memory()}
    assert calls == ["sync", "reset allocated", "reset reserved", "sync"]
    assert (readings["peak_allocated"].value, readings["peak_reserved"].value,
            readings["peak_allocated_growth"].value) == (5000.0, 8192.0, 4000.0)
    assert readings["peak_allocated"].source == "paddle.device.cuda.max_memory_allocated"


def test_gpu_numerics_set_paddles_tf32_flags(monkeypatch):
    flags = []
    monkeypatch.setattr(paddle, "set_flags", flags.append)
    assert adapter.apply_numerics("tf32", "gpu")["fp32_math"] == "tf32"
    assert adapter.apply_numerics("fp32", "gpu")["fp32_math"] == "ieee-fp32"
    assert flags == [{"FLAGS_allow_tf32_cublas": True, "FLAGS_allow_tf32_cudnn": True},
                     {"FLAGS_allow_tf32_cublas": False, "FLAGS_allow_tf32_cudnn": False}]
    assert adapter.apply_numerics("fp32", "cpu") == adapter.numerics.host_numerics("cpu")


def test_gpu_facts_come_from_paddles_device_api(monkeypatch):
    monkeypatch.setattr(paddle.device.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setattr(paddle.device.cuda, "get_device_name", lambda *a: "NVIDIA H200")
    facts = adapter.device_facts("gpu")
    assert (facts.name, facts.compute_capability, facts.rocm) == ("NVIDIA H200", (9, 0), False)
    assert devices.precision_skip_reason("bf16", facts) is None


def test_cpu_memory_is_unavailable_with_the_reason():
    session = adapter.backend().build(case("cnn", "infer"))
    (reading,) = session.memory()
    assert reading.value is None and reading.reason == adapter.CPU_MEMORY_REASON


def test_absent_gpu_and_low_precision_on_this_cpu_are_skipped_with_the_reason():
    with pytest.raises(CaseSkipped, match="no CUDA or ROCm GPU visible to paddle"):
        adapter.backend().build(case("cnn", device="gpu"))
    with pytest.raises(CaseSkipped, match="auto_cast switches itself off on a CPU place"):
        adapter.backend().build(case("cnn", precision="bf16"))


def test_the_cpu_skip_rests_on_paddles_autocast_doing_nothing_there():
    """Why CPU bf16/fp16 is skipped: under auto_cast a Linear layer on the CPU still computes in fp32. Should a
    Paddle release cast on the CPU, this fails and the rule can go."""
    layer = paddle.nn.Linear(4, 4)
    with adapter.autocast("bf16"):
        assert layer(paddle.randn([2, 4])).dtype == paddle.float32


# ---------------------------------------------------------------- real sessions on the CPU


@pytest.mark.parametrize("workload", ["cnn", "rnn", "transformer", "decoder"])
def test_training_loss_drops_and_parameters_match(workload):
    session = adapter.backend().build(case(workload))
    losses = [float(session.step()) for _ in range(12)]
    assert losses[-1] < losses[0]
    assert session.param_count() == workloads.get(workload).expected_params("tiny", lstm_second_bias=True)
    assert session.info["compile"] == "dygraph (eager)"


@pytest.mark.parametrize("workload, shape", [("cnn", [8, 10]), ("rnn", [8, 10]), ("transformer", [8, 32, 1000]),
                                             ("decoder", [8, 32, 1000])])
def test_inference_output_shape_and_values(workload, shape):
    session = adapter.backend().build(case(workload, "infer"))
    output = session.step()
    assert session.sync(output) is None
    assert list(output.shape) == shape and output.dtype == paddle.float32
    assert output.stop_gradient and bool(paddle.isfinite(output).all())
    assert not session.model.training


@pytest.mark.parametrize("workload", ["cnn", "transformer"])
def test_compiled_training_follows_native_dygraph(workload):
    native = adapter.backend().build(case(workload))
    compiled = adapter.backend().build(case(workload, compile="compiled"))
    assert compiled.info["compile"] in (adapter.WITH_CINN, adapter.NO_CINN)
    native_losses = [float(native.step()) for _ in range(3)]
    compiled_losses = [float(compiled.step()) for _ in range(3)]
    np.testing.assert_allclose(compiled_losses, native_losses, rtol=1e-4)
    converted = compiled._runner.forward                  # a converted program, traced once for the fixed shapes
    assert type(converted).__name__ == "ASTStaticFunction" and len(converted.program_cache) == 1


def test_threads_set_the_cpu_math_pool():
    record = adapter.backend().apply_threads(1, 1)
    assert record["intra_op"] == 1 and record["inter_op"] is None and "set_num_threads" in record["how"]


def test_peaks_measure_fp32_and_say_why_not_the_rest():
    from tribench.backends.paddle import peak
    from tribench.harness.peak_measure import PeakOptions

    record = peak.measure("cpu", PeakOptions(matmul_size=128, copy_bytes=2**20, repeats=2, warmup=1,
                                             min_repeat_s=0.01))
    assert record["backend"] == "paddle" and record["matmul"]["fp32"]["value"] > 0
    assert record["bandwidth"]["value"] > 0 and "paddle.assign" in record["bandwidth"]["source"]
    assert record["matmul"]["tf32"]["value"] is None and "NVIDIA tensor-core mode" in record["matmul"]["tf32"]["reason"]
    threads = len(os.sched_getaffinity(0))
    assert record["notes"] == [f"paddle's CPU math library pool: {threads} threads (paddle.base.core.set_num_threads, "
                               "the CPUs this process may use)"]


# ---------------------------------------------------------------- the whole tool


def test_the_worker_imports_paddle_and_no_other_framework(tmp_path):
    run = _run(tmp_path, "--backend", "paddle,torch", "--workload", "cnn", "--mode", "infer", "--processes", "1",
               *FAST)
    records = {case["spec"]["backend"]: case["repeats"][0]["imports"] for case in run["cases"]}
    assert records["paddle"]["frameworks"] == ["paddle"]
    assert {"torch", "tensorflow", "jax", "keras", "flax"} <= set(records["paddle"]["blocked"])
    assert "paddle" in records["torch"]["blocked"]                       # and a torch worker never loads Paddle
    code = ("import sys; import tribench.backends.paddle.adapter, tribench.backends.paddle.generate, "
            "tribench.backends.paddle.peak; print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))")
    done = subprocess.run([sys.executable, "-c", code, *OTHERS], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_smoke_cases_run_ok_and_the_reports_and_compare_show_paddle(tmp_path):
    base = _run(tmp_path, "--suite", "smoke", "--backend", "paddle", "--processes", "2", *FAST)
    assert {case["id"]: case["status"] for case in base["cases"]} == {
        f"paddle/{w}-tiny/{m}/bs32/fp32/native/cpu": "ok" for w in ("cnn", "rnn", "transformer")
        for m in ("train", "infer")}
    path = tmp_path / "run.json"
    markdown = tribench("report", str(path), "--format", "markdown")
    assert markdown.returncode == 0 and "paddle/cnn\\-tiny/train/bs32/fp32/native/cpu" in markdown.stdout
    html = tribench("report", str(path), "-o", str(tmp_path / "report.html"))
    assert html.returncode == 0 and "paddle/rnn-tiny/infer" in (tmp_path / "report.html").read_text()
    head = tmp_path / "head.json"   # the same measurements under another run id: an A/A comparison
    head.write_text(path.read_text().replace(base["run_id"], base["run_id"] + "-again"))
    compared = tribench("compare", str(path), str(head), "--format", "markdown")
    assert compared.returncode in (0, 3), compared.stderr   # identical: unchanged, or inconclusive at 2 processes
    assert compared.stdout.count("paddle/") >= 6 and "+0.0%" in compared.stdout


def test_two_ranks_over_gloo_aggregate_into_one_case(tmp_path):
    run = _run(tmp_path, "--backend", "paddle", "--workload", "cnn", "--mode", "train,infer", "--batch", "4",
               "--devices", "2", "--scaling", "--processes", "1", *FAST)
    compiled = _run(tmp_path, "--backend", "paddle", "--workload", "cnn", "--mode", "train", "--batch", "4",
                    "--devices", "2", "--compile", "compiled", "--processes", "1", *FAST)
    assert compiled["cases"][0]["status"] == "ok", compiled["cases"][0]["error"]   # DataParallel(to_static(model))
    assert [case["id"] for case in run["cases"]] == ["paddle/cnn-tiny/train/bs4/fp32/native/cpu",
                                                     "paddle/cnn-tiny/train/bs4/fp32/native/cpu/x2",
                                                     "paddle/cnn-tiny/infer/bs4/fp32/native/cpu",
                                                     "paddle/cnn-tiny/infer/bs4/fp32/native/cpu/x2"]
    single, dp = run["cases"][:2]
    assert dp["status"] == "ok", dp["error"]
    ranks = dp["repeats"][0]["ranks"]
    assert len(ranks) == 2 and ranks[0]["pid"] != ranks[1]["pid"]
    assert [(r["timing"]["stop_reason"], len(r["timing"]["samples_s"])) for r in ranks] == [("fixed_steps", 100)] * 2
    medians = [statistics.median(rank["timing"]["samples_s"]) for rank in ranks]
    assert dp["metrics"]["throughput"]["value"] == sum(4 / median for median in medians)
    assert dp["metrics"]["scaling_efficiency"]["value"] == dp["metrics"]["throughput"]["value"] / (
        2 * single["metrics"]["throughput"]["value"])
    assert run["cases"][3]["status"] == "ok"


def test_ranks_hold_the_same_weights_after_data_parallel_steps(tmp_path):
    """The gradients are all-reduced: two ranks fed different batches end with identical weights."""
    script = f"""
import os, sys, numpy as np
sys.path.insert(0, {str(ROOT)!r})
from tribench.backends.paddle import distributed
distributed.init("cpu")
import paddle
paddle.seed(0)
model = paddle.nn.Linear(4, 2)
parallel = paddle.DataParallel(model)
optimizer = paddle.optimizer.Adam(parameters=model.parameters())
for _ in range(3):
    parallel(paddle.randn([8, 4]) * (int(os.environ["RANK"]) + 1)).mean().backward()
    optimizer.step(); optimizer.clear_grad()
np.save(sys.argv[1], model.weight.numpy())
"""
    from tribench.harness.distributed import free_port

    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"w{rank}.npy")],
                              env={**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                                   "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)},
                              stderr=subprocess.PIPE, text=True) for rank in range(2)]
    for proc in procs:
        assert proc.wait(timeout=180) == 0, proc.stderr.read()[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "w0.npy"), np.load(tmp_path / "w1.npy"))


def test_a_profile_gives_the_top_operators_and_a_trace(tmp_path):
    run = _run(tmp_path, "--backend", "paddle", "--workload", "cnn", "--mode", "train", "--compile",
               "native,compiled", "--profile", "--processes", "1", *FAST)
    profiles = {case["spec"]["compile"]: case["metrics"]["profile"] for case in run["cases"]}
    for compile_mode, first in (("native", "conv2d dygraph"), ("compiled", "pd_op.conv2d")):
        profile = profiles[compile_mode]
        assert profile["status"] == "captured" and profile["tool"].startswith("paddle.profiler")
        assert first in [row["operator"] for row in profile["operators"]]
        assert 0.5 < sum(row["share"] for row in profile["operators"]) <= 1.0 + 1e-9   # nothing counted twice
        assert (tmp_path / profile["trace_file"]).exists() or Path(profile["trace_file"]).exists()
    assert "Global_Conv2dGradNodeFinal" in [row["operator"] for row in profiles["native"]["operators"]]


def test_without_paddle_it_is_listed_missing_and_its_smoke_cases_skipped(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{HIDE_FOLDER}{os.pathsep}{ROOT}", "TRIBENCH_TEST_HIDE": "paddle",
           "COLUMNS": "250"}
    listed = tribench("list", "backends", env=env)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("│ paddle"))
    assert "not installed (missing: paddle); install with: pip install -e '.[paddle]'" in row
    run = _run(tmp_path, "--suite", "smoke", "--backend", "paddle,torch", "--workload", "cnn", "--mode", "infer",
               "--processes", "1", *FAST, env=env)
    status = {case["spec"]["backend"]: (case["status"], case["error"]) for case in run["cases"]}
    assert status == {"torch": ("ok", None), "paddle": (
        "skipped", "paddle not installed (missing: paddle); install with: pip install -e '.[paddle]'")}
