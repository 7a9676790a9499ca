"""The JAX backend: pure device/precision rules, the real Flax models (parameters, XLA FLOPs)
and real sessions on the CPU (loss drops, op-by-op == jitted, inference output, memory, availability)."""

from __future__ import annotations

import json
import math
import os

import pytest

from tribench.backends.base import CaseSkipped
from tribench.backends.jax.devices import DeviceFacts, device_skip_reason, precision_skip_reason
from tribench.core.spec import CaseSpec
from tribench.suites import workloads
from tribench.suites.workloads import LSTMClassifierSpec, LSTMLanguageModelSpec, ResNetSpec

jax = pytest.importorskip("jax")

import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from tribench.backends.jax import adapter, fast_paths, models  # noqa: E402
from tribench.backends.jax import backend as entry  # noqa: E402

TINY = ("cnn", "rnn", "transformer", "decoder")
TINY_PARAMS = {"cnn": 93_322, "rnn": 91_530, "transformer": 229_096, "decoder": 162_624}
BATCH = 8
STEPS = 6
CPU = jax.devices("cpu")[0]
CPU_FACTS = DeviceFacts(platform="cpu")
# Small ResNets that exercise both block types, both stems, projections and BatchNorm in seconds.
RESNET_BASIC = ResNetSpec(8, 8, 3, 5, "basic", (1, 1), (8, 16), "cifar", stem_width=8)
RESNET_BOTTLENECK = ResNetSpec(16, 16, 3, 5, "bottleneck", (1, 2), (4, 8), "imagenet", stem_width=8)


def case(workload: str, mode: str = "train", **fields) -> CaseSpec:
    return CaseSpec(**{"backend": "jax", "workload": workload, "size": "tiny", "mode": mode,
                       "batch_size": BATCH, "compile": "compiled", **fields})


def run_steps(session: adapter.JaxSession, steps: int = STEPS) -> list[float]:
    losses = []
    for _ in range(steps):
        handle = session.step()
        session.sync(handle)
        losses.append(float(handle))
    return losses


def example_input(spec, batch: int = 2) -> jax.ShapeDtypeStruct:
    dtype = jnp.int32 if models.takes_tokens(spec) else jnp.float32
    return jax.ShapeDtypeStruct(models.input_shape(spec, batch), dtype)


def model_params(spec) -> int:
    """Trainable parameters of the real Flax model, from its initialised shapes (no compute)."""
    model = models.build_model(spec)
    variables = jax.eval_shape(model.init, jax.random.key(0), example_input(spec))
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(variables["params"]))


def xla_forward_flops(spec, batch: int) -> float:
    """XLA's own count (compiled cost analysis) for one forward pass of ``batch`` samples."""
    model = models.build_model(spec)
    inputs = example_input(spec, batch)
    variables = jax.eval_shape(model.init, jax.random.key(0), inputs)
    compiled = jax.jit(lambda v, x: model.apply(v, x)).lower(variables, inputs).compile()
    return compiled.cost_analysis()["flops"]


@pytest.fixture(scope="module")
def trained() -> dict[str, tuple[adapter.JaxSession, list[float]]]:
    """One compiled train session per tiny workload and the losses of its first steps."""
    sessions = {}
    for workload in TINY:
        session = entry.backend().build(case(workload))
        sessions[workload] = session, run_steps(session)
    return sessions


# ---------------------------------------------------------------- pure rules


def test_device_rules_name_the_reason():
    assert device_skip_reason("cpu", ["cpu"]) is None
    assert device_skip_reason("gpu", ["cpu", "gpu"]) is None
    assert device_skip_reason("gpu", ["cpu"]) == (
        "no gpu device visible to JAX (jax.devices('gpu') found none; present: cpu)")
    assert device_skip_reason("tpu", []) == (
        "no tpu device visible to JAX (jax.devices('tpu') found none; present: none)")
    assert device_skip_reason("mps", ["cpu"]) == (
        "JAX has no MPS backend (Apple GPUs need the experimental jax-metal plugin, not supported)")
    assert device_skip_reason("npu", ["cpu"]) == "unknown device 'npu' for JAX; it knows cpu, gpu, tpu"


def test_precision_rules_for_tpu():
    tpu = DeviceFacts("tpu", "TPU v4")
    assert precision_skip_reason("fp32", tpu) is None
    assert precision_skip_reason("bf16", tpu) is None
    assert precision_skip_reason("fp16", tpu) == (
        "TPUs have no fp16 arithmetic (XLA widens it to fp32); use bf16, the TPU's native low precision")


