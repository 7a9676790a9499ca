"""The PyTorch backend: pure device/precision rules, the real models (parameters, FLOPs, structure)
and real sessions on the CPU (loss drops, inference output, memory, availability, compile)."""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tribench.backends.base import CaseSkipped
from tribench.backends.torch import devices
from tribench.backends.torch.devices import DeviceFacts
from tribench.core.spec import CaseSpec
from tribench.suites import workloads

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from tribench.backends.torch import adapter, fast_paths, models  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")
TINY = ("cnn", "rnn", "transformer", "decoder")
BUILD = "2.13.0+cpu"


def case(workload: str, mode: str = "train", **fields) -> CaseSpec:
    return CaseSpec(**{"backend": "torch", "workload": workload, "size": "tiny", "mode": mode,
                       "batch_size": 8, **fields})


def spec_of(workload: str, size: str):
    return workloads.get(workload).architecture(size)


def losses(session, steps: int) -> list[float]:
    return [float(session.step()) for _ in range(steps)]


# ---------------------------------------------------------------- pure rules: devices


def test_device_rules():
    present = {"cuda_available": True, "mps_available": True, "build": BUILD}
    absent = {"cuda_available": False, "mps_available": False, "build": BUILD}
    assert devices.device_skip_reason("cpu", **absent) is None
    assert devices.device_skip_reason("gpu", **present) is None
    assert devices.device_skip_reason("mps", **present) is None
    assert devices.device_skip_reason("gpu", **absent) == (
        "no CUDA or ROCm GPU visible to torch 2.13.0+cpu (torch.cuda.is_available() is False)"
    )
    assert devices.device_skip_reason("mps", **absent) == (
        "no Apple MPS device visible to torch 2.13.0+cpu (torch.backends.mps.is_available() is False)"
    )
    assert devices.device_skip_reason("tpu", **present) == (
        "the torch backend does not drive TPUs (that needs torch_xla, which tribench does not use)"
    )
    assert devices.device_skip_reason("npu", **present) == "unknown device 'npu' for torch; it knows cpu, gpu, mps"
    assert [devices.torch_device_type(d) for d in ("cpu", "gpu", "mps")] == ["cpu", "cuda", "mps"]


# ---------------------------------------------------------------- pure rules: precision

H100 = DeviceFacts("cuda", "NVIDIA H100", compute_capability=(9, 0), native_bf16=True)
V100 = DeviceFacts("cuda", "Tesla V100", compute_capability=(7, 0), native_bf16=False)
P100 = DeviceFacts("cuda", "Tesla P100", compute_capability=(6, 0), native_bf16=False)
MI250 = DeviceFacts("cuda", "AMD Instinct MI250X", rocm=True, compute_capability=(9, 0), native_bf16=True)
OLD_ROCM = DeviceFacts("cuda", "AMD Radeon", rocm=True, compute_capability=(10, 3), native_bf16=False)
MPS_14 = DeviceFacts("mps", "Apple MPS", macos_14=True)
MPS_13 = DeviceFacts("mps", "Apple MPS", macos_14=False)
CPU_BF16 = DeviceFacts("cpu", cpu_flags=frozenset({"avx2", "avx512f", "avx512_bf16"}))
CPU_AMX = DeviceFacts("cpu", cpu_flags=frozenset({"amx_bf16", "amx_fp16"}))
CPU_ARM = DeviceFacts("cpu", cpu_flags=frozenset({"asimd", "asimdhp", "bf16"}))
CPU_PLAIN = DeviceFacts("cpu", cpu_flags=frozenset({"avx2", "f16c"}))

BF16_CPU_REASON = (
    "this CPU has no bf16 instructions (none of amx_bf16, avx512_bf16, bf16); "
    "torch would convert every bf16 op to fp32 and back"
)
FP16_CPU_REASON = (
    "this CPU has no fp16 instructions (none of amx_fp16, asimdhp, avx512_fp16, fphp); "
    "torch would convert every fp16 op to fp32 and back"
)


