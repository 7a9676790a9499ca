"""Pure decisions of the TensorFlow backend: which device, precision and compile mode it can run.

Nothing here imports TensorFlow. Each function takes plain facts (a device
kind, a compute capability, a replica count) and returns either a value or
``None`` / a sentence saying why the case cannot run, so the GPU and TPU
branches are tested on a machine that has neither.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from tribench.backends.base import CaseSkipped
from tribench.core.readings import Reading
from tribench.harness import cpuinfo, numerics

KERAS_BACKEND_VAR = "KERAS_BACKEND"

# CaseSpec.device -> the TensorFlow device the session places its work on
TF_DEVICES = {"cpu": "/CPU:0", "gpu": "/GPU:0", "tpu": "/TPU:0"}

# CaseSpec.precision -> Keras 3 dtype policy (variables stay float32 under the mixed ones)
DTYPE_POLICIES = {"fp32": "float32", "tf32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}

BF16_MIN_CAPABILITY = (8, 0)   # Ampere: bf16 tensor cores
FP16_MIN_CAPABILITY = (7, 0)   # Volta: fp16 tensor cores

TPU_ENV_VARS = ("TPU_NAME", "COLAB_TPU_ADDR")


def keras_backend_problem(value: str | None) -> str | None:
    """Why the ``KERAS_BACKEND`` value rules this backend out, or None if it is fine."""
    if value in (None, "", "tensorflow"):
        return None
    return (
        f"{KERAS_BACKEND_VAR}={value!r} is set in the environment, but the tensorflow backend runs "
        f"Keras on TensorFlow: unset {KERAS_BACKEND_VAR} or set it to 'tensorflow'"
    )


def require_keras_on_tensorflow(environ: MutableMapping[str, str]) -> None:
    """Point Keras at TensorFlow unless told otherwise; refuse a different backend.

    Must run before ``import tensorflow``: TensorFlow imports Keras, which reads the
    variable once, at import.
    """
    environ.setdefault(KERAS_BACKEND_VAR, "tensorflow")
    problem = keras_backend_problem(environ[KERAS_BACKEND_VAR])
    if problem:
        raise CaseSkipped(problem)


def device_problem(kind: str, *, gpu_count: int, gpu_build: bool, tpu_error: str | None) -> str | None:
    """Why ``kind`` cannot be used here, or None.

    ``gpu_build``: TensorFlow was built with CUDA or ROCm. ``tpu_error``: why connecting to a
    TPU failed (None when connected; only consulted for ``kind == "tpu"``).
    """
    if kind == "cpu":
        return None
    if kind == "gpu":
        if not gpu_build:
            return "this TensorFlow build has no GPU support (built without CUDA or ROCm)"
        if gpu_count == 0:
            return "TensorFlow sees no GPU (check the driver and CUDA_VISIBLE_DEVICES)"
        return None
    if kind == "tpu":
        return f"no TPU attached: {tpu_error}" if tpu_error else None
    if kind == "mps":
        return (
            "TensorFlow has no 'mps' device; with the tensorflow-metal plugin an Apple GPU "
            "is listed as 'gpu'"
        )
    return f"unknown device kind {kind!r}"


def _format_capability(capability: tuple[int, int]) -> str:
    return f"{capability[0]}.{capability[1]}"


def precision_problem(kind: str, precision: str, compute_capability: tuple[int, int] | None = None,
                      cpu_flags: frozenset[str] = frozenset()) -> str | None:
    """Why ``precision`` cannot run on ``kind``, or None.

    CPU: the rule every backend shares (``harness.cpuinfo``): bf16/fp16 only where the CPU has
    instructions for them. TensorFlow's CPU kernels would run either without them, but as
    conversions to fp32 and back, which is not what a bf16/fp16 case claims to measure.
    NVIDIA GPU: bf16 needs compute capability >= 8.0, fp16 tensor cores >= 7.0. A GPU without
    a CUDA compute capability (ROCm) is not refused by this rule. TPU: bfloat16 is native,
    float16 is not supported.
    """
    if precision not in DTYPE_POLICIES:
        return f"unknown precision {precision!r}"
    if precision == "fp32":
        return None
    if precision == numerics.TF32:
        return numerics.tf32_skip_reason(kind, compute_capability)
    if kind == "cpu":
        return cpuinfo.low_precision_skip_reason(precision, cpu_flags, "TensorFlow")
    if kind == "gpu":
        if compute_capability is None:
            return None
        needed = BF16_MIN_CAPABILITY if precision == "bf16" else FP16_MIN_CAPABILITY
        if tuple(compute_capability) < needed:
            what = "bfloat16" if precision == "bf16" else "float16 tensor cores"
            return (
                f"{precision} needs {what} (compute capability >= {_format_capability(needed)}); "
                f"this GPU has {_format_capability(compute_capability)}"
            )
        return None
    if kind == "tpu":
        return "TPUs have no float16 support; use bf16" if precision == "fp16" else None
    return f"no {precision} support known for device {kind!r}"


def compile_problem(kind: str, compile_mode: str) -> str | None:
    """Why ``compile_mode`` cannot run on ``kind``, or None.

    ``native`` is a plain ``tf.function`` graph, ``compiled`` adds ``jit_compile=True`` (XLA), ``op-by-op``
    runs the step in eager TensorFlow (no ``tf.function``). A TPU runs every function through XLA: its
    ``native`` (TensorFlow on a TPU as its users run it) is that XLA program, and it has no op-by-op execution.
    """
    if compile_mode not in ("native", "compiled", "op-by-op"):
        return f"unknown compile mode {compile_mode!r}"
    if kind == "tpu" and compile_mode == "op-by-op":
        return "a TPU compiles every tf.function with XLA; there is no op-by-op mode: use native or compiled"
    return None


def per_replica_batch(batch_size: int, replicas: int) -> int:
    """The batch each replica runs so that the global batch is ``batch_size``; refuse uneven splits."""
    if batch_size % replicas:
        raise CaseSkipped(f"batch size {batch_size} does not split evenly over {replicas} TPU cores")
    return batch_size // replicas


def tpu_resolver_target(environ: Mapping[str, str]) -> str | None:
    """The ``tpu`` argument for TPUClusterResolver.

    None (let the resolver read TPU_NAME / COLAB_TPU_ADDR) when one of those is set,
    otherwise ``"local"``: a TPU VM's own chips.
    """
    return None if any(environ.get(name) for name in TPU_ENV_VARS) else "local"


def tpu_worth_probing(environ: Mapping[str, str], libtpu_installed: bool) -> bool:
    """Try to reach a TPU only where one can be: a TPU address is set or libtpu is installed."""
    return libtpu_installed or any(environ.get(name) for name in TPU_ENV_VARS)


def memory_device(kind: str) -> str:
    """The device name ``tf.config.experimental.get_memory_info`` takes for ``kind``."""
    return TF_DEVICES[kind].lstrip("/")


def sync_by_loss(mode: str) -> bool:
    """Train steps return a scalar loss: reading it (``.numpy()``) waits for the step.

    Inference returns the full output; copying it to the host would time the copy, so
    those steps are synced with ``tf.test.experimental.sync_devices()`` instead.
    """
    return mode == "train"


def memory_source(kind: str) -> str:
    """The exact call a peak-memory reading comes from."""
    return f"tf.config.experimental.get_memory_info({memory_device(kind)!r})['peak']"


def peak_memory_reading(kind: str, peak: int | None, error: str | None = None) -> Reading:
    """The allocator peak of ``kind`` as a Reading; unavailable (never 0) when it was not tracked.

    On CPU the figure is TensorFlow's CPU allocator (tensors and variables TensorFlow
    allocated in this process, not the Python heap), so its scope is the process. That
    allocator keeps statistics only while oneDNN is on (by default only on CPUs with AVX512_VNNI,
    AVX512_BF16 or AMX; see ``adapter.onednn_enabled``); otherwise TensorFlow raises "Allocator
    stats not available". On a TPU it is the first core.
    """
    source, scope = memory_source(kind), "process" if kind == "cpu" else "device"
    if error is None and not peak:
        error = "the allocator reported a peak of 0 bytes, so it did not track this run's allocations"
    if error is not None:
        if kind == "cpu":
            error += (" (TensorFlow's CPU allocator keeps statistics only with oneDNN on: by default only on CPUs "
                      "with AVX512_VNNI, AVX512_BF16 or AMX, else with TF_ENABLE_ONEDNN_OPTS=1)")
        return Reading.unavailable("peak_allocated", "bytes", source, scope, reason=error)
    return Reading(name="peak_allocated", unit="bytes", source=source, scope=scope, value=float(peak))


def growth_reading(kind: str, peak: int | None, base: int | None, error: str | None = None) -> Reading:
    """The allocator's peak after the compile step minus what was in use then; unavailable with the reason."""
    from tribench.harness.probes.memory import AFTER_COMPILE

    source = f"{memory_source(kind)} minus get_memory_info()['current'] at the end of the compile step"
    scope = "process" if kind == "cpu" else "device"
    if error is not None or not peak or base is None:
        why = error or ("the allocator tracked no allocations" if not peak else "the window was never marked")
        return Reading.unavailable("peak_allocated_growth", "bytes", source, scope, why, AFTER_COMPILE)
    return Reading("peak_allocated_growth", "bytes", source, scope, float(max(0, peak - base)), span=AFTER_COMPILE)


