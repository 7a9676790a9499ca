"""The device's achievable peaks as TensorFlow reaches them: dense matmul FLOP/s per precision and copy bandwidth.

Matmul: eager ``tf.linalg.matmul`` of two n x n tensors of the precision's dtype, placed with
``tf.device``. fp32 runs with ``enable_tensor_float_32_execution(False)`` (true fp32), tf32
with it on; the setting is restored afterwards. Which precisions a device runs follows the
backend's rules (``backends.tensorflow.devices``).

Bandwidth: ``tf.raw_ops.DeepCopy`` of one large buffer (TensorFlow's allocators reuse the freed
output memory, so each call is one device-to-device copy), counted as 2 x the size.

Every call is synced with ``tf.test.experimental.sync_devices()``, the backend's own sync for
results that are not read back (``harness.peak_measure.time_op``). TPUs are not measured through
TensorFlow (that needs a TPUStrategy program, not an eager op); the JAX backend measures them.
"""

from __future__ import annotations

import os
from typing import Any

from tribench.backends.tensorflow.devices import require_keras_on_tensorflow

require_keras_on_tensorflow(os.environ)  # before TensorFlow imports Keras

import tensorflow as tf  # noqa: E402

from tribench.backends.tensorflow import adapter, devices  # noqa: E402
from tribench.harness import cpuinfo  # noqa: E402
from tribench.harness import peak_measure as pm  # noqa: E402

NAME = "tensorflow"
DTYPES = {"fp32": tf.float32, "tf32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}


def _sync(handle: object) -> None:
    tf.test.experimental.sync_devices()


def _skip_reason(kind: str, precision: str, capability: tuple[int, int] | None) -> str | None:
    if precision == "tf32":
        return pm.tf32_skip_reason(kind, capability)
    return devices.precision_problem(kind, precision, capability, cpuinfo.parse_flags(cpuinfo.read_cpuinfo()))


def _matmul_peak(precision: str, kind: str, options: pm.PeakOptions) -> dict[str, Any]:
    n = options.size_for(kind)
    previous = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
    try:
        with tf.device(devices.TF_DEVICES[kind]):
            a = tf.cast(tf.random.stateless_normal((n, n), seed=[0, 1]), DTYPES[precision])
            b = tf.cast(tf.random.stateless_normal((n, n), seed=[0, 2]), DTYPES[precision])
            timed = pm.time_op(lambda: tf.linalg.matmul(a, b), _sync, pm.matmul_flops(n), options)
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(previous)
    mode = " with TF32 execution on" if precision == "tf32" else ""
    return pm.measured(timed, pm.FLOPS_UNIT,
                       f"tf.linalg.matmul (eager) {n}x{n} @ {n}x{n} {DTYPES[precision].name}{mode}", size=n)


def _copy_peak(kind: str, options: pm.PeakOptions) -> dict[str, Any]:
    size = options.copy_bytes_for(kind)
    with tf.device(devices.TF_DEVICES[kind]):
        source = tf.ones((size // 4,), tf.float32)
        timed = pm.time_op(lambda: tf.raw_ops.DeepCopy(x=source), _sync, 2.0 * (size // 4) * 4, options)
    return pm.measured(timed, pm.BANDWIDTH_UNIT,
                       f"tf.raw_ops.DeepCopy of {size / 2**20:.0f} MiB on {devices.TF_DEVICES[kind]}, "
                       "counted as read + write (2 x size)", bytes=size)


def _device_name(kind: str) -> str:
    if kind == "gpu":
        details = adapter.gpu_details()
        return details[0]["name"] if details else "GPU"
    return pm.cpu_name()


def measure(device_kind: str, options: pm.PeakOptions) -> dict[str, Any]:
    """Every precision's matmul peak and the copy bandwidth of ``device_kind`` (cpu or gpu)."""
    adapter.enable_memory_growth()
    if device_kind == "tpu":
        raise ValueError("TensorFlow peaks are measured on cpu and gpu only; measure the TPU with the jax backend")
    problem = devices.device_problem(
        device_kind, gpu_count=len(tf.config.list_physical_devices("GPU")),
        gpu_build=adapter._gpu_build(dict(tf.sysconfig.get_build_info())), tpu_error=None)
    if problem:
        raise ValueError(problem)
    capability = adapter._gpu_capability() if device_kind == "gpu" else None
    matmul = {}
    for precision in pm.PRECISIONS:
        skip = _skip_reason(device_kind, precision, capability)
        matmul[precision] = pm.unavailable(pm.FLOPS_UNIT, skip) if skip else _matmul_peak(precision, device_kind,
                                                                                          options)
    # fp32 cases run IEEE fp32 on GPUs (harness.numerics); a TPU keeps TensorFlow's bf16 passes
    return pm.record(NAME, tf.__version__, device_kind, _device_name(device_kind), options, matmul,
                     _copy_peak(device_kind, options), "bf16" if device_kind == "tpu" else "fp32")
