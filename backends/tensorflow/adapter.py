"""The TensorFlow backend: Keras 3 models trained by a custom ``tf.function`` step.

``build`` places the model, the Adam optimizer and one fixed synthetic batch on the
case's device and traces nothing yet: the first ``step`` traces (and, in compiled
mode, XLA-compiles) the function, which the harness times separately. A train step
is forward, loss, ``GradientTape`` backward and ``optimizer.apply`` in one
``tf.function``; ``model.fit`` is not used, so one call is exactly one step.

Compile modes: ``eager`` = ``tf.function`` graph, ``compiled`` =
``tf.function(jit_compile=True)`` (XLA). Precisions map to Keras dtype policies
(``mixed_bfloat16``, ``mixed_float16`` with a ``LossScaleOptimizer``); variables
stay float32 and the logits and loss are float32. GPU memory growth is switched
on before the runtime starts, so the allocator grows with the model instead of
reserving the whole GPU.

Data-parallel cases (``--devices N`` and/or ``--nodes M``, issue 8) run in one worker process
per host and are built by ``backends.tensorflow.parallel``: ``MirroredStrategy`` over the first N
local devices (``MultiWorkerMirroredStrategy`` across hosts, the cluster from TF_CONFIG or SLURM),
model and optimizer created in ``strategy.scope()``, the same train step run on every replica by
``strategy.run`` (``distribute``) on its own ``batch_size`` rows of the one-device generator's
N x ``batch_size`` batch, gradients summed by the optimizer's all-reduce and the loss reduced to the
global mean. On a CPU the N devices are logical devices that split one CPU (the same cores and
thread pools), so CPU scaling figures measure the runtime's data-parallel overhead, not hardware
scaling. Compiled (XLA) data-parallel cases run on GPUs only (see ``devices.XLA_PARALLEL_REASON``).
A TPU case already runs on all of the TPU's cores (``TPUStrategy``), with the same per-replica
loss share as the data-parallel path.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import platform
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from tribench.backends.tensorflow.devices import require_keras_on_tensorflow

require_keras_on_tensorflow(os.environ)  # before TensorFlow imports Keras

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tribench.backends.base import Availability, CaseSkipped, MemoryReading  # noqa: E402
from tribench.backends.tensorflow import devices, fast_paths  # noqa: E402
from tribench.backends.tensorflow.models import build_model, input_signature  # noqa: E402
from tribench.core.spec import CaseSpec  # noqa: E402
from tribench.harness import cpuinfo, numerics  # noqa: E402
from tribench.harness.probes.memory import AFTER_COMPILE  # noqa: E402
from tribench.suites.workloads import (  # noqa: E402
    LEARNING_RATE,
    SEED,
    Architecture,
    ConvNetSpec,
    DecoderSpec,
    LSTMClassifierSpec,
    LSTMLanguageModelSpec,
    ResNetSpec,
    TransformerSpec,
)

NAME = "tensorflow"
INSTALL_HINT = "pip install -e '.[tensorflow]'"
ONEDNN_VAR = "TF_ENABLE_ONEDNN_OPTS"


# ---------------------------------------------------------------- runtime facts


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its oneDNN kernels in this process; None when this build cannot say.

    Not a build fact: x86 builds turn oneDNN on by default only on CPUs with AVX512_VNNI,
    AVX512_BF16 or AMX (TensorFlow 2.9 release notes), else only with TF_ENABLE_ONEDNN_OPTS=1,
    and TensorFlow's CPU allocator keeps statistics only then. The query is TensorFlow's own
    (``IsMklEnabled``, from an internal module: hence the guard).
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def enable_memory_growth() -> dict[str, Any]:
    """Switch GPU memory growth on (possible only before the runtime starts); say what happened."""
    gpus = tf.config.list_physical_devices("GPU")
    error = None
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as exc:  # the runtime is already initialised
            error = str(exc)
    enabled = bool(gpus) and all(tf.config.experimental.get_memory_growth(gpu) for gpu in gpus)
    facts: dict[str, Any] = {"gpus": len(gpus), "enabled": enabled}
    if error:
        facts["error"] = error
    return facts


def gpu_details() -> list[dict[str, Any]]:
    """Name and compute capability ("8.0"; None off CUDA) of every GPU TensorFlow sees."""
    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        info = tf.config.experimental.get_device_details(gpu)
        capability = info.get("compute_capability")
        found.append({
            "name": info.get("device_name", gpu.name),
            "compute_capability": ".".join(map(str, capability)) if capability else None,
        })
    return found


def _gpu_capability() -> tuple[int, int] | None:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    return tuple(capability) if capability else None


def _gpu_build(build_info: dict[str, Any]) -> bool:
    return bool(build_info.get("is_cuda_build") or build_info.get("is_rocm_build"))


def _json_friendly(info: dict[str, Any]) -> dict[str, Any]:
    return {key: value if isinstance(value, bool | int | float) else str(value) for key, value in info.items()}


def connect_tpu() -> tf.distribute.TPUStrategy:
    """Initialise the attached TPU system and return its strategy; CaseSkipped when there is none."""
    target = devices.tpu_resolver_target(os.environ)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=target)
        if target != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CaseSkipped(devices.device_problem("tpu", gpu_count=0, gpu_build=False, tpu_error=message)) from exc
    return tf.distribute.TPUStrategy(resolver)


def _tpu_status() -> tuple[bool, str]:
    """(attached, how we know) without touching a TPU where none can be."""
    libtpu = importlib.util.find_spec("libtpu") is not None
    if not devices.tpu_worth_probing(os.environ, libtpu):
        return False, "no TPU address (TPU_NAME / COLAB_TPU_ADDR) and libtpu is not installed"
    try:
        strategy = connect_tpu()
    except CaseSkipped as exc:
        return False, str(exc)
    return True, f"{strategy.num_replicas_in_sync} TPU cores"


def availability() -> Availability:
    """Version, usable devices and the build facts that change results."""
    memory_growth = enable_memory_growth()
    build_info = _json_friendly(dict(tf.sysconfig.get_build_info()))
    gpus = gpu_details()
    tpu_attached, tpu_status = _tpu_status()
    kinds = ("cpu",) + (("gpu",) if gpus else ()) + (("tpu",) if tpu_attached else ())
    names = {"cpu": f"{platform.machine()} host, {os.cpu_count()} logical cores"}
    if gpus:
        names["gpu"] = gpus[0]["name"]
    if tpu_attached:
        names["tpu"] = tpu_status
    details = {
        "keras_version": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "build_info": build_info,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "threads_note": "0 means TensorFlow picks the thread count",
        ONEDNN_VAR: os.environ.get(ONEDNN_VAR, "unset"),
        "onednn_enabled": onednn_enabled(),
        "gpu_memory_growth": memory_growth,
        "gpus": gpus,
        "tpu": tpu_status,
    }
    return Availability(
        name=NAME, installed=True, version=tf.__version__, devices=kinds, device_names=names,
        install_hint=INSTALL_HINT, details=details, notes=_notes(build_info),
    )


def _notes(build_info: dict[str, Any]) -> tuple[str, ...]:
    notes = [
        "bf16/fp16 on CPU run only where the CPU has instructions for them (see harness/cpuinfo.py)",
        "compiled (XLA) RNN cases use Keras's generic LSTM loop: cuDNN's LSTM cannot be XLA-compiled",
    ]
    if not _gpu_build(build_info):
        notes.append("this TensorFlow build has no CUDA/ROCm support: CPU only")
    return tuple(notes)


# ---------------------------------------------------------------- data and training


def synthetic_batch(spec: Architecture, batch_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """One fixed (inputs, targets) batch from ``SEED``, created on the current device."""
    shape, dtype = input_signature(spec)
    if isinstance(spec, LSTMLanguageModelSpec | DecoderSpec):  # next-token prediction
        length = spec.timesteps if isinstance(spec, LSTMLanguageModelSpec) else spec.seq_len
        tokens = _uniform_ints((batch_size, length + 1), spec.vocab, 0)
        return tokens[:, :-1], tokens[:, 1:]
    if isinstance(spec, TransformerSpec):
        targets = _uniform_ints((batch_size, spec.seq_len), spec.vocab, 1)
        return _uniform_ints((batch_size,) + shape, spec.vocab, 0), targets
    inputs = tf.random.stateless_normal((batch_size,) + shape, seed=[SEED, 0], dtype=dtype)
    return inputs, _uniform_ints((batch_size,), spec.classes, 1)


def _uniform_ints(shape: tuple[int, ...], high: int, stream: int) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed=[SEED, stream], minval=0, maxval=high, dtype=tf.int32)


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Build layers under the Keras dtype policy ``name``, then restore the previous one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def make_optimizer(precision: str, variables: list) -> keras.optimizers.Optimizer:
    """Adam(LEARNING_RATE), wrapped for dynamic loss scaling under fp16, with its slots built."""
    optimizer = keras.optimizers.Adam(learning_rate=LEARNING_RATE)
    if precision == "fp16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(variables)
    return optimizer


def train_step_fn(model: keras.Model, optimizer, inputs, targets, distributed: bool = False,
                  loss_function: Callable[[Any, Any], tf.Tensor] | None = None) -> Callable[[], tf.Tensor]:
    """forward, mean cross-entropy, backward, Adam update; returns the float32 loss.

    ``distributed``: the step runs on every replica of a ``tf.distribute`` strategy (inside
    ``strategy.run``), whose optimizer sums the replicas' gradients. The loss is then taken per
    element (Keras's reduced losses would divide by the replica count themselves, silently) and the
    step's loss is this replica's share of the global mean: its own mean / the replicas in sync.
    Summed over replicas (``distribute``), the gradients and the losses are those of the global mean.
    ``loss_function(outputs, targets)`` replaces the cross-entropy (a plugin workload's own, one device).
    """
    variables = model.trainable_variables
    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=None if distributed else "sum_over_batch_size")

    def loss_of(logits: tf.Tensor) -> tf.Tensor:
        if loss_function is not None:
            return loss_function(logits, targets)
        value = loss_fn(targets, logits)
        if not distributed:
            return value
        return tf.reduce_mean(value) / tf.distribute.get_replica_context().num_replicas_in_sync

    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_of(model(inputs, training=True))
            scaled = optimizer.scale_loss(loss)
        optimizer.apply(tape.gradient(scaled, variables), variables)
        return loss

    return step


def infer_step_fn(model: keras.Model, inputs) -> Callable[[], tf.Tensor]:
    """The forward pass in inference mode (no tape, so no gradient tracking)."""
    return lambda: model(inputs, training=False)


def fast_path_record(spec: Architecture, case: CaseSpec, *, graph: bool, xla: bool) -> dict[str, dict[str, Any]]:
    """``build.fast_paths`` for ``case`` (``backends.tensorflow.fast_paths``)."""
    return fast_paths.record(
        cnn=isinstance(spec, ConvNetSpec | ResNetSpec), transformer=isinstance(spec, TransformerSpec | DecoderSpec),
        recurrent=isinstance(spec, LSTMClassifierSpec | LSTMLanguageModelSpec), train=case.mode == "train",
        device=case.device, graph=graph, xla=xla)


def placed_on(device: str, step: Callable) -> Callable:
    """Pin every op of the traced step to ``device`` (else a GPU would take a CPU case's ops)."""

    def placed():
        with tf.device(device):
            return step()

    return placed


def distribute(strategy: tf.distribute.Strategy, step: Callable, mode: str, args: tuple = ()) -> Callable:
    """Run ``step(*args)`` on every replica (``args``: per-replica values); a train step returns the global mean loss.

    A distributed train step returns its replica's share of the global mean (``train_step_fn``), so
    the shares are summed.
    """
    if mode == "train":
        return lambda: strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(step, args=args), axis=None)
    return lambda: strategy.run(step, args=args)


# ---------------------------------------------------------------- session


class TensorFlowSession:
    """One built case: call ``step`` for a step's handle, ``sync`` to wait for it."""

    def __init__(self, step: Callable[[], Any], model: keras.Model, kind: str, mode: str,
                 info: dict[str, Any]) -> None:
        self._step = step
        self._model = model
        self._kind = kind
        self._sync_by_loss = devices.sync_by_loss(mode)
        self.info = info        # how the case was built: device, policy, memory growth, ...

    @property
    def model(self) -> keras.Model:
        return self._model

    def step(self) -> object:
        return self._step()

    def sync(self, handle: object) -> None:
        """Train: read the scalar loss on the host, then, on an accelerator, wait on every device so that the
        variable updates queued after the loss are done too (on the CPU a tf.function call returns only when
        all its ops, updates included, have run). Infer: wait on every device (no output copy)."""
        if self._sync_by_loss:
            handle.numpy()
            if self._kind != "cpu":
                tf.test.experimental.sync_devices()
        else:
            tf.test.experimental.sync_devices()

    def mark_window(self) -> None:
        """Restart the allocator's peak at the end of the compile step; note what is in use then."""
        _reset_memory_stats(self._kind)
        try:
            self._window_base = tf.config.experimental.get_memory_info(devices.memory_device(self._kind))["current"]
        except ValueError:  # no statistics here (CPU without oneDNN): memory() says so
            self._window_base = None

    def memory(self) -> MemoryReading:
        device = devices.memory_device(self._kind)
        base = getattr(self, "_window_base", None)
        try:
            peak = tf.config.experimental.get_memory_info(device)["peak"]
        except ValueError as exc:
            reading = devices.peak_memory_reading(self._kind, None, str(exc))
            return (replace(reading, span=AFTER_COMPILE),
                    devices.growth_reading(self._kind, None, None, str(exc)))
        return (replace(devices.peak_memory_reading(self._kind, peak), span=AFTER_COMPILE),
                devices.growth_reading(self._kind, peak, base))

    def param_count(self) -> int:
        return sum(math.prod(variable.shape) for variable in self._model.trainable_variables)

    def profile(self, steps: int, folder: Path) -> dict:
        """Optional protocol method: trace ``steps`` steps with tf.profiler (backends.tensorflow.profiling)."""
        from tribench.backends.tensorflow import profiling

        return profiling.profile(self, steps, folder)


def _reset_memory_stats(kind: str) -> None:
    """Start the allocator peak from what build left resident (weights, slots, batch)."""
    with contextlib.suppress(ValueError):  # CPU without oneDNN keeps no statistics; memory() says so
        tf.config.experimental.reset_memory_stats(devices.memory_device(kind))


# ---------------------------------------------------------------- backend


def apply_threads(intra_op: int, inter_op: int) -> dict[str, Any]:
    """TensorFlow's intra- and inter-op pools: settable only before the runtime starts (the worker's first act)."""
    record: dict[str, Any] = {"how": "tf.config.threading.set_intra_op_parallelism_threads, "
                                     "set_inter_op_parallelism_threads"}
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError as error:  # the runtime already started: its own counts stand, and are reported
        record["error"] = str(error)
    return {**record, "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


def build_single(case: CaseSpec, spec: Architecture, memory_growth: dict[str, Any]) -> TensorFlowSession:
    """The session of a case on one device (or one TPU through TPUStrategy)."""
    strategy = check_case(case)
    replicas = strategy.num_replicas_in_sync if strategy else 1
    batch = devices.per_replica_batch(case.batch_size, replicas)
    xla = case.compile == "compiled"
    device = devices.TF_DEVICES[case.device]
    numeric = apply_numerics(case.precision, case.device)  # before any op: TF32 on or off
    with strategy.scope() if strategy else tf.device(device), \
            dtype_policy(devices.DTYPE_POLICIES[case.precision]):
        keras.utils.set_random_seed(SEED)
        model = build_model(spec, xla=xla)
        inputs, targets = _data(spec, batch, strategy)
        if case.mode == "train":
            optimizer = make_optimizer(case.precision, model.trainable_variables)
            step = train_step_fn(model, optimizer, inputs, targets, distributed=strategy is not None)
        else:
            step = infer_step_fn(model, inputs)
    graph = case.compile != "op-by-op"  # op-by-op: eager TensorFlow, every op dispatched on its own
    if strategy:   # a TPU compiles every step with XLA; jit_compile does not apply
        function = tf.function(distribute(strategy, step, case.mode))
    elif graph:
        function = tf.function(placed_on(device, step), jit_compile=xla)
    else:
        function = placed_on(device, step)
    info = {
        "tf_device": "TPUStrategy" if strategy else device, "replicas": replicas, "tf_function": graph,
        "dtype_policy": devices.DTYPE_POLICIES[case.precision], "jit_compile": xla,
        "gpu_memory_growth": memory_growth, "numerics": numeric,
        "fast_paths": fast_path_record(spec, case, graph=graph or strategy is not None, xla=xla),
    }
    return TensorFlowSession(function, model, case.device, case.mode, info)


def check_case(case: CaseSpec) -> tf.distribute.TPUStrategy | None:
    """Refuse what this machine cannot run as specified; connect the TPU when one is asked for.

    The cheap refusals come first, so a TPU is initialised only for a case it can run.
    """
    kind = case.device
    capability = _gpu_capability() if kind == "gpu" else None
    problem = (
        devices.device_problem(
            kind, gpu_count=len(tf.config.list_physical_devices("GPU")),
            gpu_build=_gpu_build(dict(tf.sysconfig.get_build_info())), tpu_error=None,
        )
        or devices.compile_problem(kind, case.compile)
        or devices.precision_problem(kind, case.precision, capability,
                                     cpuinfo.parse_flags(cpuinfo.read_cpuinfo()))
    )
    if problem:
        raise CaseSkipped(problem)
    return connect_tpu() if kind == "tpu" else None


def _data(spec: Architecture, batch: int, strategy) -> tuple[Any, Any]:
    """The fixed batch; under a TPU strategy held in (mirrored) variables so it lives on the cores."""
    inputs, targets = synthetic_batch(spec, batch)
    if strategy is None:
        return inputs, targets
    return tf.Variable(inputs, trainable=False), tf.Variable(targets, trainable=False)


def apply_numerics(precision: str, device: str) -> dict[str, str]:
    """The numeric policy (``harness.numerics``): on a GPU, TF32 execution only for tf32 (TensorFlow's default: on)."""
    if device != "gpu":
        return numerics.host_numerics(device)
    tf32 = numerics.uses_tf32(precision)
    tf.config.experimental.enable_tensor_float_32_execution(tf32)
    return numerics.gpu_numerics(precision, f"tf.config.experimental.enable_tensor_float_32_execution({tf32})")
