"""The TensorFlow backend: real Keras models on CPU, checked against the workload formulas.

Parameter counts and forward FLOPs must equal ``suites.workloads`` exactly; a few
training steps on the fixed batch must lower the loss; the pure device / precision /
compile decisions are checked branch by branch with their exact reasons (GPU and TPU
branches included, on a machine that has neither).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework import ops as tf_ops  # noqa: E402

from tribench.backends.base import CaseSkipped  # noqa: E402
from tribench.backends.tensorflow import adapter, devices, fast_paths, models  # noqa: E402
from tribench.backends.tensorflow import backend as entry  # noqa: E402
from tribench.core.spec import CaseSpec  # noqa: E402
from tribench.suites import workloads  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = ("cnn", "rnn", "transformer", "decoder")
TINY_PARAMS = {"cnn": 93_322, "rnn": 91_530, "transformer": 229_096, "decoder": 162_624}
BATCH = 16


def case(workload: str, mode: str = "train", precision: str = "fp32", compile: str = "native",
         device: str = "cpu", size: str = "tiny", batch_size: int = BATCH) -> CaseSpec:
    return CaseSpec("tensorflow", workload, size, mode, batch_size, precision, compile, device)


def spec_of(workload: str, size: str):
    return workloads.get(workload).architecture(size)


def trainable(model: keras.Model) -> int:
    return sum(math.prod(variable.shape) for variable in model.trainable_variables)


def losses(session, steps: int) -> list[float]:
    values = []
    for _ in range(steps):
        handle = session.step()
        session.sync(handle)
        values.append(float(handle.numpy()))
    return values


@pytest.fixture(scope="module")
def backend():
    return entry.backend()


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize("workload", WORKLOADS)
def test_tiny_session_has_the_exact_parameter_count(backend, workload):
    session = backend.build(case(workload, mode="infer"))
    assert session.param_count() == TINY_PARAMS[workload]
    assert session.param_count() == workloads.get(workload).expected_params("tiny")


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("size", ["small", "standard"])
def test_larger_models_match_the_analytic_parameter_count(workload, size):
    # standard = ResNet-50 v1.5, 2x1024 LSTM LM, BERT-base shape: each builds in a few seconds. The 1.2B
    # decoder is built with one of its 16 layers: every width as in the real model, the count linear in depth.
    spec = spec_of(workload, size)
    if workload == "decoder" and size == "standard":
        spec = dataclasses.replace(spec, layers=1)
    assert trainable(models.build_model(spec)) == workloads.param_count(spec)


def test_resnet_keeps_batchnorm_statistics_out_of_the_trainable_count():
    model = models.build_model(spec_of("cnn", "small"))
    bn = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bn) == 1 + 8 * 2 + 3       # stem, two per basic block, three projection shortcuts
    assert all(len(layer.non_trainable_weights) == 2 for layer in bn)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert not any(layer.use_bias for layer in convs)


def test_transformer_positions_are_a_constant_sinusoid():
    table = models.sinusoidal_table(4, 6)
    assert table.shape == (4, 6) and table.dtype == np.float32
    np.testing.assert_allclose(table[0], [0, 1, 0, 1, 0, 1])
    np.testing.assert_allclose(table[3, :2], [np.sin(3.0), np.cos(3.0)], rtol=1e-6)
    np.testing.assert_allclose(table[2, 2:4], [np.sin(2 / 10_000 ** (2 / 6)), np.cos(2 / 10_000 ** (2 / 6))],
                               rtol=1e-6)
    layer = models.SinusoidalPositions(4, 6)
    shifted = layer(tf.zeros((2, 4, 6)))
    np.testing.assert_allclose(shifted.numpy()[1], table)
    assert layer.weights == []


# ---------------------------------------------------------------- training and inference


@pytest.mark.parametrize("workload", WORKLOADS)
def test_loss_drops_on_the_fixed_batch(backend, workload):
    values = losses(backend.build(case(workload)), 8)
    assert all(np.isfinite(values))
    assert values[-1] < 0.97 * values[0], values


@pytest.mark.parametrize("workload, shape", [
    ("cnn", (BATCH, 10)), ("rnn", (BATCH, 10)), ("transformer", (BATCH, 32, 1_000)), ("decoder", (BATCH, 32, 1_000)),
])
def test_inference_returns_finite_float32_logits(backend, workload, shape):
    session = backend.build(case(workload, mode="infer"))
    outputs = session.step()
    session.sync(outputs)
    assert tuple(outputs.shape) == shape and outputs.dtype == tf.float32
    assert np.isfinite(outputs.numpy()).all()


def test_language_model_trains_on_next_tokens(backend):
    spec = spec_of("rnn", "small")
    inputs, targets = adapter.synthetic_batch(spec, 4)
    assert inputs.shape == (4, spec.timesteps) and targets.shape == (4, spec.timesteps)
    np.testing.assert_array_equal(inputs.numpy()[:, 1:], targets.numpy()[:, :-1])
    assert 0 <= inputs.numpy().min() and inputs.numpy().max() < spec.vocab


def test_synthetic_batch_is_the_same_every_build():
    spec = spec_of("cnn", "tiny")
    first, second = adapter.synthetic_batch(spec, 4), adapter.synthetic_batch(spec, 4)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert first[0].shape == (4, 28, 28, 1) and first[1].dtype == tf.int32


@pytest.mark.parametrize("workload, precision, compute", [
    ("cnn", "bf16", "bfloat16"), ("rnn", "fp16", "float16"),
])
def test_mixed_precision_trains_with_float32_variables_and_logits(backend, workload, precision, compute,
                                                                 monkeypatch):
    # run the precision on this CPU whatever its instructions: the numerics are what is tested here
    monkeypatch.setattr(adapter.cpuinfo, "read_cpuinfo", lambda: "flags\t: avx512_bf16 avx512_fp16\n")
    session = backend.build(case(workload, precision=precision))
    values = losses(session, 6)
    assert values[-1] < 0.97 * values[0], values
    model = session.model
    assert {layer.compute_dtype for layer in model.layers[1:-1]} == {compute}
    assert {variable.dtype for variable in model.trainable_variables} == {"float32"}
    assert model.output.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"     # the global policy is restored


def test_fp16_uses_a_loss_scale_optimizer():
    variables = [keras.Variable(np.zeros(3, np.float32))]
    assert isinstance(adapter.make_optimizer("fp16", variables), keras.optimizers.LossScaleOptimizer)
    plain = adapter.make_optimizer("bf16", variables)
    assert isinstance(plain, keras.optimizers.Adam) and float(plain.learning_rate) == pytest.approx(1e-3)


def test_compiled_mode_runs_the_same_step_under_xla(backend):
    native = backend.build(case("cnn"))
    compiled = backend.build(case("cnn", compile="compiled"))
    assert compiled.info["jit_compile"] is True and native.info["jit_compile"] is False
    native_losses, compiled_losses = losses(native, 5), losses(compiled, 5)
    np.testing.assert_allclose(compiled_losses, native_losses, rtol=1e-3)
    assert compiled_losses[-1] < 0.9 * compiled_losses[0]


def test_op_by_op_runs_the_same_step_in_eager_tensorflow(backend):
    native = backend.build(case("cnn"))
    op_by_op = backend.build(case("cnn", compile="op-by-op"))
    assert (native.info["tf_function"], op_by_op.info["tf_function"]) == (True, False)
    assert isinstance(native._step, tf.types.experimental.PolymorphicFunction)
    assert not isinstance(op_by_op._step, tf.types.experimental.PolymorphicFunction)
    np.testing.assert_allclose(losses(op_by_op, 5), losses(native, 5), rtol=1e-3)


def test_every_computing_op_of_the_step_is_pinned_to_the_case_device(backend):
    session = backend.build(case("cnn"))
    graph = session._step.get_concrete_function().graph
    # variable reads follow their variable (created under the same device scope); the rest is pinned
    unpinned = {op.type for op in graph.get_operations() if not op.device}
    assert unpinned <= {"Placeholder", "ReadVariableOp", "Identity", "NoOp"}
    assert {op.device for op in graph.get_operations() if op.device} == {"/device:CPU:0"}
    assert all(variable.value.device.endswith("CPU:0") for variable in session.model.variables)


def test_memory_reports_the_cpu_allocator_peak(backend):
    session = backend.build(case("cnn"))
    session.sync(session.step())
    session.mark_window()  # the worker's reset point, after the compile step
    session.sync(session.step())
    reading, growth = session.memory()
    assert reading.source == "tf.config.experimental.get_memory_info('CPU:0')['peak']"
    assert reading.span == growth.span == "from the end of the compile step: warm-up and measurement"
    assert reading.scope == "process" and reading.unit == "bytes"
    if adapter.onednn_enabled():  # weights + two Adam slots are resident, so the peak holds at least that
        assert reading.value >= 3 * 4 * TINY_PARAMS["cnn"]
        assert 0 <= growth.value <= reading.value
    else:  # e.g. an AVX2-only CPU, where TensorFlow leaves oneDNN off and its allocator keeps no statistics
        assert not reading.available and "Allocator stats not available" in reading.reason
        assert "keeps statistics only with oneDNN on" in reading.reason
        assert growth.value is None and "Allocator stats not available" in growth.reason


# ---------------------------------------------------------------- FLOPs


def _live_ops(graph, outputs) -> list:
    """Ops the outputs depend on: Keras traces one LSTM step outside its loop only for shapes."""
    seen, stack = set(), [tensor.op for tensor in outputs]
    while stack:
        op = stack.pop()
        if op.name not in seen:
            seen.add(op.name)
            stack.extend(tensor.op for tensor in op.inputs)
            stack.extend(op.control_inputs)
    return [op for op in graph.get_operations() if op.name in seen]


def _einsum_flops(op) -> int:
    """2 x the product of every index size (TensorFlow registers no FLOP statistics for Einsum)."""
    terms = op.get_attr("equation").decode().split("->")[0].split(",")
    sizes = {}
    for term, tensor in zip(terms, op.inputs, strict=True):
        sizes.update(zip(term, tensor.shape.as_list(), strict=True))
    return 2 * math.prod(sizes.values())


def _graph_flops(graph, ops, timesteps: int) -> int:
    """Conv/matmul FLOPs by TensorFlow's registered statistics; a while body counts once per timestep."""
    total = 0
    for op in ops:
        if op.type in ("Conv2D", "MatMul", "BatchMatMulV2"):
            total += tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
        elif op.type == "Einsum":
            total += _einsum_flops(op)
        elif op.type == "While":
            body = graph._functions[op.get_attr("body").name].graph
            total += timesteps * _graph_flops(body, body.get_operations(), timesteps)
    return total


