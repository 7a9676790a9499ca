"""The PaddlePaddle backend: availability, and a Session per case (model, synthetic data, Adam, on device).

Decisions a reader of the results should know:

* Precision is mixed: parameters and Adam state stay fp32; the forward pass runs under
  ``paddle.amp.auto_cast`` (level O1) in bf16 or fp16; fp16 training scales the loss with
  ``paddle.amp.GradScaler``. Which device runs which precision: ``backends.paddle.devices``.
  ``tf32`` sets Paddle's ``FLAGS_allow_tf32_cublas`` and ``FLAGS_allow_tf32_cudnn`` on (off for the others).
* ``native`` and ``op-by-op`` are both dygraph (eager) Paddle, its users' default. ``compiled`` is
  ``paddle.jit.to_static(model, full_graph=True)``, with the CINN compiler pass where this Paddle was
  built with CINN (``paddle.is_compiled_with_cinn()``; the case records which). The loss, backward and
  optimizer step around the model stay eager, as in the PyTorch backend; the first step, which
  converts and compiles, is timed apart by the harness.
* ``sync``: ``paddle.device.cuda.synchronize`` on a GPU; on the CPU every dygraph op has finished when it
  returns, so there is nothing to wait for.
* Memory: on a GPU ``paddle.device.cuda.max_memory_allocated`` / ``max_memory_reserved`` since the window's
  reset; a CPU build keeps no allocator statistics (the API refuses), so the harness's peak RSS stands.
* Threads: ``paddle.base.core.set_num_threads`` sizes the CPU math library's pool (oneDNN / MKL / OpenBLAS);
  dygraph runs ops on the calling thread, so there is no inter-op pool to size.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paddle
import paddle.nn.functional as F

from tribench.backends.base import Availability, CaseSkipped, MemoryReading
from tribench.backends.paddle import devices, distributed, models
from tribench.backends.paddle.amp import autocast
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

NAME = "paddle"
COMPILE_MODES = ("native", "compiled", "op-by-op")
CPU_MEMORY_REASON = ("a CPU build of Paddle keeps no allocator statistics (paddle.device.max_memory_allocated "
                     "is GPU/XPU only); the harness records the host process peak RSS")
NO_CINN = ("paddle.jit.to_static (without CINN: this Paddle was built without it, or the case is not on a GPU; the "
           "converted program runs on Paddle's executor)")
WITH_CINN = "paddle.jit.to_static with the CINN compiler pass"


# ---------------------------------------------------------------- facts about this machine


def _cpu_flags() -> frozenset[str]:
    return cpuinfo.parse_flags(cpuinfo.read_cpuinfo()) if platform.system() == "Linux" else frozenset()


def _cpu_name() -> str:
    return cpuinfo.parse_model(cpuinfo.read_cpuinfo()) or platform.processor() or platform.machine()


def gpu_count() -> int:
    """GPUs this Paddle can use: 0 on a CPU build (which cannot ask CUDA at all)."""
    if not (paddle.is_compiled_with_cuda() or paddle.is_compiled_with_rocm()):
        return 0
    return int(paddle.device.cuda.device_count())


def device_facts(device: str) -> devices.DeviceFacts:
    """The facts the precision rules need, read from the live device of kind ``device``."""
    if device == "gpu":
        major, minor = paddle.device.cuda.get_device_capability()
        return devices.DeviceFacts("gpu", name=paddle.device.cuda.get_device_name(),
                                   rocm=paddle.is_compiled_with_rocm(), compute_capability=(int(major), int(minor)))
    return devices.DeviceFacts("cpu", name=_cpu_name(), cpu_flags=_cpu_flags())


def other_accelerators() -> dict[str, int]:
    """Devices Paddle drives that tribench's device axis has no kind for: Kunlun XPUs and custom devices (an
    Ascend NPU registers as the custom type "npu"); kind -> count."""
    found: dict[str, int] = {}
    if paddle.is_compiled_with_xpu():
        found["xpu"] = int(paddle.device.xpu.device_count())
    for kind in paddle.device.get_all_custom_device_type() or []:
        found[str(kind)] = len([name for name in paddle.device.get_available_custom_device() or []
                                if str(name).split(":")[0] == kind])
    return {kind: count for kind, count in found.items() if count}


def _build_details() -> dict[str, Any]:
    return {
        "cuda": paddle.version.cuda() if paddle.is_compiled_with_cuda() else None,
        "cudnn": paddle.version.cudnn() if paddle.is_compiled_with_cuda() else None,
        "rocm": paddle.is_compiled_with_rocm(),
        "cinn": paddle.is_compiled_with_cinn(),
        "distributed": paddle.is_compiled_with_distribute(),
        "xpu": paddle.is_compiled_with_xpu(),
        "custom_devices": list(paddle.device.get_all_custom_device_type() or []),
        "commit": paddle.version.commit,
    }


def _present_devices() -> tuple[str, ...]:
    return ("cpu", "gpu") if gpu_count() else ("cpu",)


def _notes(present: tuple[str, ...]) -> tuple[str, ...]:
    notes = []
    for kind in present:
        facts = device_facts(kind)
        for precision in devices.LOW_PRECISIONS:
            reason = devices.precision_skip_reason(precision, facts)
            if reason:
                notes.append(f"{precision} on {kind} is skipped: {reason}")
    for kind, count in other_accelerators().items():
        notes.append(f"{count} {kind} device(s) found: tribench's device axis (cpu, gpu, tpu, mps) has no kind for "
                     f"{kind}, so no case runs there")
    if not paddle.is_compiled_with_cinn():
        notes.append("compiled: " + NO_CINN)
    return tuple(notes) + ("tpu and mps are not PaddlePaddle devices",)


def availability() -> Availability:
    present = _present_devices()
    names = {"cpu": _cpu_name()}
    if "gpu" in present:
        names["gpu"] = paddle.device.cuda.get_device_name()
    names.update({kind: f"{count} x {kind}" for kind, count in other_accelerators().items()})
    return Availability(name=NAME, installed=True, version=paddle.__version__, devices=present, device_names=names,
                        details=_build_details(), notes=_notes(present))


# ---------------------------------------------------------------- synthetic data and loss


@dataclass(frozen=True)
class Batch:
    inputs: Any   # paddle.Tensor
    targets: Any  # paddle.Tensor


def synthetic_batch(spec: Architecture, batch_size: int) -> Batch:
    """One fixed batch on the current device, generated from ``paddle.seed(workloads.SEED)``."""
    paddle.seed(workloads.SEED)
    if isinstance(spec, ConvNetSpec | ResNetSpec):
        images = paddle.randn([batch_size, spec.channels, spec.height, spec.width])
        return Batch(images, paddle.randint(0, spec.classes, [batch_size]))
    if isinstance(spec, LSTMClassifierSpec):
        sequences = paddle.randn([batch_size, spec.timesteps, spec.features])
        return Batch(sequences, paddle.randint(0, spec.classes, [batch_size]))
    if isinstance(spec, LSTMLanguageModelSpec | DecoderSpec):  # next-token prediction
        length = spec.timesteps if isinstance(spec, LSTMLanguageModelSpec) else spec.seq_len
        tokens = paddle.randint(0, spec.vocab, [batch_size, length + 1])
        return Batch(tokens[:, :-1], tokens[:, 1:])
    if isinstance(spec, TransformerSpec):
        tokens = paddle.randint(0, spec.vocab, [batch_size, spec.seq_len])
        return Batch(tokens, paddle.randint(0, spec.vocab, [batch_size, spec.seq_len]))
    raise TypeError(f"no synthetic data for architecture {spec!r}")


def cross_entropy(logits: Any, targets: Any) -> Any:
    """Mean softmax cross-entropy over every sample (or every position of a sequence), computed in fp32."""
    classes = logits.shape[-1]
    return F.cross_entropy(logits.reshape([-1, classes]).astype("float32"), targets.reshape([-1]))


# ---------------------------------------------------------------- session


class PaddleSession:
    """A built case: ``step`` runs one train or inference step and returns a device tensor."""

    def __init__(self, model: Any, runner: Callable[[Any], Any], batch: Batch, case: CaseSpec, device: str,
                 loss: Callable[[Any, Any], Any] | None = None) -> None:
        self.model = model            # the paddle.nn.Layer (parameters, counts)
        self._runner = runner         # the model, to_static(model) or DataParallel(model); a plugin's: fed its inputs
        self._loss = loss or cross_entropy
        self._batch = batch
        self._device = device         # "cpu" | "gpu"
        self._precision = case.precision
        self._train = case.mode == "train"
        self._optimizer = (paddle.optimizer.Adam(learning_rate=workloads.LEARNING_RATE,
                                                 parameters=model.parameters()) if self._train else None)
        scaled = devices.uses_grad_scaler(case.precision, case.mode)
        self._scaler = paddle.amp.GradScaler() if scaled else None
        self.info: dict[str, Any] = {}

    def step(self) -> Any:
        """Train: forward, loss, backward, Adam step; returns the loss. Infer: returns the logits."""
        return self._train_step() if self._train else self._infer_step()

    def _train_step(self) -> Any:
        with autocast(self._precision):
            loss = self._loss(self._runner(self._batch.inputs), self._batch.targets)
        if self._scaler is None:
            loss.backward()
            self._optimizer.step()
        else:
            self._scaler.scale(loss).backward()
            self._scaler.step(self._optimizer)
            self._scaler.update()
        self._optimizer.clear_grad(set_to_zero=False)  # free the gradients, as torch's zero_grad(set_to_none=True)
        return loss.detach()

    def _infer_step(self) -> Any:
        with paddle.no_grad(), autocast(self._precision):
            return self._runner(self._batch.inputs)

    def sync(self, handle: object) -> None:
        """Wait for the GPU. CPU dygraph ops are synchronous: the handle is already computed."""
        if self._device == "gpu":
            paddle.device.cuda.synchronize()

    def mark_window(self) -> None:
        """Restart the GPU allocator's peaks at the end of the compile step; note what is allocated then."""
        if self._device == "gpu":
            paddle.device.cuda.synchronize()
            paddle.device.cuda.reset_max_memory_allocated()
            paddle.device.cuda.reset_max_memory_reserved()
            self._window_base = float(paddle.device.cuda.memory_allocated())

    def memory(self) -> MemoryReading:
        if self._device != "gpu":
            return (Reading.unavailable("peak_allocated", "bytes", "paddle (CPU allocator)", "process",
                                        CPU_MEMORY_REASON),)
        base = getattr(self, "_window_base", None)
        span = AFTER_COMPILE if base is not None else "since the process started (no window mark)"
        peak = float(paddle.device.cuda.max_memory_allocated())
        growth_source = ("paddle.device.cuda.max_memory_allocated minus paddle.device.cuda.memory_allocated at the "
                         "window's start")
        return (
            Reading("peak_allocated", "bytes", "paddle.device.cuda.max_memory_allocated", "process", peak, span=span),
            Reading("peak_reserved", "bytes", "paddle.device.cuda.max_memory_reserved", "process",
                    float(paddle.device.cuda.max_memory_reserved()), span=span),
            Reading("peak_allocated_growth", "bytes", growth_source, "process", peak - base, span=span)
            if base is not None else Reading.unavailable("peak_allocated_growth", "bytes", growth_source, "process",
                                                         "the window was never marked", span),
        )

    def param_count(self) -> int:
        return models.trainable_params(self.model)

    def data_parallel_devices(self) -> list[str]:
        """The one device this rank drives (a data-parallel rank is one process per device)."""
        return [str(paddle.device.get_device())]

    def profile(self, steps: int, folder: Path) -> dict:
        """Optional protocol method: trace ``steps`` steps with paddle.profiler (backends.paddle.profiling)."""
        from tribench.backends.paddle import profiling

        return profiling.profile(self, steps, folder)