def test_precision_rules_for_cuda_follow_compute_capability():
    hopper = DeviceFacts("gpu", "NVIDIA H100", "cuda", "9.0")
    turing = DeviceFacts("gpu", "Tesla T4", "cuda", "7.5")
    pascal = DeviceFacts("gpu", "GeForce GTX 1080", "cuda", "6.1")
    assert [precision_skip_reason(p, hopper) for p in ("fp32", "bf16", "fp16")] == [None, None, None]
    assert precision_skip_reason("fp16", DeviceFacts("gpu", "B200", "cuda", "10.0")) is None
    assert precision_skip_reason("fp16", turing) is None
    assert precision_skip_reason("bf16", turing) == (
        "bf16 needs CUDA compute capability >= 8.0 for native bf16 math (Ampere); Tesla T4 has 7.5")
    assert precision_skip_reason("fp16", pascal) == (
        "fp16 needs CUDA compute capability >= 7.0 for tensor cores; GeForce GTX 1080 has 6.1")
    assert precision_skip_reason("fp32", pascal) is None
    assert precision_skip_reason("bf16", DeviceFacts("gpu", "", "cuda", None)) == (
        "bf16 on CUDA needs a known compute capability; this GPU reports none")


def test_precision_rules_for_rocm_allow_both_half_formats():
    mi250 = DeviceFacts("gpu", "AMD Instinct MI250X", "rocm")
    assert precision_skip_reason("bf16", mi250) is None
    assert precision_skip_reason("fp16", mi250) is None


def test_precision_rules_for_cpu_follow_instruction_set():
    sapphire = DeviceFacts("cpu", "cpu", cpu_flags=frozenset({"avx2", "avx512_bf16", "avx512_fp16"}))
    cascade = DeviceFacts("cpu", "cpu", cpu_flags=frozenset({"avx2", "avx512f", "avx512_bf16"}))
    graviton = DeviceFacts("cpu", "cpu", cpu_flags=frozenset({"fp", "asimd", "asimdhp", "bf16"}))
    plain = DeviceFacts("cpu", "cpu", cpu_flags=frozenset({"avx2"}))
    assert precision_skip_reason("bf16", sapphire) is None and precision_skip_reason("fp16", sapphire) is None
    assert precision_skip_reason("bf16", graviton) is None and precision_skip_reason("fp16", graviton) is None
    assert precision_skip_reason("bf16", cascade) is None
    assert precision_skip_reason("fp16", cascade) == (
        "this CPU has no fp16 instructions (none of amx_fp16, asimdhp, avx512_fp16, fphp); "
        "XLA:CPU would convert every fp16 op to fp32 and back")
    assert precision_skip_reason("bf16", plain) == (
        "this CPU has no bf16 instructions (none of amx_bf16, avx512_bf16, bf16); "
        "XLA:CPU would convert every bf16 op to fp32 and back")
    assert precision_skip_reason("fp32", plain) is None
    assert precision_skip_reason("fp8", plain) == "unknown precision 'fp8'; JAX runs fp32, tf32, bf16, fp16"


def test_memory_reading_uses_the_allocator_peak_or_says_why_not():
    reading = adapter.peak_memory_reading({"bytes_in_use": 10, "peak_bytes_in_use": 4096}, "gpu")
    assert (reading.value, reading.unit, reading.scope) == (4096.0, "bytes", "process")
    assert reading.source == "jax.Device.memory_stats()['peak_bytes_in_use']"
    missing = adapter.peak_memory_reading(None, "cpu")
    assert missing.value is None and missing.reason == (
        "the cpu device's memory_stats() returned None: its XLA client keeps no allocator statistics")
    partial_stats = adapter.peak_memory_reading({"bytes_in_use": 10}, "tpu")
    assert partial_stats.value is None and "returned no 'peak_bytes_in_use'" in partial_stats.reason


