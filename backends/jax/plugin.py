"""A plugin workload (``suites.plugins``) in JAX: the plugin's ``apply(params, inputs)``, parameters, batch and
loss in a ``JaxSession``, with the built-in workloads' device, precision, Adam (optax), fp16 loss scaling
and compile rules (``jax.jit`` for native and compiled, op by op otherwise).

Without an analytic FLOP formula the step's FLOPs come from XLA's cost analysis of the lowered step
(``build.counted_flops``), taken once at build time, outside the timed steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from tribench.backends import plugin_support
from tribench.backends.jax import adapter
from tribench.core.spec import CaseSpec
from tribench.suites.plugins import Workload

COUNTER_SOURCE = "jax.jit(step).lower(...).cost_analysis()['flops'] (XLA's count of the {what}, at build time)"


def checked_loss(apply: Callable, loss: Callable, workload: str) -> Callable:
    """``forward_loss`` for ``adapter.make_train_step``: the plugin's loss in float32, refusing non-scalars
    (shapes are known when the step is traced, so the refusal comes at the first step)."""

    def forward_loss(params: Any, batch_stats: Any, inputs: Any, targets: Any) -> tuple[jax.Array, Any]:
        value = loss(apply(params, inputs), targets)
        if jnp.ndim(value) != 0:
            raise plugin_support.not_scalar(workload, tuple(jnp.shape(value)))
        return jnp.asarray(value, jnp.float32), batch_stats

    return forward_loss


def count_flops(step: Callable, args: tuple, train: bool) -> dict[str, Any]:
    what = "train step (forward, backward and the Adam update)" if train else "forward pass"
    analysis = jax.jit(step).lower(*args).cost_analysis()
    if isinstance(analysis, list):
        analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get("flops")
    if flops is None:
        return {"value": None, "unit": "FLOP", "source": COUNTER_SOURCE.format(what=what),
                "reason": "XLA's cost analysis gave no 'flops' for this step"}
    return {"value": int(flops), "unit": "FLOP", "source": COUNTER_SOURCE.format(what=what)}


def build_session(workload: Workload, case: CaseSpec) -> adapter.JaxSession:
    device, facts = adapter.select_device(case.device)
    reason = adapter.precision_skip_reason(case.precision, facts)
    if reason:
        raise adapter.CaseSkipped(reason)
    numeric = adapter.apply_numerics(case.precision, case.device)
    train = case.mode == "train"
    with jax.default_device(device):
        parts = plugin_support.parts_for(workload, case, "jax", device)
        if not callable(parts.model) or parts.params is None:
            raise plugin_support.PluginError(f"workload {workload.name}: its jax builder must give "
                                             "Parts(model=apply(params, inputs), params=...)")
        inputs, targets = jax.device_put((parts.inputs, parts.targets), device)
        params = jax.device_put(parts.params, device)
        optimizer = optax.adam(adapter.LEARNING_RATE) if train else None
        if train:
            step = adapter.make_train_step(None, optimizer, checked_loss(parts.model, parts.loss, workload.name))
            loss_scale = adapter.DynamicLossScale.create() if case.precision == "fp16" else None
            state = adapter.TrainState(params, {}, jax.jit(optimizer.init)(params), loss_scale)
            args = (state, inputs, targets)
        else:
            apply = parts.model

            def step(variables: Any, batch: Any) -> Any:
                return apply(variables["params"], batch)

            state = adapter.TrainState(params, {}, (), None)
            args = ({"params": params}, inputs)
        counted = (count_flops(step, args, train)
                   if workload.flops_per_step(case.size, case.mode, case.batch_size) is None else None)
    session = adapter.JaxSession(None, optimizer, state, (inputs, targets), device,
                                 compiled=case.compile in adapter.JIT_MODES, step_function=step)
    session.info = {"numerics": numeric, "workload_plugin": plugin_support.record(workload, "jax")}
    if counted:
        session.info["counted_flops"] = counted
    return session