class GenerateSession(PaddleSession):
    """A PaddleSession whose step is one generation request (``backends.paddle.generate``)."""

    def __init__(self, generator: Any, case: CaseSpec, device: str) -> None:
        super().__init__(generator.model, generator.model, Batch(generator.prompt, None), case, device)
        self.generator = generator
        cache = generator.cache
        self.info = {"compile": "paddle.jit.to_static (prefill and decode steps, static cache)" if generator.compiled
                     else "dygraph (eager)",
                     "kv_cache": {"bytes": cache.nbytes, "positions": cache.length,
                                  "dtype": str(cache.keys.dtype).replace("paddle.", "")}}

    def step(self) -> Any:
        return self.generator.generate()

    def sync(self, handle: object) -> None:
        """Nothing left to wait for: a request ends with its last token read on the host."""

    def generation_record(self) -> list[dict[str, Any]]:
        """Every request's TTFT and decode-step times (seconds), in order."""
        return self.generator.requests


def compiled_runner(model: Any, device: str) -> tuple[Any, str]:
    """``paddle.jit.to_static`` of ``model`` (the whole forward as one program), with CINN where Paddle was built
    with it and the case is on a GPU (Paddle applies CINN to CUDA places only)."""
    if paddle.is_compiled_with_cinn() and device == "gpu":
        strategy = paddle.static.BuildStrategy()
        strategy.build_cinn_pass = True
        return paddle.jit.to_static(model, full_graph=True, build_strategy=strategy), WITH_CINN
    return paddle.jit.to_static(model, full_graph=True), NO_CINN


