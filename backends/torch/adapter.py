"""The PyTorch backend: availability, and a Session per case (model, synthetic data, Adam, on device).

Decisions a reader of the results should know:

* Precision is mixed: parameters and Adam state stay fp32, the forward pass runs under
  ``torch.autocast`` in bf16 or fp16; fp16 training scales the loss with
  ``torch.amp.GradScaler``. Which device runs which precision: ``backends.torch.devices``.
* ``native`` and ``op-by-op`` are both eager PyTorch (PyTorch's production path dispatches op by op).
  ``compiled`` is ``torch.compile(model)`` (default mode, inductor); the loss, backward and
  optimizer step around it stay eager. The first step, which compiles, is timed apart by the harness.
* Each framework fast path (memory format, Adam's implementation, the attention kernel, the LSTM's)
  is chosen by a stated rule and recorded per case in ``build.fast_paths``: ``backends.torch.fast_paths``.
  A fused Adam also keeps the fp16 GradScaler free of host syncs: it takes the scale and the
  inf-check on the device instead of reading them back. On CUDA ``cudnn.benchmark`` is on (shapes
  are fixed; the autotuning lands in the first, separately timed, step). TF32 settings are torch's defaults
  (``torch.get_float32_matmul_precision()`` and ``cudnn.allow_tf32`` are recorded in availability).
* ``sync``: ``torch.cuda.synchronize`` / ``torch.mps.synchronize``; on the CPU every torch op has
  finished when it returns, so there is nothing to wait for.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tribench.backends.base import Availability, CaseSkipped, MemoryReading
from tribench.backends.torch import devices, distributed, fast_paths, models
from tribench.core.readings import Reading
from tribench.core.spec import CaseSpec
from tribench.harness import cpuinfo, numerics
from tribench.harness.probes.memory import AFTER_COMPILE
from tribench.suites import workloads
from tribench.suites.workloads import (
    Architecture,
    ConvNetSpec,
    DecoderSpec,
    LSTMClassifierSpec,
    LSTMLanguageModelSpec,
    ResNetSpec,
    TransformerSpec,
)

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CPU_MEMORY_REASON = (
    "torch keeps no allocator statistics for CPU tensors; the harness records the host process peak RSS"
)
MPS_PEAK_REASON = "torch.mps exposes no peak statistics, only current allocations (read after the timed loop)"


# ---------------------------------------------------------------- facts about this machine


def _cpu_flags() -> frozenset[str]:
    """Instruction-set flags of the host CPU: /proc/cpuinfo on Linux, sysctl on macOS."""
    if platform.system() == "Darwin":
        return _darwin_cpu_flags()
    return cpuinfo.parse_flags(cpuinfo.read_cpuinfo())


def _cpu_name() -> str:
    return cpuinfo.parse_model(cpuinfo.read_cpuinfo()) or platform.processor() or platform.machine()


def _darwin_cpu_flags() -> frozenset[str]:
    names = {"hw.optional.arm.FEAT_FP16": "fphp", "hw.optional.arm.FEAT_BF16": "bf16"}
    flags = set()
    for key, flag in names.items():
        result = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, check=False)
        if result.stdout.strip() == "1":
            flags.add(flag)
    return frozenset(flags)


def _device_facts(device_type: str) -> devices.DeviceFacts:
    """The facts the precision rules need, read from the live device of ``device_type``."""
    if device_type == "cuda":
        return devices.DeviceFacts(
            device_type="cuda",
            name=torch.cuda.get_device_name(),
            rocm=torch.version.hip is not None,
            compute_capability=torch.cuda.get_device_capability(),
            native_bf16=torch.cuda.is_bf16_supported(including_emulation=False),
        )
    if device_type == "mps":
        return devices.DeviceFacts(
            device_type="mps", name="Apple MPS", macos_14=torch.backends.mps.is_macos_or_newer(14, 0)
        )
    return devices.DeviceFacts(device_type="cpu", name=_cpu_name(), cpu_flags=_cpu_flags())


def _present_devices() -> tuple[str, ...]:
    present = ["cpu"]
    if torch.cuda.is_available():
        present.append("gpu")
    if torch.backends.mps.is_available():
        present.append("mps")
    return tuple(present)


def _build_details() -> dict[str, object]:
    """Build flags and thread settings of this torch, JSON-friendly."""
    parallel = torch.__config__.parallel_info().splitlines()
    return {
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "hip": torch.version.hip,
        "num_threads": torch.get_num_threads(),
        "num_interop_threads": torch.get_num_interop_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "openmp": torch.backends.openmp.is_available(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "parallel_backend": next((line.split(":", 1)[1].strip() for line in parallel
                                  if line.startswith("ATen parallel backend")), None),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
    }


def _device_names(present: tuple[str, ...]) -> dict[str, str]:
    names = {"cpu": _cpu_name()}
    if "gpu" in present:
        names["gpu"] = torch.cuda.get_device_name()
    if "mps" in present:
        names["mps"] = "Apple MPS"
    return names


def _precision_notes(present: tuple[str, ...]) -> tuple[str, ...]:
    notes = []
    for kind in present:
        facts = _device_facts(devices.torch_device_type(kind))
        for precision in devices.LOW_PRECISIONS:
            reason = devices.precision_skip_reason(precision, facts)
            if reason:
                notes.append(f"{precision} on {kind} is skipped: {reason}")
    return tuple(notes)


# ---------------------------------------------------------------- synthetic data and loss


@dataclass(frozen=True)
class Batch:
    inputs: torch.Tensor
    targets: torch.Tensor


def synthetic_batch(spec: Architecture, batch_size: int, device: torch.device) -> Batch:
    """One fixed batch, generated on ``device`` from workloads.SEED."""
    gen = torch.Generator(device=device).manual_seed(workloads.SEED)
    where = {"generator": gen, "device": device}
    if isinstance(spec, ConvNetSpec | ResNetSpec):
        images = torch.randn(batch_size, spec.channels, spec.height, spec.width, **where)
        return Batch(images, torch.randint(spec.classes, (batch_size,), **where))
    if isinstance(spec, LSTMClassifierSpec):
        sequences = torch.randn(batch_size, spec.timesteps, spec.features, **where)
        return Batch(sequences, torch.randint(spec.classes, (batch_size,), **where))
    if isinstance(spec, LSTMLanguageModelSpec | DecoderSpec):  # next-token prediction
        length = spec.timesteps if isinstance(spec, LSTMLanguageModelSpec) else spec.seq_len
        tokens = torch.randint(spec.vocab, (batch_size, length + 1), **where)
        return Batch(tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous())
    if isinstance(spec, TransformerSpec):
        tokens = torch.randint(spec.vocab, (batch_size, spec.seq_len), **where)
        return Batch(tokens, torch.randint(spec.vocab, (batch_size, spec.seq_len), **where))
    raise TypeError(f"no synthetic data for architecture {spec!r}")


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy over every sample (or every position of a sequence)."""
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten())


