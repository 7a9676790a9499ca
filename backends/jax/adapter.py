"""The JAX backend: Flax linen models, optax Adam, the whole train step under ``jax.jit``.

``compile="native"`` (JAX as its users run it) and ``compile="compiled"`` both run the step as one
XLA program (``jax.jit``, the train state donated so parameters and optimizer moments are updated in
place): JAX has no other production path. ``compile="op-by-op"`` calls the very same Python step
without ``jax.jit``: every jax.numpy/lax op is dispatched on its own (an LSTM layer's time loop is
still one compiled op, see ``models.lstm_recurrence``). That is slow and not how JAX is meant to
run; it is there to show what jit buys.

Mixed precision: parameters stay float32, modules compute in bf16/fp16
(``dtype``), the loss is taken in float32. fp16 training adds dynamic loss
scaling (PyTorch GradScaler's policy: start 2**16, halve and skip the update on
non-finite gradients, double after 2000 finite steps). Which device runs which
precision is decided in ``backends.jax.devices``.

Memory is ``Device.memory_stats()['peak_bytes_in_use']``, the XLA allocator's
peak since the process started (each case runs in a fresh worker, so that is
build + steps). XLA:CPU keeps no allocator statistics, so CPU memory is
reported unavailable.

Data-parallel cases (``devices`` N > 1 per host, ``nodes`` M hosts) are built by
``backends.jax.parallel``: ONE process drives its N devices. A one-axis ``Mesh`` ("data") over
the first N devices of every host; the global batch (N x M x ``batch_size``) is sharded over it
with ``NamedSharding``, each device drawing its own shard; the train state is replicated; the
very same step is jitted with those shardings (state donated) or, in eager mode, called on the
sharded arrays. The loss is the mean over the global batch, so XLA averages the devices'
gradients. Several hosts join through ``jax.distributed.initialize`` (``backends.jax.launch``
reads the coordinator from the harness's variables). Memory is the largest peak over this
process's devices. On CPU the N devices are XLA's forced host devices
(``--xla_force_host_platform_device_count``, set by ``launch.worker_env`` before jax loads):
they split ONE CPU's cores between them, so CPU scaling figures measure the runtime's overhead
(sharding, collectives, dispatch), not hardware scaling.
"""

from __future__ import annotations

import os

# Before jax is imported: without it XLA grabs 75% of GPU memory at start-up,
# and the allocator peak would say nothing about the model.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.extend.backend
import jax.numpy as jnp
import jaxlib
import optax