def test_dynamic_loss_scale_halves_on_overflow_and_doubles_after_a_finite_run():
    scale = adapter.DynamicLossScale.create()
    assert float(scale.scale) == 2.0**16
    grown = scale._replace(good_steps=jnp.asarray(adapter.LOSS_SCALE_GROWTH_INTERVAL - 1))
    assert (float(grown.adjust(jnp.asarray(True)).scale), int(grown.adjust(jnp.asarray(True)).good_steps)) == (
        2.0**17, 0)
    after_finite = scale.adjust(jnp.asarray(True))
    assert (float(after_finite.scale), int(after_finite.good_steps)) == (2.0**16, 1)
    after_overflow = after_finite.adjust(jnp.asarray(False))
    assert (float(after_overflow.scale), int(after_overflow.good_steps)) == (2.0**15, 0)
    floor = adapter.DynamicLossScale(jnp.asarray(1.0), jnp.asarray(0))
    assert float(floor.adjust(jnp.asarray(False)).scale) == 1.0
    assert float(scale.unscale({"w": jnp.asarray(2.0**17)})["w"]) == 2.0
    assert bool(adapter.all_finite({"a": jnp.ones(3), "b": jnp.asarray([1.0, jnp.inf])})) is False


# ---------------------------------------------------------------- models


@pytest.mark.parametrize("workload", TINY)
@pytest.mark.parametrize("size", ["small", "standard"])
def test_model_parameters_equal_the_workload_formula(workload, size):
    assert model_params(workloads.get(workload).architecture(size)) == workloads.get(workload).expected_params(size)


@pytest.mark.parametrize("spec", [RESNET_BASIC, RESNET_BOTTLENECK], ids=["basic-cifar", "bottleneck-imagenet"])
def test_resnet_variants_match_the_formula(spec):
    assert model_params(spec) == workloads.param_count(spec)


def test_lstm_has_one_bias_per_gate():
    spec = LSTMClassifierSpec(timesteps=3, features=5, hidden=(7,), classes=2)
    variables = jax.eval_shape(models.build_model(spec).init, jax.random.key(0), example_input(spec))
    layer = variables["params"]["LSTM_0"]
    assert {name: leaf.shape for name, leaf in layer.items()} == {
        "input_kernel": (5, 28), "recurrent_kernel": (7, 28), "bias": (28,)}
    assert model_params(spec) == 4 * 7 * (5 + 7) + 4 * 7 + (7 * 2 + 2)


def test_sinusoidal_positions_alternate_sin_and_cos():
    table = models.sinusoidal_positions(3, 4)
    assert table[0].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert table[2, 0] == pytest.approx(math.sin(2)) and table[2, 3] == pytest.approx(math.cos(2 / 100))


# XLA's cost analysis counts every HLO op, so element-wise work the analytic count leaves out
# (bias adds, ReLU/GELU, pooling, LayerNorm, softmax) makes its number a little higher.
FLOPS_BATCH = 4
ELEMENTWISE_TOLERANCE = {"cnn": 0.05, "transformer": 0.15,   # tiny: d_model=64, so LN/softmax/GELU weigh ~11%
                         "decoder": 0.05}                   # RMSNorm, RoPE, SiLU, softmax


@pytest.mark.parametrize("workload,size", [("cnn", "tiny"), ("transformer", "tiny"), ("transformer", "small"),
                                           ("decoder", "tiny"), ("decoder", "small")])
def test_xla_flops_match_the_analytic_count_plus_elementwise_work(workload, size):
    spec = workloads.get(workload).architecture(size)
    analytic = workloads.forward_flops_per_sample(spec) * FLOPS_BATCH
    assert analytic <= xla_forward_flops(spec, FLOPS_BATCH) <= analytic * (1 + ELEMENTWISE_TOLERANCE[workload])


def test_xla_skips_kernel_taps_that_fall_in_zero_padding():
    # A 3x3 'SAME' conv on 4x4: along each axis only 10 of the 12 output x tap pairs touch the image.
    conv = nn.Conv(16, (3, 3), padding="SAME", use_bias=False)
    inputs = jax.ShapeDtypeStruct((1, 4, 4, 8), jnp.float32)
    variables = jax.eval_shape(conv.init, jax.random.key(0), inputs)
    flops = jax.jit(conv.apply).lower(variables, inputs).compile().cost_analysis()["flops"]
    assert flops == 2 * 8 * 16 * 10 * 10