# ---------------------------------------------------------------- data-parallel (backends.tensorflow.parallel)

XLA_PARALLEL_REASON = (
    "compiled (XLA) data-parallel steps run on GPUs only: TensorFlow's XLA has no CPU collectives "
    "(\"Collectives are not yet implemented for CPU devices when compiling with XLA\"), and MirroredStrategy "
    "compiles a step over several CPU devices as one XLA cluster, which cannot reach the other devices' variables"
)


def parallel_problem(kind: str, devices: int, nodes: int, compile_mode: str) -> str | None:
    """Why a data-parallel case (``devices`` per host, ``nodes`` hosts) cannot run as specified, or None."""
    if kind == "tpu":
        return ("--devices/--nodes are not offered on a TPU: a tpu case already runs on every core of the TPU "
                "(TPUStrategy, the batch split over the cores)")
    if kind == "cpu" and nodes > 1 and devices > 1:
        return ("MultiWorkerMirroredStrategy drives one CPU device per host (it splits no CPU into logical "
                "devices): run multi-host CPU cases with --devices 1")
    if compile_mode == "compiled" and kind != "gpu":
        return XLA_PARALLEL_REASON
    if compile_mode == "op-by-op":
        return ("op-by-op TensorFlow runs on one device: a data-parallel step runs as a tf.function under its "
                "strategy (compile=native)")
    return None


