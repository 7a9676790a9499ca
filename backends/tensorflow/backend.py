"""The TensorFlow backend's entry point (the registry names this module): one device through
``adapter``, several devices or hosts through ``parallel``.

Importing ``adapter`` first keeps its order: Keras is pinned to the TensorFlow backend before
TensorFlow or Keras loads.
"""

from __future__ import annotations

from typing import Any

from tribench.backends.base import Availability, CaseSkipped
from tribench.backends.tensorflow import adapter, devices, parallel
from tribench.core.spec import CaseSpec
from tribench.suites import workloads


class TensorFlowBackend:
    name = adapter.NAME
    data_parallel = True   # --devices N / --nodes M: one worker process per host (backends.tensorflow.parallel)

    def availability(self) -> Availability:
        return adapter.availability()

    def apply_threads(self, intra_op: int, inter_op: int) -> dict[str, Any]:
        return adapter.apply_threads(intra_op, inter_op)

    def build(self, case: CaseSpec) -> adapter.TensorFlowSession:
        memory_growth = adapter.enable_memory_growth()     # first: only possible before the runtime starts
        workload = workloads.get(case.workload)
        if not workloads.is_builtin(case.workload):  # a plugin's model, batch and loss (one device)
            from tribench.backends.tensorflow import plugin

            return plugin.build_session(case, workload, memory_growth)
        spec = workload.architecture(case.size)
        if case.mode == "generate":  # prefill + cached greedy decode (backends.tensorflow.generate)
            from tribench.backends.tensorflow import generate

            return generate.build_session(case, spec, memory_growth)
        if case.total_devices == 1:
            return adapter.build_single(case, spec, memory_growth)
        # Several devices or hosts: the refusals first, none of which starts the runtime. The CPU must be
        # split into logical devices (or a multi-worker strategy created) before the runtime starts, which
        # parallel.build does first.
        problem = devices.parallel_problem(case.device, case.devices, case.nodes, case.compile)
        if problem:
            raise CaseSkipped(problem)
        adapter.check_case(case)   # device, compile mode and precision, as for one device (a TPU was refused above)
        adapter.apply_numerics(case.precision, case.device)
        return parallel.build(case, spec, memory_growth)


def backend() -> TensorFlowBackend:
    return TensorFlowBackend()