def test_xla_flops_of_resnet18_are_below_analytic_because_of_padding():
    # The analytic count multiplies every 3x3 tap at every position; XLA skips the padded taps
    # (previous test), which at ResNet-18's 4x4 last stage is 31% of them.
    spec = workloads.get("cnn").architecture("small")
    analytic = workloads.forward_flops_per_sample(spec) * FLOPS_BATCH
    assert 0.85 * analytic <= xla_forward_flops(spec, FLOPS_BATCH) <= analytic


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_xla_counts_the_lstm_loop_body_once(size):
    # XLA's cost analysis counts a while loop's body once, not once per iteration: the input
    # projections (one matmul over all steps) are counted in full, the recurrent matmul for one step.
    spec = workloads.get("rnn").architecture(size)
    hidden = spec.hidden if isinstance(spec, LSTMLanguageModelSpec) else spec.hidden[0]
    layers = spec.layers if isinstance(spec, LSTMLanguageModelSpec) else len(spec.hidden)
    analytic = workloads.forward_flops_per_sample(spec) * FLOPS_BATCH
    uncounted_steps = (spec.timesteps - 1) * layers * 2 * 4 * hidden * hidden * FLOPS_BATCH
    expected = analytic - uncounted_steps
    assert expected <= xla_forward_flops(spec, FLOPS_BATCH) <= expected * 1.02


# ---------------------------------------------------------------- sessions


@pytest.mark.parametrize("workload", TINY)
def test_training_lowers_the_loss_and_counts_parameters(trained, workload):
    session, losses = trained[workload]
    assert losses[-1] < losses[0] and all(math.isfinite(loss) for loss in losses)
    assert session.param_count() == TINY_PARAMS[workload] == workloads.get(workload).expected_params("tiny")


def test_train_step_returns_a_device_scalar_and_donates_the_old_state(trained):
    session, _ = trained["rnn"]
    old_leaves = jax.tree.leaves(session._state)
    loss = session.step()
    session.sync(loss)
    assert isinstance(loss, jax.Array) and loss.shape == () and loss.dtype == jnp.float32
    assert loss.devices() == {CPU}
    assert all(leaf.is_deleted() for leaf in old_leaves)


def test_op_by_op_steps_compute_the_same_losses_as_jitted(trained):
    op_by_op = entry.backend().build(case("rnn", compile="op-by-op"))
    assert not op_by_op.compiled
    assert run_steps(op_by_op) == pytest.approx(trained["rnn"][1], rel=1e-5)


def test_native_and_compiled_are_jitted_and_op_by_op_is_not():
    sessions = {mode: entry.backend().build(case("cnn", compile=mode)) for mode in adapter.COMPILE_MODES}
    assert {mode: session.compiled for mode, session in sessions.items()} == {
        "native": True, "compiled": True, "op-by-op": False}


@pytest.mark.parametrize("workload,shape", [
    ("cnn", (BATCH, 10)), ("rnn", (BATCH, 10)), ("transformer", (BATCH, 32, 1_000)),
])
def test_inference_returns_finite_outputs_of_the_right_shape(workload, shape):
    session = entry.backend().build(case(workload, "infer"))
    outputs = session.step()
    session.sync(outputs)
    assert outputs.shape == shape and outputs.dtype == jnp.float32
    assert bool(jnp.isfinite(outputs).all())
    assert session.param_count() == TINY_PARAMS[workload]


def test_language_model_predicts_every_next_token():
    spec = LSTMLanguageModelSpec(vocab=50, embed=8, hidden=16, layers=2, timesteps=5)
    inputs, targets = adapter.synthetic_batch(spec, 3, CPU)
    assert inputs.shape == targets.shape == (3, 5)
    assert inputs[:, 1:].tolist() == targets[:, :-1].tolist()
    session = adapter.build_session(spec, case("rnn"), CPU, CPU_FACTS)
    assert session.param_count() == workloads.param_count(spec)
    losses = run_steps(session, 4)
    assert losses[-1] < losses[0]


def test_resnet_trains_batch_norm_statistics_and_infers_on_running_averages():
    session = adapter.build_session(RESNET_BOTTLENECK, case("cnn"), CPU, CPU_FACTS)
    initial_mean = session._state.batch_stats["BatchNorm_0"]["mean"].tolist()
    losses = run_steps(session)
    assert losses[-1] < losses[0]
    assert session._state.batch_stats["BatchNorm_0"]["mean"].tolist() != initial_mean
    infer = adapter.build_session(RESNET_BOTTLENECK, case("cnn", "infer"), CPU, CPU_FACTS)
    outputs = infer.step()
    assert outputs.shape == (BATCH, RESNET_BOTTLENECK.classes)
    # On running averages a sample's output does not depend on the rest of its batch.
    others_zeroed = infer._run(infer._variables, infer._inputs.at[1:].set(0.0))
    assert jnp.allclose(outputs[0], others_zeroed[0], atol=1e-5)
    assert not jnp.allclose(outputs[1], others_zeroed[1], atol=1e-5)