@pytest.mark.parametrize("facts", [H100, V100, P100, MI250, OLD_ROCM, MPS_14, MPS_13, CPU_BF16, CPU_PLAIN])
def test_fp32_runs_on_every_device(facts):
    assert devices.precision_skip_reason("fp32", facts) is None


def test_cuda_with_native_bf16_runs_both_low_precisions():
    assert devices.precision_skip_reason("bf16", H100) is None
    assert devices.precision_skip_reason("fp16", H100) is None


def test_cuda_without_bf16_refuses_bf16_but_runs_fp16():
    assert devices.precision_skip_reason("bf16", V100) == (
        "bf16 needs native bf16 math (CUDA compute capability >= 8.0); Tesla V100 has 7.0 and torch would "
        "only emulate it (torch.cuda.is_bf16_supported(including_emulation=False) is False)"
    )
    assert devices.precision_skip_reason("fp16", V100) is None
    assert devices.precision_skip_reason("fp16", P100) == (
        "fp16 needs CUDA compute capability >= 7.0 (tensor cores); Tesla P100 has 6.0"
    )


def test_rocm_runs_both_low_precisions():
    for facts in (MI250, OLD_ROCM):
        assert devices.precision_skip_reason("bf16", facts) is None
        assert devices.precision_skip_reason("fp16", facts) is None


def test_mps_runs_fp16_and_needs_macos_14_for_bf16():
    assert devices.precision_skip_reason("fp16", MPS_13) is None
    assert devices.precision_skip_reason("bf16", MPS_14) is None
    assert devices.precision_skip_reason("bf16", MPS_13) == (
        "bf16 on MPS needs macOS 14 or newer (torch.backends.mps.is_macos_or_newer(14, 0) is False)"
    )


def test_cpu_low_precision_needs_instructions():
    assert devices.precision_skip_reason("bf16", CPU_BF16) is None
    assert devices.precision_skip_reason("fp16", CPU_BF16) == FP16_CPU_REASON
    assert devices.precision_skip_reason("bf16", CPU_PLAIN) == BF16_CPU_REASON
    for facts in (CPU_AMX, CPU_ARM):
        assert devices.precision_skip_reason("bf16", facts) is None
        assert devices.precision_skip_reason("fp16", facts) is None
    assert devices.precision_skip_reason("fp8", H100) == "unknown precision 'fp8'; torch runs fp32, tf32, bf16, fp16"


def test_scaler_and_channels_last():
    assert devices.uses_grad_scaler("fp16", "train")
    assert not devices.uses_grad_scaler("fp16", "infer")
    assert not devices.uses_grad_scaler("bf16", "train")
    assert devices.uses_channels_last("cuda", is_cnn=True)
    assert devices.uses_channels_last("cpu", is_cnn=True)
    assert not devices.uses_channels_last("mps", is_cnn=True)
    assert not devices.uses_channels_last("cuda", is_cnn=False)


def test_cpu_cnns_run_channels_last_and_say_so():
    cnn = adapter.backend().build(case("cnn"))
    assert cnn.info == {
        "compile": "eager",
        "fast_paths": {
            "memory_format": {"implementation": "channels_last", "rule": fast_paths.MEMORY_FORMAT_RULE},
            "optimizer": {"implementation": "Adam (fused)", "rule": fast_paths.ADAM_RULE},
        },
        "numerics": {"fp32_math": "ieee-fp32", "how": "nothing set: fp32 on cpu is IEEE fp32"}}
    assert cnn._batch.inputs.is_contiguous(memory_format=torch.channels_last)
    assert cnn._optimizer.defaults["fused"] is True
    rnn = adapter.backend().build(case("rnn", mode="infer"))
    assert rnn.info["fast_paths"] == {"recurrent": {"implementation": "oneDNN LSTM", "rule": fast_paths.RECURRENT_RULE}}