from tribench.backends.base import Availability, CaseSkipped, MemoryReading
from tribench.backends.jax import fast_paths
from tribench.backends.jax.devices import (
    JAX_DEVICES,
    DeviceFacts,
    device_skip_reason,
    precision_skip_reason,
)
from tribench.backends.jax.models import build_model, input_shape, takes_tokens
from tribench.core.readings import Reading
from tribench.core.spec import CaseSpec
from tribench.harness import cpuinfo, numerics
from tribench.harness.probes.memory import AFTER_COMPILE, LIFETIME
from tribench.suites.workloads import (
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

NAME = "jax"
PREALLOCATE_ENV = "XLA_PYTHON_CLIENT_PREALLOCATE"
COMPUTE_DTYPES = {"fp32": jnp.float32, "tf32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16}
JIT_MODES = ("native", "compiled")  # the step under jax.jit; op-by-op without
COMPILE_MODES = (*JIT_MODES, "op-by-op")
GPU_PLATFORMS = ("cuda", "rocm")
PEAK_MEMORY_SOURCE = "jax.Device.memory_stats()['peak_bytes_in_use']"
OP_BY_OP_NOTE = (
    "compile=native and compiled both run the step under jax.jit; op-by-op runs it without: each jax op "
    "is dispatched on its own (an LSTM layer's time loop stays one compiled op, as PyTorch's eager LSTM is one "
    "cuDNN call); far slower, shown for contrast"
)

# Dynamic loss scaling for fp16, with PyTorch GradScaler's defaults.
LOSS_SCALE_INIT = 2.0**16
LOSS_SCALE_GROWTH_INTERVAL = 2000


# ---------------------------------------------------------------- devices and facts


def present_platforms() -> dict[str, str]:
    """Neutral device kind -> XLA platform name ('cuda', 'rocm', 'tpu', 'cpu') of every backend here."""
    present = {}
    for platform in jax.extend.backend.backends():
        kind = "gpu" if platform in GPU_PLATFORMS else platform
        if kind in JAX_DEVICES:
            present.setdefault(kind, platform)
    return present


def device_facts(device: jax.Device, platform: str) -> DeviceFacts:
    """The plain facts the precision rules need about ``device`` (``platform`` as in present_platforms)."""
    kind = "gpu" if platform in GPU_PLATFORMS else device.platform
    return DeviceFacts(
        platform=kind,
        kind=device.device_kind,
        gpu_vendor=platform if platform in GPU_PLATFORMS else None,
        compute_capability=getattr(device, "compute_capability", None) if platform == "cuda" else None,
        cpu_flags=cpuinfo.parse_flags(cpuinfo.read_cpuinfo()) if kind == "cpu" else frozenset(),
    )


def select_device(device: str) -> tuple[jax.Device, DeviceFacts]:
    """The first JAX device of the neutral kind ``device``, with its facts; CaseSkipped if absent."""
    try:
        present = present_platforms()
    except RuntimeError as error:   # e.g. JAX_PLATFORMS names a platform that failed to start
        raise CaseSkipped(f"JAX could not start its backends: {error}") from error
    reason = device_skip_reason(device, present)
    if reason:
        raise CaseSkipped(reason)
    chosen = jax.devices(device)[0]
    return chosen, device_facts(chosen, present[device])


# ---------------------------------------------------------------- availability


def _supported_precisions(facts: DeviceFacts) -> list[str]:
    return [p for p in COMPUTE_DTYPES if precision_skip_reason(p, facts) is None]


def _settings() -> dict[str, Any]:
    """Versions and the environment/config settings that change what XLA does."""
    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", ""),
        PREALLOCATE_ENV: os.environ.get(PREALLOCATE_ENV, ""),
        "jax_enable_x64": bool(jax.config.read("jax_enable_x64")),
    }


def availability() -> Availability:
    """Versions, usable devices, the precisions each runs, and the XLA settings in force."""
    try:
        present = present_platforms()
    except RuntimeError as error:   # e.g. JAX_PLATFORMS names a platform that failed to start
        return Availability(name=NAME, installed=True, version=jax.__version__,
                            reason=f"JAX could not start its backends: {error}", details=_settings())
    devices = {kind: jax.devices(kind) for kind in present}
    facts = {kind: device_facts(found[0], present[kind]) for kind, found in devices.items()}
    host_flags = cpuinfo.parse_flags(cpuinfo.read_cpuinfo())
    low_precision_flags = sorted(host_flags & (cpuinfo.BF16_FLAGS | cpuinfo.FP16_FLAGS))
    return Availability(
        name=NAME,
        installed=True,
        version=jax.__version__,
        devices=tuple(devices),
        device_names={kind: found[0].device_kind for kind, found in devices.items()},
        details={
            "default_backend": jax.default_backend(),
            "platforms": present,
            "device_counts": {kind: len(found) for kind, found in devices.items()},
            "precisions": {kind: _supported_precisions(fact) for kind, fact in facts.items()},
            "cpu_low_precision_flags": low_precision_flags,
            **_settings(),
        },
        notes=(OP_BY_OP_NOTE,),
    )


# ---------------------------------------------------------------- data


def build_key() -> jax.Array:
    """The PRNG key for build-time randomness (data, initial parameters), from workloads.SEED.

    It uses XLA's RngBitGenerator ("rbg") rather than threefry: threefry is unrolled per
    parameter tensor and takes seconds to compile on CPU for a ResNet's init. The timed
    step draws no random numbers, so this only shortens builds.
    """
    return jax.random.key(SEED, impl="rbg")


@partial(jax.jit, static_argnums=(1, 2))
def _generate_batch(key: jax.Array, spec: Architecture, batch_size: int) -> tuple[jax.Array, jax.Array]:
    input_key, target_key = jax.random.split(key)
    shape = input_shape(spec, batch_size)
    if isinstance(spec, LSTMLanguageModelSpec | DecoderSpec):  # next-token prediction
        length = spec.timesteps if isinstance(spec, LSTMLanguageModelSpec) else spec.seq_len
        tokens = jax.random.randint(input_key, (batch_size, length + 1), 0, spec.vocab)
        return tokens[:, :-1], tokens[:, 1:]
    if takes_tokens(spec):
        return (jax.random.randint(input_key, shape, 0, spec.vocab),
                jax.random.randint(target_key, shape, 0, spec.vocab))
    assert isinstance(spec, ConvNetSpec | ResNetSpec | LSTMClassifierSpec)
    return (jax.random.normal(input_key, shape, jnp.float32),
            jax.random.randint(target_key, (batch_size,), 0, spec.classes))


def synthetic_batch(spec: Architecture, batch_size: int, device: jax.Device,
                    shard: int | None = None) -> tuple[jax.Array, jax.Array]:
    """(inputs, targets) generated on ``device``; see the workloads module for shapes and distributions.

    ``shard`` (data-parallel cases): the position of ``device`` in the global batch; its samples come
    from ``fold_in(build_key(), shard)``, so every device draws different samples where they will live.
    """
    with jax.default_device(device):
        key = build_key() if shard is None else jax.random.fold_in(build_key(), shard)
        batch = _generate_batch(key, spec, batch_size)
    return jax.device_put(batch, device)


# ---------------------------------------------------------------- training


class DynamicLossScale(NamedTuple):
    """fp16 loss scale: halve and skip on non-finite gradients, double after a run of finite ones."""

    scale: jax.Array
    good_steps: jax.Array

    @classmethod
    def create(cls) -> DynamicLossScale:
        return cls(jnp.asarray(LOSS_SCALE_INIT, jnp.float32), jnp.asarray(0, jnp.int32))

    def unscale(self, grads: Any) -> Any:
        return jax.tree.map(lambda g: g / self.scale.astype(g.dtype), grads)

    def adjust(self, finite: jax.Array) -> DynamicLossScale:
        grow = finite & (self.good_steps + 1 >= LOSS_SCALE_GROWTH_INTERVAL)
        scale = jnp.where(finite, jnp.where(grow, self.scale * 2, self.scale), jnp.maximum(self.scale / 2, 1.0))
        good_steps = jnp.where(finite & ~grow, self.good_steps + 1, 0)
        return DynamicLossScale(scale, good_steps.astype(jnp.int32))


def all_finite(tree: Any) -> jax.Array:
    """True when every element of every leaf is finite."""
    return jnp.stack([jnp.isfinite(leaf).all() for leaf in jax.tree.leaves(tree)]).all()


class TrainState(NamedTuple):
    params: Any
    batch_stats: Any                          # {} for models without BatchNorm
    opt_state: optax.OptState
    loss_scale: DynamicLossScale | None       # fp16 only


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy over every label (per sample or per token), in float32."""
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets).mean()


def _apply_train(model: nn.Module, params: Any, batch_stats: Any, inputs: jax.Array) -> tuple[jax.Array, Any]:
    """Training forward pass; BatchNorm models also return their updated batch statistics."""
    if not batch_stats:
        return model.apply({"params": params}, inputs, train=True), batch_stats
    logits, updates = model.apply(
        {"params": params, "batch_stats": batch_stats}, inputs, train=True, mutable=["batch_stats"],
    )
    return logits, updates["batch_stats"]


def make_train_step(model: nn.Module | None, optimizer: optax.GradientTransformation,
                    forward_loss: Callable | None = None) -> Callable:
    """The pure step (state, inputs, targets) -> (state, loss): forward, loss, backward, Adam update.

    ``forward_loss(params, batch_stats, inputs, targets) -> (loss, new batch_stats)`` replaces the Flax
    model's cross-entropy (a plugin workload's own loss, ``backends.jax.plugin``)."""

    def model_loss(params, batch_stats, inputs, targets):
        logits, new_stats = _apply_train(model, params, batch_stats, inputs)
        return cross_entropy(logits, targets), new_stats

    compute = forward_loss or model_loss

    def loss_fn(params, batch_stats, inputs, targets, scale):
        loss, new_stats = compute(params, batch_stats, inputs, targets)
        return (loss if scale is None else loss * scale), (loss, new_stats)

    def train_step(state: TrainState, inputs: jax.Array, targets: jax.Array) -> tuple[TrainState, jax.Array]:
        scale = None if state.loss_scale is None else state.loss_scale.scale
        grads, (loss, batch_stats) = jax.grad(loss_fn, has_aux=True)(
            state.params, state.batch_stats, inputs, targets, scale,
        )
        if state.loss_scale is not None:
            grads = state.loss_scale.unscale(grads)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        new_state = TrainState(optax.apply_updates(state.params, updates), batch_stats, opt_state, state.loss_scale)
        if state.loss_scale is not None:
            new_state = _skip_if_not_finite(state, new_state, all_finite(grads))
        return new_state, loss

    return train_step


def _skip_if_not_finite(old: TrainState, new: TrainState, finite: jax.Array) -> TrainState:
    """Keep the old parameters, statistics and moments on overflow; adjust the loss scale either way."""
    keep = partial(jax.tree.map, lambda n, o: jnp.where(finite, n, o))
    return TrainState(
        keep(new.params, old.params), keep(new.batch_stats, old.batch_stats),
        keep(new.opt_state, old.opt_state), old.loss_scale.adjust(finite),
    )


def make_forward(model: nn.Module) -> Callable:
    """Inference: (variables, inputs) -> outputs, BatchNorm on running averages."""

    def forward(variables: Any, inputs: jax.Array) -> jax.Array:
        return model.apply(variables, inputs, train=False)

    return forward


# ---------------------------------------------------------------- session


def peak_memory_reading(stats: dict[str, Any] | None, platform: str,
                        start: dict[str, Any] | None = None) -> Reading:
    """The allocator peak from ``Device.memory_stats()``, or why the platform gives none.

    The allocator is this process's XLA client on that device, hence scope "process". JAX cannot reset
    the peak, so its span is the window after the compile step (``start``: the stats then) only when the
    peak rose after that point; otherwise it is the process's lifetime peak, and says so.
    """
    if stats and "peak_bytes_in_use" in stats:
        rose = bool(start) and stats["peak_bytes_in_use"] > start.get("peak_bytes_in_use", float("inf"))
        span = AFTER_COMPILE if rose else (
            LIFETIME + "; JAX cannot reset its allocator peak" + (
                ", and it was reached by the end of the compile step" if start else ""))
        return Reading("peak_allocated", "bytes", PEAK_MEMORY_SOURCE, "process",
                       value=float(stats["peak_bytes_in_use"]), span=span)
    returned = "None" if stats is None else "no 'peak_bytes_in_use'"
    return Reading.unavailable(
        "peak_allocated", "bytes", PEAK_MEMORY_SOURCE, "process",
        reason=f"the {platform} device's memory_stats() returned {returned}: its XLA client keeps no "
               "allocator statistics",
    )


def growth_reading(start: dict[str, Any] | None, end: dict[str, Any] | None) -> Reading:
    """The allocator's growth over what was in use at the end of the compile step, where JAX lets it be known:
    only when the (unresettable) peak rose after that point."""
    source = f"{PEAK_MEMORY_SOURCE} minus memory_stats()['bytes_in_use'] at the end of the compile step"
    if not start or not end or "bytes_in_use" not in start or "peak_bytes_in_use" not in end:
        return Reading.unavailable("peak_allocated_growth", "bytes", source, "process",
                                   "the device keeps no allocator statistics", AFTER_COMPILE)
    if end["peak_bytes_in_use"] <= start.get("peak_bytes_in_use", float("inf")):
        return Reading.unavailable(
            "peak_allocated_growth", "bytes", source, "process",
            "JAX cannot reset its allocator peak, and the peak was reached by the end of the compile step: "
            "warm-up and measurement stayed below it", AFTER_COMPILE)
    return Reading("peak_allocated_growth", "bytes", source, "process",
                   float(end["peak_bytes_in_use"] - start["bytes_in_use"]), span=AFTER_COMPILE)


class JaxSession:
    """One built case: model state and a fixed batch on the device, and the step to run."""

    def __init__(self, model: nn.Module, optimizer: optax.GradientTransformation | None, state: TrainState,
                 batch: tuple[jax.Array, jax.Array], device: jax.Device, compiled: bool,
                 step_function: Callable | None = None) -> None:
        """Train with ``optimizer``; without one, run inference. ``step_function`` (a plugin workload's,
        ``backends.jax.plugin``) replaces the Flax model's train step or forward pass."""
        self.model, self._state, (self._inputs, self._targets) = model, state, batch
        self._device, self._train = device, optimizer is not None
        self.compiled = compiled  # the step under jax.jit (native, compiled) or dispatched op by op
        if optimizer is not None:
            step = step_function or make_train_step(model, optimizer)
            self._run = self._jit(step, train=True) if compiled else step
        else:
            forward = step_function or make_forward(model)
            self._run = self._jit(forward, train=False) if compiled else forward
            self._variables = {"params": state.params, **({"batch_stats": state.batch_stats}
                                                           if state.batch_stats else {})}
        self._params = sum(leaf.size for leaf in jax.tree.leaves(state.params))

    def _jit(self, function: Callable, train: bool) -> Callable:
        """The compiled step; training donates the state (argument 0) so XLA updates it in place."""
        return jax.jit(function, donate_argnums=0) if train else jax.jit(function)

    def step(self) -> jax.Array:
        """Train: the loss (device scalar); infer: the outputs. Never waits for the device."""
        if self._train:
            self._state, loss = self._run(self._state, self._inputs, self._targets)
            return loss
        return self._run(self._variables, self._inputs)

    def sync(self, handle: object) -> None:
        """Wait for everything the step produced: in training the new state (parameters, optimizer moments)
        as well as the loss, since the update may finish after the loss is ready; in inference the outputs."""
        jax.block_until_ready((self._state, handle) if self._train else handle)

    def mark_window(self) -> None:
        """The allocator's figures at the end of the compile step (JAX has no peak reset)."""
        self._window_start = self._device.memory_stats()

    def memory(self) -> MemoryReading:
        start, end = getattr(self, "_window_start", None), self._device.memory_stats()
        return (peak_memory_reading(end, self._device.platform, start), growth_reading(start, end))

    def param_count(self) -> int:
        return self._params

    def profile(self, steps: int, folder: Path) -> dict:
        """Optional protocol method: trace ``steps`` steps with jax.profiler (backends.jax.profiling)."""
        from tribench.backends.jax import profiling

        return profiling.profile(self, steps, folder)