def test_bf16_computes_in_bf16_and_keeps_float32_parameters():
    session = adapter.build_session(workloads.get("transformer").architecture("tiny"),
                                    case("transformer", precision="bf16"), CPU, CPU_FACTS)
    losses = run_steps(session)
    assert losses[-1] < losses[0]
    assert {leaf.dtype for leaf in jax.tree.leaves(session._state.params)} == {jnp.dtype(jnp.float32)}
    infer = adapter.build_session(workloads.get("cnn").architecture("tiny"), case("cnn", "infer", precision="bf16"),
                                  CPU, CPU_FACTS)
    assert infer.step().dtype == jnp.bfloat16


def test_fp16_training_scales_the_loss_and_still_learns():
    # Built directly (the precision rule refuses fp16 on CPUs without fp16 instructions).
    session = adapter.build_session(workloads.get("cnn").architecture("tiny"), case("cnn", precision="fp16"), CPU,
                                    CPU_FACTS)
    losses = run_steps(session, 10)
    scale = session._state.loss_scale
    assert losses[-1] < losses[0] and all(math.isfinite(loss) for loss in losses)
    assert float(scale.scale) <= 2.0**16 and int(scale.good_steps) >= 1


@pytest.mark.parametrize("device,reason", [
    ("gpu", "no gpu device visible to JAX (jax.devices('gpu') found none; present: cpu)"),
    ("tpu", "no tpu device visible to JAX (jax.devices('tpu') found none; present: cpu)"),
    ("mps", "JAX has no MPS backend (Apple GPUs need the experimental jax-metal plugin, not supported)"),
])
def test_absent_devices_are_skipped_with_the_reason(device, reason):
    with pytest.raises(CaseSkipped) as skipped:
        entry.backend().build(case("cnn", device=device))
    assert str(skipped.value) == reason


def test_half_precision_on_a_cpu_without_instructions_is_skipped(monkeypatch):
    monkeypatch.setattr(adapter.cpuinfo, "read_cpuinfo", lambda: "flags\t: fpu avx2\n")
    with pytest.raises(CaseSkipped, match=r"^this CPU has no fp16 instructions"):
        entry.backend().build(case("cnn", precision="fp16"))
    with pytest.raises(CaseSkipped, match=r"^this CPU has no bf16 instructions"):
        entry.backend().build(case("cnn", precision="bf16"))


def test_cpu_memory_is_unavailable_with_a_reason_never_zero(trained):
    reading, growth = trained["cnn"][0].memory()
    assert reading.value is None and reading.name == "peak_allocated"
    assert reading.reason == (
        "the cpu device's memory_stats() returned None: its XLA client keeps no allocator statistics")
    assert (growth.name, growth.value, growth.reason) == (
        "peak_allocated_growth", None, "the device keeps no allocator statistics")


def test_availability_on_this_machine():
    found = entry.backend().availability()
    assert found.installed and found.version == jax.__version__ and found.name == "jax"
    assert "cpu" in found.devices and found.device_names["cpu"] == CPU.device_kind
    details = found.details
    assert {"jax", "jaxlib", "flax", "optax", "default_backend", "XLA_FLAGS", "JAX_PLATFORMS",
            "jax_enable_x64"} <= set(details)
    assert details["XLA_PYTHON_CLIENT_PREALLOCATE"] == os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"]
    assert "fp32" in details["precisions"]["cpu"]
    assert any("op-by-op runs it without" in note for note in found.notes)
    assert json.loads(json.dumps(found.to_dict()))["details"] == details


def test_backends_that_fail_to_start_are_reported_not_raised(monkeypatch):
    def fail():
        raise RuntimeError("Unable to initialize backend 'cuda'")

    monkeypatch.setattr(adapter.jax.extend.backend, "backends", fail)
    found = entry.backend().availability()
    assert found.installed and found.devices == ()
    assert found.reason == "JAX could not start its backends: Unable to initialize backend 'cuda'"
    assert found.details["jaxlib"] == adapter.jaxlib.__version__
    with pytest.raises(CaseSkipped, match=r"^JAX could not start its backends: Unable to initialize"):
        entry.backend().build(case("cnn"))


