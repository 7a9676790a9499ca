"""The JAX backend's entry point (the registry names this module): one device through ``adapter``,
several devices or hosts through ``parallel``."""

from __future__ import annotations

from typing import Any

from tribench.backends.base import Availability, CaseSkipped
from tribench.backends.jax import adapter, parallel
from tribench.core.spec import CaseSpec
from tribench.suites import workloads


class JaxBackend:
    name = adapter.NAME
    data_parallel = True    # --devices N>1 / --nodes M>1: one process drives its devices (backends.jax.parallel)

    def availability(self) -> Availability:
        return adapter.availability()

    def apply_threads(self, intra_op: int, inter_op: int) -> dict[str, Any]:
        return adapter.apply_threads(intra_op, inter_op)

    def build(self, case: CaseSpec) -> adapter.JaxSession:
        """The session for ``case``; CaseSkipped when the device or precision is not available here."""
        if case.compile not in adapter.COMPILE_MODES:
            raise CaseSkipped(f"unknown compile mode {case.compile!r} for JAX; it runs "
                              f"{', '.join(adapter.COMPILE_MODES)}")
        workload = workloads.get(case.workload)
        if not workloads.is_builtin(case.workload):  # a plugin's apply, parameters, batch and loss
            from tribench.backends.jax import plugin

            return plugin.build_session(workload, case)
        spec = workload.architecture(case.size)
        if case.mode == "generate":  # prefill + cached greedy decode (backends.jax.generate)
            from tribench.backends.jax import generate

            return generate.build_session(spec, case)
        if case.devices > 1 or case.nodes > 1:
            # parallel.build must initialise jax.distributed before any other use of jax.
            adapter.apply_numerics(case.precision, case.device)  # a config value: sets no device up
            return parallel.build(spec, case)
        return adapter.build_single(spec, case)


def backend() -> JaxBackend:
    return JaxBackend()