def initial_state(model: nn.Module, inputs: jax.Array, precision: str,
                  optimizer: optax.GradientTransformation | None) -> TrainState:
    """Parameters (float32), BatchNorm statistics and, to train (``optimizer`` given), its state
    and for fp16 the loss scale."""
    def init(key: jax.Array, inputs: jax.Array) -> Any:
        return model.init(jax.random.fold_in(key, 1), inputs, train=False)   # data uses split(key)

    variables = jax.jit(init)(build_key(), inputs)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    opt_state = jax.jit(optimizer.init)(params) if optimizer else ()
    loss_scale = DynamicLossScale.create() if (optimizer and precision == "fp16") else None
    return TrainState(params, batch_stats, opt_state, loss_scale)


def attention_choice(spec: Architecture, case: CaseSpec, facts: DeviceFacts) -> tuple[str, str | None] | None:
    """(implementation, why not cudnn) for a transformer's or decoder's attention (``fast_paths``); None for
    other models."""
    if not isinstance(spec, TransformerSpec | DecoderSpec):
        return None
    head_dim = spec.d_model // spec.heads
    dtype = COMPUTE_DTYPES[case.precision]
    return fast_paths.attention_implementation(
        facts, case.precision,
        lambda: fast_paths.cudnn_attention_refusal(case.batch_size, spec.seq_len, spec.heads, head_dim, dtype,
                                                   kv_heads=getattr(spec, "kv_heads", None),
                                                   causal=isinstance(spec, DecoderSpec)))