def test_a_training_sync_waits_for_the_new_state_as_well_as_the_loss(monkeypatch):
    session = entry.backend().build(case("cnn"))
    waited = []
    monkeypatch.setattr(adapter.jax, "block_until_ready", lambda tree: waited.append(tree) or tree)
    loss = session.step()
    session.sync(loss)
    ((state, handle),) = waited
    assert handle is loss and state is session._state
    infer = entry.backend().build(case("cnn", "infer"))
    outputs = infer.step()
    infer.sync(outputs)
    assert waited[-1] is outputs  # inference waits on its outputs alone: there is no new state


# ---------------------------------------------------------------- fast paths

H100 = DeviceFacts("gpu", gpu_vendor="cuda", compute_capability="9.0")


def test_attention_is_xla_on_a_cpu_and_on_gpus_unless_cudnn_can_take_the_case():
    accepted = lambda: None  # noqa: E731
    assert fast_paths.attention_implementation(CPU_FACTS, "bf16", accepted) == (
        "xla", "cuDNN attention needs an NVIDIA GPU; this device is cpu")
    assert fast_paths.attention_implementation(DeviceFacts("gpu", gpu_vendor="rocm"), "bf16", accepted) == (
        "xla", "cuDNN attention needs an NVIDIA GPU; this device is rocm")
    assert fast_paths.attention_implementation(H100, "fp32", accepted) == (
        "xla", "cuDNN's fused attention computes in bf16 or fp16 only; this case is fp32")
    assert fast_paths.attention_implementation(H100, "bf16", accepted) == ("cudnn", None)
    assert fast_paths.attention_implementation(H100, "fp16", lambda: "RuntimeError: cuDNN too old") == (
        "xla", "JAX refused cuDNN attention: RuntimeError: cuDNN too old")


def test_jax_refuses_cudnn_attention_on_this_cpu_with_its_own_reason():
    reason = fast_paths.cudnn_attention_refusal(2, 32, 4, 16, jnp.bfloat16)
    assert reason is not None and reason.split(":")[0] in {"RuntimeError", "ValueError", "NotImplementedError"}


def test_the_chosen_attention_reaches_the_model_and_the_record(monkeypatch):
    transformer = workloads.get("transformer").architecture("tiny")
    session = adapter.build_session(transformer, case("transformer"), CPU, CPU_FACTS)
    assert session.model.attention == "xla"
    assert session.info["fast_paths"] == {
        "attention": {"implementation": "jax.nn.dot_product_attention (xla)", "rule": fast_paths.ATTENTION_RULE,
                      "reason": "cuDNN attention needs an NVIDIA GPU; this device is cpu"},
        "optimizer": {"implementation": "optax.adam fused by XLA in the jitted step",
                      "rule": fast_paths.OPTIMIZER_RULE}}
    asked = []
    monkeypatch.setattr(fast_paths, "cudnn_attention_refusal", lambda *shape, **kind: asked.append((shape, kind)))
    model, _, paths = adapter.model_and_optimizer(transformer, case("transformer", "infer", precision="bf16"), H100)
    assert model.attention == "cudnn" and paths["attention"]["implementation"].endswith("(cudnn)")
    assert asked == [((BATCH, transformer.seq_len, transformer.heads, transformer.d_model // transformer.heads,
                       jnp.bfloat16), {"kv_heads": None, "causal": False})]
    decoder = workloads.get("decoder").architecture("tiny")  # grouped-query and causal, asked as such
    adapter.model_and_optimizer(decoder, case("decoder", "infer", precision="bf16"), H100)
    assert asked[-1] == ((BATCH, decoder.seq_len, decoder.heads, decoder.head_dim, jnp.bfloat16),
                         {"kv_heads": decoder.kv_heads, "causal": True})


def test_every_model_records_its_fast_paths():
    rnn = adapter.build_session(workloads.get("rnn").architecture("tiny"), case("rnn", compile="op-by-op"), CPU,
                                CPU_FACTS)
    assert rnn.info["fast_paths"] == {
        "recurrent": {"implementation": "lax.scan LSTM", "rule": fast_paths.RECURRENT_RULE},
        "optimizer": {"implementation": "optax.adam dispatched op by op", "rule": fast_paths.OPTIMIZER_RULE}}
    cnn = adapter.build_session(workloads.get("cnn").architecture("tiny"), case("cnn", "infer"), CPU, CPU_FACTS)
    assert cnn.info["fast_paths"] == {
        "memory_format": {"implementation": "NHWC (XLA layouts)", "rule": fast_paths.MEMORY_FORMAT_RULE}}