# ---------------------------------------------------------------- session

_SYNC: dict[str, Callable[[], None]] = {
    "cpu": lambda: None,
    "cuda": torch.cuda.synchronize,
    "mps": torch.mps.synchronize,
}


class TorchSession:
    """A built case: ``step`` runs one train or inference step and returns a device tensor."""

    def __init__(
        self, model: nn.Module, runner: Callable[[torch.Tensor], torch.Tensor], batch: Batch,
        case: CaseSpec, device: torch.device, loss: Callable[[Any, Any], torch.Tensor] | None = None,
    ) -> None:
        self.model = model            # the nn.Module (parameters, counts)
        self._runner = runner         # model or torch.compile(model); a plugin's: fed a tuple or dict of inputs
        self._loss = loss or cross_entropy
        self._batch = batch
        self._device = device
        self._train = case.mode == "train"
        self._autocast = torch.autocast(
            device.type, dtype=AUTOCAST_DTYPES.get(case.precision), enabled=case.precision in AUTOCAST_DTYPES
        )
        adam = fast_paths.adam_options()
        self._optimizer = torch.optim.Adam(model.parameters(), workloads.LEARNING_RATE, **adam) if self._train else None
        scaled = devices.uses_grad_scaler(case.precision, case.mode)
        self._scaler = torch.amp.GradScaler(device.type) if scaled else None

    def step(self) -> torch.Tensor:
        """Train: forward, loss, backward, Adam step; returns the loss. Infer: returns the logits."""
        return self._train_step() if self._train else self._infer_step()

    def _train_step(self) -> torch.Tensor:
        self._optimizer.zero_grad(set_to_none=True)
        with self._autocast:
            loss = self._loss(self._runner(self._batch.inputs), self._batch.targets)
        if self._scaler is None:
            loss.backward()
            self._optimizer.step()
        else:
            self._scaler.scale(loss).backward()
            self._scaler.step(self._optimizer)
            self._scaler.update()
        return loss.detach()

    def _infer_step(self) -> torch.Tensor:
        with torch.inference_mode(), self._autocast:
            return self._runner(self._batch.inputs)

    def sync(self, handle: object) -> None:
        """Wait for the device. CPU ops are synchronous: the handle is already computed."""
        _SYNC[self._device.type]()

    def mark_window(self) -> None:
        """Restart the CUDA allocator's peaks at the end of the compile step; note what is allocated then."""
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
            torch.cuda.reset_peak_memory_stats(self._device)
            self._window_base = torch.cuda.memory_allocated(self._device)

    def memory(self) -> MemoryReading:
        if self._device.type == "cuda":
            base = getattr(self, "_window_base", None)
            span = AFTER_COMPILE if base is not None else "since the process started (no window mark)"
            peak = float(torch.cuda.max_memory_allocated(self._device))
            growth_source = "torch.cuda.max_memory_allocated minus torch.cuda.memory_allocated at the window's start"
            return (
                Reading("peak_allocated", "bytes", "torch.cuda.max_memory_allocated", "process", peak, span=span),
                Reading("peak_reserved", "bytes", "torch.cuda.max_memory_reserved", "process",
                        float(torch.cuda.max_memory_reserved(self._device)), span=span),
                Reading("peak_allocated_growth", "bytes", growth_source, "process", peak - base, span=span)
                if base is not None else Reading.unavailable("peak_allocated_growth", "bytes", growth_source,
                                                             "process", "the window was never marked", span),
            )
        if self._device.type == "mps":
            return (
                Reading("current_driver_allocated", "bytes", "torch.mps.driver_allocated_memory", "process",
                        float(torch.mps.driver_allocated_memory())),
                Reading("current_allocated", "bytes", "torch.mps.current_allocated_memory", "process",
                        float(torch.mps.current_allocated_memory())),
                Reading.unavailable("peak_allocated", "bytes", "torch.mps", "process", MPS_PEAK_REASON),
            )
        return (Reading.unavailable("peak_allocated", "bytes", "torch (CPU allocator)", "process",
                                    CPU_MEMORY_REASON),)

    def param_count(self) -> int:
        return models.trainable_params(self.model)

    def data_parallel_devices(self) -> list[str]:
        """The one device this rank drives (a data-parallel rank is one process per device)."""
        return [str(self._device)]

    def profile(self, steps: int, folder: Path) -> dict:
        """Optional protocol method: trace ``steps`` steps with torch.profiler (backends.torch.profiling)."""
        from tribench.backends.torch import profiling

        return profiling.profile(self, steps, folder)