def test_a_transformer_records_the_attention_kernel_sdpa_picks_for_its_shapes():
    session = adapter.backend().build(case("transformer", mode="infer"))
    assert session.info["fast_paths"] == {"attention": {"implementation": "scaled_dot_product_attention (flash)",
                                                        "rule": fast_paths.ATTENTION_RULE}}
    compiled = adapter.fast_path_record(spec_of("transformer", "tiny"), case("transformer", compile="compiled"),
                                        torch.device("cpu"))
    assert compiled["attention"]["note"].startswith("the kernel eager dispatch picks")


def test_the_picked_kernel_is_what_sdpa_itself_dispatches_to():
    """Cross-check with the profiler: the aten op SDPA ran is the kernel the record names."""
    query = torch.randn(2, 4, 32, 16)
    picked = fast_paths.picked_attention_kernel(2, 4, 32, 16, torch.float32, torch.device("cpu"), train=False)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as trace:
        F.scaled_dot_product_attention(query, query, query)
    names = {event.key for event in trace.key_averages()}
    assert picked == "flash"
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in names


def test_the_decoder_s_grouped_causal_attention_kernel_is_asked_and_cross_checked():
    """Grouped-query (4 query heads over 2 key/value heads) and causal, as the decoder calls it."""
    query, key = torch.randn(2, 4, 32, 16), torch.randn(2, 2, 32, 16)
    picked = fast_paths.picked_attention_kernel(2, 4, 32, 16, torch.float32, torch.device("cpu"), train=False,
                                                kv_heads=2, causal=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as trace:
        F.scaled_dot_product_attention(query, key, key, is_causal=True, enable_gqa=True)
    assert picked == "flash"
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in {event.key for event in trace.key_averages()}
    session = adapter.backend().build(case("decoder", mode="infer"))
    assert session.info["fast_paths"]["attention"]["implementation"] == "scaled_dot_product_attention (flash)"


def test_an_unknown_sdpa_answer_or_a_torch_without_the_question_is_said_so(monkeypatch):
    monkeypatch.setattr(torch, "_fused_sdp_choice", lambda *args, **kwargs: 42)
    assert fast_paths.picked_attention_kernel(1, 1, 4, 8, torch.float32, torch.device("cpu"), False) == \
        "SDPBackend value 42"
    monkeypatch.delattr(torch, "_fused_sdp_choice")
    assert fast_paths.picked_attention_kernel(1, 1, 4, 8, torch.float32, torch.device("cpu"), False) == \
        f"unavailable: torch {torch.__version__} has no torch._fused_sdp_choice to ask"


def test_the_lstm_record_follows_torchs_dispatch_conditions(monkeypatch):
    assert fast_paths.lstm_implementation("cpu", torch.float32, train=True) == "oneDNN LSTM"
    assert fast_paths.lstm_implementation("cpu", torch.bfloat16, train=True) == "oneDNN LSTM"
    assert fast_paths.lstm_implementation("cpu", torch.float16, train=False) == "oneDNN LSTM"
    assert fast_paths.lstm_implementation("cpu", torch.float16, train=True) == "ATen LSTM cells"
    assert fast_paths.lstm_implementation("mps", torch.float32, train=True) == "ATen LSTM on mps"
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    assert fast_paths.lstm_implementation("cuda", torch.float16, train=True) == "cuDNN LSTM"
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: False)
    assert fast_paths.lstm_implementation("cuda", torch.float32, train=True) == "ATen LSTM cells (no cuDNN)"
    with torch.backends.mkldnn.flags(enabled=False):
        assert fast_paths.lstm_implementation("cpu", torch.float32, train=True) == "ATen LSTM cells"