def forward_flops(model: keras.Model, spec) -> int:
    shape, dtype = models.input_signature(spec)
    function = tf.function(lambda x: model(x, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec((1,) + shape, dtype))
    return _graph_flops(concrete.graph, _live_ops(concrete.graph, concrete.outputs),
                        getattr(spec, "timesteps", 0))


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("size", ["tiny", "small"])
def test_forward_flops_equal_the_analytic_count(workload, size):
    spec = spec_of(workload, size)
    assert forward_flops(models.build_model(spec), spec) == workloads.forward_flops_per_sample(spec)


def test_resnet50_flops_place_the_stride_on_the_3x3_conv():
    spec = spec_of("cnn", "standard")
    assert forward_flops(models.build_model(spec), spec) == workloads.forward_flops_per_sample(spec)


# ---------------------------------------------------------------- device decisions


def test_availability_on_this_machine(backend):
    found = backend.availability()
    assert found.installed and found.version == tf.__version__
    assert "cpu" in found.devices and found.name == "tensorflow"
    assert found.details["keras_backend"] == "tensorflow"
    assert found.details["keras_version"] == keras.__version__
    assert "is_cuda_build" in found.details["build_info"]
    assert found.details["gpu_memory_growth"]["gpus"] == len(tf.config.list_physical_devices("GPU"))
    json.dumps(found.to_dict())


@pytest.mark.parametrize("kind, facts, reason", [
    ("cpu", {}, None),
    ("gpu", {"gpu_count": 1, "gpu_build": True}, None),
    ("gpu", {"gpu_count": 2, "gpu_build": False},
     "this TensorFlow build has no GPU support (built without CUDA or ROCm)"),
    ("gpu", {"gpu_count": 0, "gpu_build": True},
     "TensorFlow sees no GPU (check the driver and CUDA_VISIBLE_DEVICES)"),
    ("tpu", {}, None),
    ("tpu", {"tpu_error": "TPUs not found"}, "no TPU attached: TPUs not found"),
    ("mps", {}, "TensorFlow has no 'mps' device; with the tensorflow-metal plugin an Apple GPU is listed as 'gpu'"),
])
def test_device_problem(kind, facts, reason):
    facts = {"gpu_count": 0, "gpu_build": False, "tpu_error": None, **facts}
    assert devices.device_problem(kind, **facts) == reason


CPU_FP16_REASON = ("this CPU has no fp16 instructions (none of amx_fp16, asimdhp, avx512_fp16, fphp); "
                   "TensorFlow would convert every fp16 op to fp32 and back")


def test_cpu_precision_follows_the_shared_instruction_rule():
    bf16_only = frozenset({"avx2", "avx512_bf16"})
    assert devices.precision_problem("cpu", "bf16", None, bf16_only) is None
    assert devices.precision_problem("cpu", "fp16", None, bf16_only) == CPU_FP16_REASON
    assert devices.precision_problem("cpu", "fp16", None, frozenset({"avx512_fp16"})) is None
    assert devices.precision_problem("cpu", "fp32", None, frozenset()) is None


@pytest.mark.parametrize("kind, precision, capability, reason", [
    ("gpu", "fp32", (6, 0), None),
    ("gpu", "bf16", (8, 0), None),
    ("gpu", "bf16", (9, 0), None),
    ("gpu", "bf16", (7, 5), "bf16 needs bfloat16 (compute capability >= 8.0); this GPU has 7.5"),
    ("gpu", "fp16", (7, 0), None),
    ("gpu", "fp16", (6, 1), "fp16 needs float16 tensor cores (compute capability >= 7.0); this GPU has 6.1"),
    ("gpu", "bf16", None, None),                      # ROCm: no CUDA compute capability
    ("tpu", "bf16", None, None),
    ("tpu", "fp16", None, "TPUs have no float16 support; use bf16"),
    ("cpu", "int8", None, "unknown precision 'int8'"),
])
def test_precision_problem(kind, precision, capability, reason):
    assert devices.precision_problem(kind, precision, capability) == reason


def test_compile_problem():
    assert devices.compile_problem("cpu", "compiled") is None
    assert devices.compile_problem("gpu", "native") is None
    assert devices.compile_problem("cpu", "op-by-op") is None
    assert devices.compile_problem("tpu", "compiled") is None
    assert devices.compile_problem("tpu", "native") is None
    assert devices.compile_problem("tpu", "op-by-op") == (
        "a TPU compiles every tf.function with XLA; there is no op-by-op mode: use native or compiled"
    )
    assert devices.compile_problem("cpu", "eager") == "unknown compile mode 'eager'"


def test_tpu_batch_split_and_discovery():
    assert devices.per_replica_batch(32, 8) == 4
    assert devices.per_replica_batch(5, 1) == 5
    with pytest.raises(CaseSkipped, match="^batch size 30 does not split evenly over 8 TPU cores$"):
        devices.per_replica_batch(30, 8)
    assert devices.tpu_resolver_target({}) == "local"
    assert devices.tpu_resolver_target({"TPU_NAME": "my-tpu"}) is None
    assert devices.tpu_resolver_target({"COLAB_TPU_ADDR": "10.0.0.2:8470"}) is None
    assert not devices.tpu_worth_probing({}, libtpu_installed=False)
    assert devices.tpu_worth_probing({}, libtpu_installed=True)
    assert devices.tpu_worth_probing({"TPU_NAME": "x"}, libtpu_installed=False)


def test_memory_readings_are_never_zero():
    gpu = devices.peak_memory_reading("gpu", 123)
    assert (gpu.value, gpu.scope, gpu.source) == (
        123.0, "device", "tf.config.experimental.get_memory_info('GPU:0')['peak']")
    empty = devices.peak_memory_reading("gpu", 0)
    assert not empty.available and "peak of 0 bytes" in empty.reason
    cpu = devices.peak_memory_reading("cpu", None, "Allocator stats not available for device 'CPU:0'")
    assert cpu.value is None and cpu.reason == (
        "Allocator stats not available for device 'CPU:0' (TensorFlow's CPU allocator keeps statistics only "
        "with oneDNN on: by default only on CPUs with AVX512_VNNI, AVX512_BF16 or AMX, else with "
        "TF_ENABLE_ONEDNN_OPTS=1)"
    )
    assert devices.memory_device("tpu") == "TPU:0"


def test_sync_reads_the_loss_only_in_train_mode():
    assert devices.sync_by_loss("train") and not devices.sync_by_loss("infer")


@pytest.mark.parametrize("spec, reason", [
    (case("cnn", device="gpu"), "^this TensorFlow build has no GPU support "),
    (case("cnn", device="mps"), "TensorFlow has no 'mps' device"),
    (case("cnn", device="tpu", compile="op-by-op"), "a TPU compiles every tf.function with XLA; there is no op-by-op"),
    (case("cnn", device="tpu"), "^no TPU attached: "),  # native on a TPU is its XLA program: allowed, no TPU here
    (case("cnn", device="tpu", compile="compiled", precision="fp16"), "TPUs have no float16 support"),
    (case("cnn", device="tpu", compile="compiled"), "^no TPU attached: "),
])
def test_build_refuses_what_this_machine_cannot_run(backend, spec, reason):
    if spec.device == "gpu" and tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    if spec.id.endswith("compiled/tpu") and tf.config.list_logical_devices("TPU"):
        pytest.skip("this machine has a TPU")
    with pytest.raises(CaseSkipped, match=reason):
        backend.build(spec)


def test_keras_backend_variable_is_set_or_refused():
    environ: dict[str, str] = {}
    devices.require_keras_on_tensorflow(environ)
    assert environ == {"KERAS_BACKEND": "tensorflow"}
    with pytest.raises(CaseSkipped, match="^KERAS_BACKEND='jax' is set in the environment, but the tensorflow"):
        devices.require_keras_on_tensorflow({"KERAS_BACKEND": "jax"})


def test_importing_with_another_keras_backend_refuses_before_tensorflow_loads():
    code = (
        "import sys\n"
        "import tribench.backends.tensorflow\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "try:\n"
        "    import tribench.backends.tensorflow.adapter\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "CaseSkipped False False"


@pytest.mark.parametrize("kind, mode, device_syncs", [("cpu", "train", 0), ("gpu", "train", 1), ("tpu", "train", 1),
                                                       ("cpu", "infer", 1), ("gpu", "infer", 1)])
def test_a_training_sync_on_an_accelerator_waits_for_the_variable_updates(kind, mode, device_syncs, monkeypatch):
    calls = []
    monkeypatch.setattr(tf.test.experimental, "sync_devices", lambda: calls.append(1))
    session = adapter.TensorFlowSession(lambda: tf.constant(1.5), None, kind, mode, {})
    session.sync(session.step())
    assert len(calls) == device_syncs


# ---------------------------------------------------------------- fast paths


def test_every_model_records_what_runs_it(backend):
    transformer = backend.build(case("transformer"))
    assert transformer.info["fast_paths"] == {
        "attention": {"implementation": "keras.ops.dot_product_attention (tf.function graph)",
                      "rule": fast_paths.ATTENTION_RULE},
        "optimizer": {"implementation": "keras.optimizers.Adam (tf.function graph)", "rule": fast_paths.OPTIMIZER_RULE}}
    cnn = backend.build(case("cnn", mode="infer", compile="compiled"))
    assert cnn.info["fast_paths"] == {
        "memory_format": {"implementation": "channels_last (NHWC)", "rule": fast_paths.MEMORY_FORMAT_RULE}}
    rnn = backend.build(case("rnn", compile="op-by-op"))
    assert rnn.info["fast_paths"]["recurrent"] == {"implementation": "Keras generic LSTM loop (eager)",
                                                   "rule": fast_paths.RECURRENT_RULE}


def test_keras_on_tensorflow_has_no_flash_attention_to_choose():
    query = tf.zeros((1, 4, 2, 8))
    with pytest.raises(ValueError, match="Flash attention is not supported in tensorflow backend"):
        keras.ops.dot_product_attention(query, query, query, flash_attention=True)


@pytest.mark.parametrize("device,xla,expected", [
    ("gpu", False, "cuDNN LSTM"),
    ("gpu", True, "Keras generic LSTM loop (XLA-compiled)"),
    ("cpu", False, "Keras generic LSTM loop (tf.function graph)"),
])
def test_the_lstm_record_says_when_cudnn_runs_it(device, xla, expected):
    paths = fast_paths.record(cnn=False, transformer=False, recurrent=True, train=False, device=device, graph=True,
                              xla=xla)
    assert paths == {"recurrent": {"implementation": expected, "rule": fast_paths.RECURRENT_RULE}}