def model_and_optimizer(spec: Architecture, case: CaseSpec, facts: DeviceFacts
                        ) -> tuple[nn.Module, optax.GradientTransformation | None, dict[str, Any]]:
    """The Flax model in the case's compute dtype, Adam to train (None for inference), and the record of
    the fast paths they take (``build.fast_paths``)."""
    attention = attention_choice(spec, case, facts)
    model = build_model(spec, COMPUTE_DTYPES[case.precision], attention[0] if attention else "xla")
    train = case.mode == "train"
    paths = fast_paths.record(cnn=isinstance(spec, ConvNetSpec | ResNetSpec), attention=attention, train=train,
                              jitted=case.compile in JIT_MODES,
                              recurrent=isinstance(spec, LSTMClassifierSpec | LSTMLanguageModelSpec))
    return model, (optax.adam(LEARNING_RATE) if train else None), paths


def build_session(spec: Architecture, case: CaseSpec, device: jax.Device, facts: DeviceFacts) -> JaxSession:
    """Model, data and state for ``case`` on ``device``, with no support checks (build() does those)."""
    model, optimizer, paths = model_and_optimizer(spec, case, facts)
    with jax.default_device(device):
        batch = synthetic_batch(spec, case.batch_size, device)
        state = jax.device_put(initial_state(model, batch[0], case.precision, optimizer), device)
    session = JaxSession(model, optimizer, state, batch, device, compiled=case.compile in JIT_MODES)
    session.info = {"fast_paths": paths}
    return session


