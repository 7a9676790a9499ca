"""What every backend does the same way for a plugin workload (``suites.plugins``): find the builder for
its framework, call it, and turn a plugin's mistakes into one line naming the workload.

Framework-free: each backend imports this and keeps its own framework code to itself.
"""

from __future__ import annotations

from typing import Any

from tribench.backends.base import CaseSkipped
from tribench.core.spec import CaseSpec
from tribench.suites.plugins import BrokenWorkload, Parts, PluginError, Workload

SEED = 0
ONE_DEVICE = "plugin workloads run on one device (data-parallel cases cover the built-in workloads)"


def parts_for(workload: Workload | BrokenWorkload, case: CaseSpec, framework: str, device: Any) -> Parts:
    """The plugin's parts for ``case``: CaseSkipped where it cannot run here, PluginError (one line) where the
    plugin is broken or its builder raises."""
    if isinstance(workload, BrokenWorkload):
        raise PluginError(workload.reason)
    if case.total_devices > 1:
        raise CaseSkipped(ONE_DEVICE)
    reason = workload.unsupported_reason(framework) or workload.missing_requirement()
    if reason:
        raise CaseSkipped(reason)
    try:
        builder = workload.builder(framework)
    except CaseSkipped:
        raise
    except Exception as error:
        raise PluginError(f"workload {workload.name}: its {framework} builder could not be imported: "
                          f"{type(error).__name__}: {error}") from error
    request = workload.request(case.size, case.batch_size, case.mode, case.precision, device, SEED)
    try:
        parts = builder(request)
    except CaseSkipped:
        raise
    except Exception as error:
        raise PluginError(f"workload {workload.name}: its {framework} builder raised {type(error).__name__}: "
                          f"{error}") from error
    if not isinstance(parts, Parts):
        raise PluginError(f"workload {workload.name}: its {framework} builder returned a {type(parts).__name__}, "
                          "not tribench.plugins.Parts")
    if case.mode == "train" and parts.loss is None:
        raise PluginError(f"workload {workload.name}: its {framework} builder gave no loss; training needs "
                          "Parts(loss=...)")
    return parts


def not_scalar(workload: str, shape: object) -> PluginError:
    return PluginError(f"workload {workload}: its loss has shape {shape}, not a scalar; return one number per "
                       "step (e.g. the mean over the batch)")


def record(workload: Workload, framework: str) -> dict[str, str]:
    """``build.workload_plugin``: where the workload came from and which builder ran."""
    return {"origin": workload.origin, "builder": str(workload.builders[framework])}