class GenerateSession(TorchSession):
    """A TorchSession whose step is one generation request (``backends.torch.generate``)."""

    def __init__(self, generator: Any, case: CaseSpec, device: torch.device) -> None:
        super().__init__(generator.model, generator.model, Batch(generator.prompt, None), case, device)
        self.generator = generator
        self.info = {"compile": "torch.compile (prefill and decode steps, static cache)" if generator.compiled
                     else "eager", "kv_cache": {"bytes": generator.cache.nbytes, "positions": generator.cache.length,
                                                "dtype": str(generator.cache.keys.dtype).replace("torch.", "")}}

    def step(self) -> torch.Tensor:
        return self.generator.generate()

    def sync(self, handle: object) -> None:
        """Nothing left to wait for: a request ends with its last token read on the host."""

    def generation_record(self) -> list[dict[str, Any]]:
        """Every request's TTFT and decode-step times (seconds), in order."""
        return self.generator.requests


def create_session(case: CaseSpec, device: torch.device) -> TorchSession:
    """Model, data and optimizer for ``case`` on ``device``, with no support checks (``build`` checks)."""
    workload = workloads.get(case.workload)
    if not workloads.is_builtin(case.workload):  # a plugin's model, batch and loss (backends.torch.plugin)
        from tribench.backends.torch import plugin

        built = plugin.plugin_session_parts(workload, case, device)
        session = TorchSession(built["model"], built["runner"], Batch(built["inputs"], built["targets"]), case,
                               device, loss=built["loss"])
        session.info = built["info"]
        return session
    spec = workload.architecture(case.size)
    if case.mode == "generate":
        from tribench.backends.torch import generate

        return GenerateSession(generate.make_generator(spec, case, device, AUTOCAST_DTYPES.get(case.precision),
                                                       _SYNC[device.type]), case, device)
    torch.manual_seed(workloads.SEED)
    model = models.build_model(spec).to(device)
    batch = synthetic_batch(spec, case.batch_size, device)
    if devices.uses_channels_last(device.type, models.is_cnn(spec)):
        model = model.to(memory_format=torch.channels_last)
        batch = Batch(batch.inputs.contiguous(memory_format=torch.channels_last), batch.targets)
    model.train(case.mode == "train")
    ranks = case.total_devices > 1  # a data-parallel case (tribench itself may run under torchrun: not the env)
    parallel = distributed.wrap(model, device) if ranks and case.mode == "train" else None
    wrapped = parallel or model
    runner = torch.compile(wrapped) if case.compile == "compiled" else wrapped
    session = TorchSession(model, runner, batch, case, device)
    session.info = {"compile": "torch.compile" if case.compile == "compiled" else "eager",
                    "fast_paths": fast_path_record(spec, case, device)}
    if ranks:  # the worker times the steps inside this (barrier; DDP join when training)
        session.distributed_scope = functools.partial(distributed.scope, parallel)
    return session