def plugin_session(case: CaseSpec, device: str) -> PaddleSession:
    """A plugin workload's model, batch and loss (``backends.paddle.plugin``) in a session; one device."""
    from tribench.backends.paddle import plugin

    built = plugin.plugin_session_parts(workloads.get(case.workload), case)
    runner, how = (compiled_runner(built["model"], device) if case.compile == "compiled"
                   else (built["model"], "dygraph (eager)"))
    session = PaddleSession(built["model"], plugin.feeder(runner), Batch(built["inputs"], built["targets"]), case,
                            device, loss=built["loss"])
    session.info = {"compile": how, **built["info"]}
    return session


def create_session(case: CaseSpec, device: str) -> PaddleSession:
    """Model, data and optimizer for ``case`` on the current device, with no support checks (``build`` checks)."""
    if not workloads.is_builtin(case.workload):
        return plugin_session(case, device)
    spec = workloads.get(case.workload).architecture(case.size)
    if case.mode == "generate":
        from tribench.backends.paddle import generate

        sync = paddle.device.cuda.synchronize if device == "gpu" else (lambda: None)
        return GenerateSession(generate.make_generator(spec, case, sync), case, device)
    paddle.seed(workloads.SEED)
    model = models.build_model(spec)
    model.train() if case.mode == "train" else model.eval()
    batch = synthetic_batch(spec, case.batch_size)
    ranks = case.total_devices > 1
    runner, how = compiled_runner(model, device) if case.compile == "compiled" else (model, "dygraph (eager)")
    if ranks and case.mode == "train":  # around the converted model: to_static cannot convert DataParallel's forward
        runner = paddle.DataParallel(runner)
    session = PaddleSession(model, runner, batch, case, device)
    session.info = {"compile": how}
    if ranks:  # the worker times the steps inside this (a barrier before and after)
        session.distributed_scope = distributed.scope
    return session