def test_the_cpu_lstm_runs_on_onednn_as_recorded():
    lstm = torch.nn.LSTM(8, 16, batch_first=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as trace:
        lstm(torch.randn(2, 5, 8))
    assert any("mkldnn_rnn" in event.key for event in trace.key_averages())


def test_importing_the_package_does_not_import_torch():
    code = "import sys, tribench.backends.torch, tribench.backends.torch.devices; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- models: parameters and structure


@pytest.mark.parametrize("workload, expected", [("cnn", 93_322), ("rnn", 92_298), ("transformer", 229_096),
                                               ("decoder", 162_624)])
def test_tiny_param_counts_from_built_sessions(workload, expected):
    session = adapter.backend().build(case(workload, "infer"))
    assert session.param_count() == expected
    assert expected == workloads.get(workload).expected_params("tiny", lstm_second_bias=True)


def test_torch_lstm_carries_the_documented_second_bias():
    # 3 LSTM layers of 64 units: PyTorch's bias_hh adds 4 * 64 per layer to the one-bias count.
    assert workloads.get("rnn").expected_params("tiny") == 91_530
    assert 92_298 == 91_530 + 3 * 4 * 64


@pytest.mark.parametrize("size", ["small", "standard"])
@pytest.mark.parametrize("workload", TINY)
def test_larger_param_counts_match_the_spec(workload, size):
    """Built on the meta device: the real module classes, without allocating ResNet-50 or BERT-base."""
    with torch.device("meta"):
        model = models.build_model(spec_of(workload, size))
    expected = workloads.get(workload).expected_params(size, lstm_second_bias=workload == "rnn")
    assert models.trainable_params(model) == expected


def test_any_spec_builds_mixed_width_lstms_and_a_custom_resnet():
    lstm_spec = workloads.LSTMClassifierSpec(timesteps=5, features=8, hidden=(16, 32, 24), classes=5)
    lstm_model = models.build_model(lstm_spec)
    assert len(lstm_model.lstms) == 3                        # one nn.LSTM per width
    assert models.trainable_params(lstm_model) == workloads.param_count(lstm_spec, lstm_second_bias=True)
    assert lstm_model(torch.randn(3, 5, 8)).shape == (3, 5)
    resnet_spec = workloads.ResNetSpec(20, 20, 3, 7, "bottleneck", (1, 2), (8, 16), "cifar", stem_width=8)
    resnet = models.build_model(resnet_spec)
    assert models.trainable_params(resnet) == workloads.param_count(resnet_spec)
    assert counted_forward_flops(resnet.eval(), torch.randn(2, 3, 20, 20)) == (
        workloads.forward_flops_per_sample(resnet_spec) * 2
    )


def test_resnet50_is_v1_5_without_conv_biases():
    with torch.device("meta"):
        model = models.build_model(spec_of("cnn", "standard"))
    first_of_stage_2 = model.blocks[3]                       # stage 1 has 3 blocks
    strides = [conv[0].stride for conv in first_of_stage_2.convs]
    assert strides == [(1, 1), (2, 2), (1, 1)]               # stride on the 3x3, not the first 1x1
    assert first_of_stage_2.shortcut[0].stride == (2, 2)
    assert model.stem[0][0].kernel_size == (7, 7) and isinstance(model.stem[2], nn.MaxPool2d)
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_transformer_positions_are_a_sinusoidal_buffer():
    model = models.build_model(spec_of("transformer", "tiny"))
    assert "positions" in dict(model.named_buffers())
    assert "positions" not in dict(model.named_parameters())
    table = model.positions
    assert table.shape == (32, 64)
    assert torch.equal(table[0, 0::2], torch.zeros(32)) and torch.equal(table[0, 1::2], torch.ones(32))
    assert table[3, 0].item() == pytest.approx(math.sin(3.0))
    assert table[3, 3].item() == pytest.approx(math.cos(3.0 / 10_000 ** (2 / 64)))


# ---------------------------------------------------------------- analytic FLOPs


def counted_forward_flops(model: nn.Module, inputs) -> int:
    """FlopCounterMode total of one forward pass, with SDPA on its math backend.

    On the CPU, SDPA dispatches to ``_scaled_dot_product_flash_attention_for_cpu``, which
    torch 2.13's flop counter has no formula for (it would count 0); the math backend runs
    the same two batched matmuls as ``bmm``, which it counts.
    """
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.no_grad():
        model(inputs)
    return counter.get_total_flops()


@pytest.mark.parametrize("workload", ["cnn", "transformer", "decoder"])
def test_tiny_forward_flops_match_the_analytic_count_exactly(workload):
    spec = spec_of(workload, "tiny")
    model = models.build_model(spec).eval()
    batch = adapter.synthetic_batch(spec, 2, CPU)
    assert counted_forward_flops(model, batch.inputs) == workloads.forward_flops_per_sample(spec) * 2


@pytest.mark.parametrize("size", ["small", "standard"])
@pytest.mark.parametrize("workload", ["cnn", "transformer", "decoder"])
def test_larger_forward_flops_match_on_the_meta_device(workload, size):
    """Shapes alone: the flop counter needs no data, so ResNet-50 and BERT-base cost nothing."""
    spec = spec_of(workload, size)
    with torch.device("meta"):
        model = models.build_model(spec).eval()
    inputs = adapter.synthetic_batch(spec, 2, CPU).inputs.to("meta")
    assert counted_forward_flops(model, inputs) == workloads.forward_flops_per_sample(spec) * 2


def _lstm_flops(spec) -> int:
    """The analytic FLOPs of the LSTM layers alone (total minus the dense head)."""
    if isinstance(spec, workloads.LSTMClassifierSpec):
        return workloads.forward_flops_per_sample(spec) - 2 * spec.hidden[-1] * spec.classes
    return workloads.forward_flops_per_sample(spec) - spec.timesteps * 2 * spec.hidden * spec.vocab


def test_lstm_flops_on_the_cpu_count_only_the_head():
    """The gap, measured: on the CPU ``nn.LSTM`` runs as one oneDNN op (``aten.lstm`` ->
    ``mkldnn_rnn_layer``) that torch 2.13's FlopCounterMode has no formula for, so a real forward
    pass counts only the dense head. Pinned here: counted == analytic total - analytic LSTM part.
    The LSTM part itself is checked on the meta device below."""
    spec = spec_of("rnn", "tiny")
    model = models.build_model(spec).eval()
    inputs = adapter.synthetic_batch(spec, 2, CPU).inputs
    assert counted_forward_flops(model, inputs) == (workloads.forward_flops_per_sample(spec) - _lstm_flops(spec)) * 2
    assert _lstm_flops(spec) == 32 * 2 * 4 * 64 * (32 + 64) + 2 * 32 * 2 * 4 * 64 * (64 + 64)


@pytest.mark.parametrize("size", ["tiny", "small", "standard"])
def test_lstm_flops_match_exactly_on_the_meta_device(size):
    """On the meta device there is no fused LSTM kernel: ``aten.lstm`` runs its composite form, one
    input and one recurrent matmul per layer and step, which the flop counter sees. So the full
    model, LSTM included, counts exactly the analytic FLOPs."""
    spec = spec_of("rnn", size)
    with torch.device("meta"):
        model = models.build_model(spec).eval()
    inputs = adapter.synthetic_batch(spec, 2, CPU).inputs.to("meta")
    assert counted_forward_flops(model, inputs) == workloads.forward_flops_per_sample(spec) * 2


# ---------------------------------------------------------------- sessions on the CPU


@pytest.mark.parametrize("workload", TINY)
def test_training_loss_drops_on_the_fixed_batch(workload):
    session = adapter.backend().build(case(workload))
    handle = session.step()
    assert isinstance(handle, torch.Tensor) and handle.dim() == 0 and not handle.requires_grad
    history = [float(handle)] + losses(session, 7)
    assert all(math.isfinite(value) for value in history)
    assert all(later < earlier for earlier, later in itertools.pairwise(history))
    assert history[-1] < history[0] - 0.05


@pytest.mark.parametrize("workload, shape", [("cnn", (8, 10)), ("rnn", (8, 10)), ("transformer", (8, 32, 1000)),
                                             ("decoder", (8, 32, 1000))])
def test_inference_output_shape_and_values(workload, shape):
    session = adapter.backend().build(case(workload, "infer"))
    out = session.step()
    assert session.sync(out) is None
    assert out.shape == shape and out.dtype == torch.float32
    assert not out.requires_grad and torch.isfinite(out).all()
    assert not session.model.training


def test_lm_targets_are_the_inputs_shifted_by_one():
    spec = spec_of("rnn", "small")
    batch = adapter.synthetic_batch(spec, 4, CPU)
    assert batch.inputs.shape == batch.targets.shape == (4, 32)
    assert torch.equal(batch.inputs[:, 1:], batch.targets[:, :-1])
    assert int(batch.inputs.max()) < spec.vocab and int(batch.inputs.min()) >= 0


def test_data_and_weights_are_seeded():
    first, second = (adapter.backend().build(case("transformer")) for _ in range(2))
    assert torch.equal(first._batch.inputs, second._batch.inputs)
    assert losses(first, 2) == losses(second, 2)


def test_bf16_on_this_cpu_runs_mixed_or_is_skipped_with_the_reason():
    reason = devices.precision_skip_reason("bf16", adapter._device_facts("cpu"))
    bf16 = case("transformer", precision="bf16")
    if reason:
        with pytest.raises(CaseSkipped, match=re.escape(reason)):
            adapter.backend().build(bf16)
        return
    session = adapter.backend().build(bf16)
    history = losses(session, 5)
    assert history[-1] < history[0] - 0.05
    assert all(p.dtype == torch.float32 for p in session.model.parameters())
    infer = adapter.backend().build(case("transformer", "infer", precision="bf16"))
    assert infer.step().dtype == torch.bfloat16


def test_fp16_training_path_scales_the_loss():
    """fp16 training with GradScaler, run through ``create_session`` (no support check): torch 2.13's CPU
    autocast runs fp16 convolutions and GradScaler('cpu') even where ``build`` refuses fp16 as emulated."""
    session = adapter.create_session(case("cnn", precision="fp16"), CPU)
    assert session._scaler is not None and session._scaler.is_enabled()
    history = losses(session, 6)
    assert history[-1] < history[0] - 0.05
    assert all(p.dtype == torch.float32 for p in session.model.parameters())
    assert session._scaler.get_scale() == 65536.0            # no overflow, so no backoff


def test_cpu_memory_is_unavailable_with_a_reason():
    (reading,) = adapter.backend().build(case("cnn", "infer")).memory()
    assert reading.value is None and not reading.available
    assert reading.reason == adapter.CPU_MEMORY_REASON
    assert reading.unit == "bytes" and reading.scope == "process"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_absent_gpu_and_tpu_are_skipped_with_the_reason():
    with pytest.raises(CaseSkipped) as gpu:
        adapter.backend().build(case("cnn", device="gpu"))
    assert str(gpu.value) == (
        f"no CUDA or ROCm GPU visible to torch {torch.__version__} (torch.cuda.is_available() is False)"
    )
    with pytest.raises(CaseSkipped, match="needs torch_xla"):
        adapter.backend().build(case("cnn", device="tpu"))


def test_availability_on_this_machine():
    info = adapter.backend().availability()
    assert info.name == "torch" and info.installed
    assert info.version == torch.__version__
    assert "cpu" in info.devices and info.device_names["cpu"]
    assert info.details["num_threads"] == torch.get_num_threads()
    assert info.details["cuda"] == torch.version.cuda
    assert json.loads(json.dumps(info.to_dict()))["devices"] == list(info.devices)


@pytest.mark.slow
def test_compiled_training_matches_native_eager():
    """torch.compile (inductor) of the tiny CNN: a cold compile takes ~25 s on 2 cores, so only this case."""
    compiled = adapter.backend().build(case("cnn", compile="compiled"))
    eager = adapter.backend().build(case("cnn"))
    compiled_losses, eager_losses = losses(compiled, 4), losses(eager, 4)
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4)
    assert compiled_losses[-1] < compiled_losses[0]
    assert compiled.param_count() == 93_322