def apply_threads(intra_op: int, inter_op: int) -> dict[str, Any]:
    """XLA:CPU has no thread-count API: it sizes its pool from the CPU set the worker was pinned to."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"how": "no API: XLA:CPU sizes its intra-op pool from the process's CPU set", "intra_op": cpus,
            "inter_op": None, "inter_op_note": "XLA:CPU schedules a program's independent ops itself"}


def build_single(spec: Architecture, case: CaseSpec) -> JaxSession:
    """The session of a case on one device; CaseSkipped when the device or precision is not available here."""
    device, facts = select_device(case.device)
    reason = precision_skip_reason(case.precision, facts)
    if reason:
        raise CaseSkipped(reason)
    numeric = apply_numerics(case.precision, case.device)  # before the step is traced
    session = build_session(spec, case, device, facts)
    session.info["numerics"] = numeric
    return session


def apply_numerics(precision: str, device: str) -> dict[str, str]:
    """The numeric policy (``harness.numerics``): on a GPU, fp32 matmuls at float32 precision, tf32 at tensorfloat32
    (JAX's default there is TF32)."""
    if device != "gpu":
        return numerics.host_numerics(device)
    value = "tensorfloat32" if numerics.uses_tf32(precision) else "float32"
    jax.config.update("jax_default_matmul_precision", value)
    return numerics.gpu_numerics(precision, f"jax.config.update('jax_default_matmul_precision', {value!r})")