# ---------------------------------------------------------------- backend


def apply_numerics(precision: str, device: str) -> dict[str, str]:
    """The numeric policy (``harness.numerics``): on a GPU, TF32 matmuls and convolutions only for tf32."""
    if device != "gpu":
        return numerics.host_numerics(device)
    tf32 = numerics.uses_tf32(precision)
    paddle.set_flags({"FLAGS_allow_tf32_cublas": tf32, "FLAGS_allow_tf32_cudnn": tf32})
    return numerics.gpu_numerics(precision, f"paddle.set_flags FLAGS_allow_tf32_cublas = FLAGS_allow_tf32_cudnn = "
                                            f"{tf32}")


def skip_reason(case: CaseSpec) -> str | None:
    """Why ``case`` cannot run on this machine (device, compile mode, precision); None if it can."""
    reason = devices.device_skip_reason(case.device, gpu_available=gpu_count() > 0, build=paddle.__version__)
    if reason:
        return reason
    if case.compile not in COMPILE_MODES:
        return f"unknown compile mode {case.compile!r}; paddle runs {', '.join(COMPILE_MODES)}"
    return devices.precision_skip_reason(case.precision, device_facts(case.device))


class PaddleBackend:
    name = NAME
    data_parallel = True  # --devices N: paddle.DataParallel, one process per device (backends.paddle.distributed)

    def availability(self) -> Availability:
        return availability()

    def apply_threads(self, intra_op: int, inter_op: int) -> dict[str, Any]:
        """The CPU math library's pool (``paddle.base.core.set_num_threads``); Paddle has no getter, so the count
        recorded is the one set. Dygraph runs ops on the calling thread: no inter-op pool exists."""
        paddle.base.core.set_num_threads(intra_op)
        return {"how": "paddle.base.core.set_num_threads (the CPU math library's pool)", "intra_op": intra_op,
                "inter_op": None, "inter_op_note": "dygraph runs each op on the calling thread: no inter-op pool"}

    def build(self, case: CaseSpec) -> PaddleSession:
        """Check the device and precision, then build; CaseSkipped says why a case cannot run here."""
        reason = skip_reason(case)
        if reason:
            raise CaseSkipped(reason)
        local_rank = distributed.init(case.device) if case.total_devices > 1 else 0
        paddle.set_device(devices.place_of(case.device, local_rank))
        numeric = apply_numerics(case.precision, case.device)  # before the model exists
        session = create_session(case, case.device)
        session.info["numerics"] = numeric
        if case.device == "gpu":
            paddle.device.cuda.synchronize()
        return session


def backend() -> PaddleBackend:
    return PaddleBackend()
