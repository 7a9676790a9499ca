"""The device's achievable peaks as JAX reaches them: dense matmul FLOP/s per precision and copy bandwidth.

Matmul: ``jax.jit`` of ``jnp.matmul`` on two n x n arrays of the precision's dtype, output in
the same dtype. fp32 runs with ``precision=HIGHEST`` (true fp32 on every device); tf32 with
``precision=DEFAULT`` on CUDA GPUs from Ampere on, where XLA then uses TF32 tensor cores.
Which precisions a device runs follows the backend's rules (``backends.jax.devices``).

Bandwidth: a jitted copy of one buffer into a second, donated buffer of the same shape
(``optimization_barrier`` keeps the target alive, donation makes the output reuse its memory),
so each call is one device-to-device copy with no allocation; counted as 2 x the size.
A plain ``jnp.copy`` would allocate a fresh output every call, and on XLA:CPU the page faults
of that fresh buffer, not the memory, would set the figure.

Every result is synced with ``jax.block_until_ready`` (``harness.peak_measure.time_op``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from tribench.backends.base import CaseSkipped
from tribench.backends.jax.adapter import select_device
from tribench.backends.jax.devices import DeviceFacts, precision_skip_reason
from tribench.harness import peak_measure as pm

NAME = "jax"
DTYPES = {"fp32": jnp.float32, "tf32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16}
MATMUL_PRECISION = {"fp32": jax.lax.Precision.HIGHEST, "tf32": jax.lax.Precision.DEFAULT}


def _capability(facts: DeviceFacts) -> tuple[int, int] | None:
    major, _, minor = (facts.compute_capability or "").partition(".")
    return (int(major), int(minor or 0)) if major.isdigit() and (minor or "0").isdigit() else None


def _skip_reason(precision: str, facts: DeviceFacts) -> str | None:
    if precision == "tf32":
        return pm.tf32_skip_reason(facts.platform, _capability(facts), facts.gpu_vendor == "rocm")
    return precision_skip_reason(precision, facts)


def _matmul_peak(precision: str, device: jax.Device, kind: str, options: pm.PeakOptions) -> dict[str, Any]:
    n = options.size_for(kind)
    dtype = DTYPES[precision]
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.device_put(jax.random.normal(key_a, (n, n), jnp.float32).astype(dtype), device)
    b = jax.device_put(jax.random.normal(key_b, (n, n), jnp.float32).astype(dtype), device)
    precision_config = MATMUL_PRECISION.get(precision)
    matmul = jax.jit(lambda x, y: jnp.matmul(x, y, precision=precision_config, preferred_element_type=dtype))
    timed = pm.time_op(lambda: matmul(a, b), jax.block_until_ready, pm.matmul_flops(n), options)
    config = f", precision={precision_config.name}" if precision_config is not None else ""
    return pm.measured(timed, pm.FLOPS_UNIT,
                       f"jax.jit(jnp.matmul) {n}x{n} @ {n}x{n} {jnp.dtype(dtype).name}{config}", size=n)


def _copy_peak(device: jax.Device, kind: str, options: pm.PeakOptions) -> dict[str, Any]:
    size = options.copy_bytes_for(kind)
    source = jax.device_put(jnp.ones(size // 4, jnp.float32), device)
    state = {"target": jax.device_put(jnp.zeros(size // 4, jnp.float32), device)}
    copy = jax.jit(lambda src, dst: jax.lax.optimization_barrier((src, dst))[0], donate_argnums=1)

    def run() -> None:
        state["target"] = copy(source, state["target"])

    def sync(_: object) -> None:
        # each copy writes into the buffer the previous one returned, so the latest waits for all;
        # an earlier result cannot be waited on, it has been donated to the next copy
        jax.block_until_ready(state["target"])

    timed = pm.time_op(run, sync, 2.0 * source.size * 4, options)
    return pm.measured(timed, pm.BANDWIDTH_UNIT,
                       f"jitted copy of {size / 2**20:.0f} MiB into a donated buffer on {device.platform}, "
                       "counted as read + write (2 x size)", bytes=size)


def _fp32_case_math(facts: DeviceFacts) -> str:
    """What an fp32 case's matmuls are: IEEE fp32 on GPUs (harness.numerics sets float32 precision) and CPUs;
    on a TPU, JAX's default bf16 passes unless the environment asks for more."""
    setting = str(jax.config.jax_default_matmul_precision or "").lower()
    if facts.platform != "tpu" or setting in ("highest", "float32", "fp32"):
        return "fp32"
    return "bf16"


def measure(device_kind: str, options: pm.PeakOptions) -> dict[str, Any]:
    """Every precision's matmul peak and the copy bandwidth of ``device_kind`` (cpu, gpu, tpu)."""
    try:
        device, facts = select_device(device_kind)
    except CaseSkipped as skipped:
        raise ValueError(str(skipped)) from None
    matmul = {}
    for precision in pm.PRECISIONS:
        skip = _skip_reason(precision, facts)
        matmul[precision] = (pm.unavailable(pm.FLOPS_UNIT, skip) if skip
                             else _matmul_peak(precision, device, device_kind, options))
    name = pm.cpu_name() if device_kind == "cpu" else device.device_kind
    return pm.record(NAME, jax.__version__, device_kind, name, options, matmul,
                     _copy_peak(device, device_kind, options), _fp32_case_math(facts))