def fast_path_record(spec: Architecture, case: CaseSpec, device: torch.device) -> dict[str, dict[str, Any]]:
    """``build.fast_paths`` for ``case`` (``backends.torch.fast_paths``)."""
    dtype = AUTOCAST_DTYPES.get(case.precision, torch.float32)
    train = case.mode == "train"
    kernel = None
    if isinstance(spec, TransformerSpec):
        kernel = fast_paths.picked_attention_kernel(case.batch_size, spec.heads, spec.seq_len,
                                                    spec.d_model // spec.heads, dtype, device, train)
    elif isinstance(spec, DecoderSpec):
        kernel = fast_paths.picked_attention_kernel(case.batch_size, spec.heads, spec.seq_len, spec.head_dim,
                                                    dtype, device, train, kv_heads=spec.kv_heads, causal=True)
    recurrent = isinstance(spec, LSTMClassifierSpec | LSTMLanguageModelSpec)
    paths = fast_paths.record(cnn=models.is_cnn(spec), train=train, attention_kernel=kernel,
                              lstm=fast_paths.lstm_implementation(device.type, dtype, train) if recurrent else None,
                              device_type=device.type)
    if case.compile == "compiled" and "attention" in paths:
        paths["attention"]["note"] = "the kernel eager dispatch picks; under torch.compile Inductor lowers the call"
    return paths


# ---------------------------------------------------------------- backend


class TorchBackend:
    name = "torch"
    data_parallel = True  # --devices N: DistributedDataParallel, one process per device
    # imported once by a fork server (harness.fork_server): torch's optimizers import torch._dynamo when first
    # constructed, 1.1 s of every training process otherwise
    preload_modules = ("torch._dynamo",)

    def apply_threads(self, intra_op: int, inter_op: int) -> dict[str, Any]:
        """torch's intra-op (OpenMP) and inter-op pools, each set only where torch's own count differs.

        Calling ``torch.set_num_threads`` with the count torch already has is not a no-op: it also fixes
        MKL's and OpenMP's counts, and made transformer-tiny inference 7.5-8% slower on 2 CPUs in two
        runs of ``benchmarks/thread_policy.py``. The inter-op size can be set once, before any use.
        """
        calls = []
        if torch.get_num_threads() != intra_op:
            torch.set_num_threads(intra_op)
            calls.append("torch.set_num_threads")
        record: dict[str, Any] = {}
        if torch.get_num_interop_threads() != inter_op:
            try:
                torch.set_num_interop_threads(inter_op)
                calls.append("torch.set_num_interop_threads")
            except RuntimeError as error:  # already started: keep what it has, and say so
                record["inter_op_error"] = str(error)
        record["how"] = ", ".join(calls) or "torch's own counts already matched: nothing set"
        return {**record, "intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}

    def availability(self) -> Availability:
        present = _present_devices()
        return Availability(
            name=self.name,
            installed=True,
            version=torch.__version__,
            devices=present,
            device_names=_device_names(present),
            details=_build_details(),
            notes=_precision_notes(present) + ("tpu is not supported: it needs torch_xla",),
        )

    def build(self, case: CaseSpec) -> TorchSession:
        """Check the device and precision, then build; CaseSkipped says why a case cannot run here."""
        reason = skip_reason(case)
        if reason:
            raise CaseSkipped(reason)
        device = torch.device(devices.torch_device_type(case.device))
        if case.total_devices > 1:  # a data-parallel rank: join the group (env://), take cuda:LOCAL_RANK
            device = distributed.init(device.type)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        numeric = apply_numerics(case.precision, device.type)  # before the model exists: TF32 on or off
        session = create_session(case, device)
        session.info["numerics"] = numeric
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return session


def apply_numerics(precision: str, device_type: str) -> dict[str, str]:
    """The numeric policy (``harness.numerics``): on CUDA, TF32 matmuls and cuDNN convolutions only for tf32."""
    if device_type != "cuda":
        return numerics.host_numerics(device_type)
    tf32 = numerics.uses_tf32(precision)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    return numerics.gpu_numerics(precision, f"torch.backends.cuda.matmul.allow_tf32 = cudnn.allow_tf32 = {tf32}")


def skip_reason(case: CaseSpec) -> str | None:
    """Why ``case`` cannot run on this machine (device, compile mode, precision); None if it can."""
    reason = devices.device_skip_reason(
        case.device, cuda_available=torch.cuda.is_available(),
        mps_available=torch.backends.mps.is_available(), build=torch.__version__,
    )
    if reason:
        return reason
    if case.compile not in ("native", "compiled", "op-by-op"):
        return f"unknown compile mode {case.compile!r}; torch runs native, compiled or op-by-op"
    return devices.precision_skip_reason(case.precision, _device_facts(devices.torch_device_type(case.device)))


def backend() -> TorchBackend:
    return TorchBackend()