def shortage_reason(kind: str, wanted: int, found: int, note: str = "") -> str | None:
    """Why ``wanted`` devices of ``kind`` cannot be had when TensorFlow sees ``found``, or None."""
    if found >= wanted:
        return None
    plural = "" if found == 1 else "s"
    return f"the case needs {wanted} {kind} devices but TensorFlow sees only {found} {kind} device{plural}{note}"


def parallel_memory_readings(kind: str, peaks: Mapping[str, int | None],
                             errors: Mapping[str, str]) -> tuple[Reading, ...]:
    """Allocator peaks of a data-parallel case's devices (``peaks``: device name -> bytes).

    CPU: the logical CPU devices share the process's one CPU allocator (resetting one resets all),
    so a single process-scope reading covers them. GPU: the largest of the devices' peaks, then
    each device's own; the largest is unavailable when any device's figure is.
    """
    names = list(peaks)
    if kind == "cpu":
        first = names[0]
        reading = peak_memory_reading(kind, peaks[first], errors.get(first))
        if len(names) == 1:
            return (reading,)
        shared = f"{reading.source}; one allocator serves all {len(names)} logical CPU devices"
        return (Reading(reading.name, reading.unit, shared, reading.scope, reading.value, reading.reason),)
    per_device = []
    for name in names:
        reading = peak_memory_reading(kind, peaks[name], errors.get(name))
        source = f"tf.config.experimental.get_memory_info({name!r})['peak']"
        per_device.append(Reading(f"peak_allocated_{name.replace(':', '')}", reading.unit, source, reading.scope,
                                  reading.value, reading.reason))
    source = f"max over {', '.join(names)} of tf.config.experimental.get_memory_info(device)['peak']"
    missing = [reading for reading in per_device if not reading.available]
    if missing:
        largest = Reading.unavailable("peak_allocated", "bytes", source, "device",
                                      reason=f"{missing[0].name}: {missing[0].reason}")
    else:
        largest = Reading("peak_allocated", "bytes", source, "device", max(r.value for r in per_device))
    return (largest, *per_device)
