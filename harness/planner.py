"""From requested specs to runnable ones: resolve ``auto`` devices, skip what cannot run here.

The planner asks each backend's availability (in a subprocess, see
``harness.availability``) once. A case whose framework is missing, whose
framework failed to load, or whose device this backend cannot see is planned
as ``skipped`` with the reason (and the install command), so the rest of the
suite still runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from tribench.backends.base import Availability
from tribench.backends.plugin_support import ONE_DEVICE
from tribench.core.spec import CaseSpec
from tribench.suites import workloads
from tribench.suites.plugins import BrokenWorkload

DEVICE_PREFERENCE = ("gpu", "tpu", "mps", "cpu")


@dataclass(frozen=True)
class PlannedCase:
    spec: CaseSpec
    skip_reason: str | None = None


def best_device(availability: Availability) -> str | None:
    for kind in DEVICE_PREFERENCE:
        if kind in availability.devices:
            return kind
    return None


def workload_skip_reason(spec: CaseSpec) -> str | None:
    """Why a plugin workload's case cannot run whatever the interpreter (no builder for the backend, several
    devices), decided here rather than in a worker; None for built-in workloads and broken plugins (whose
    cases run, and fail with the plugin's reason). A package the builder needs is the worker's to find: it
    runs under the case's own interpreter (``--python``), which may have what this one lacks."""
    if workloads.is_builtin(spec.workload):
        return None
    workload = workloads.get(spec.workload)
    if isinstance(workload, BrokenWorkload):
        return None
    return workload.unsupported_reason(spec.backend) or (ONE_DEVICE if spec.total_devices > 1 else None)


def cpu_budget_reason(spec: CaseSpec) -> str | None:
    """Why a built-in size written for accelerators (``Workload.accelerator_only``) is not run on a CPU."""
    if not workloads.is_builtin(spec.workload):
        return None
    reason = workloads.get(spec.workload).accelerator_only.get(spec.size)
    return f"{reason}; run it with --device gpu or tpu, or --size small here" if reason else None


def plan_case(spec: CaseSpec, availability: Availability) -> PlannedCase:
    planned = _plan_device(spec, availability)
    reason = None if planned.skip_reason or planned.spec.device != "cpu" else cpu_budget_reason(planned.spec)
    return PlannedCase(planned.spec, reason) if reason else planned


def _plan_device(spec: CaseSpec, availability: Availability) -> PlannedCase:
    reason = workload_skip_reason(spec)
    if reason:
        return PlannedCase(spec, reason)
    if not availability.installed:
        return PlannedCase(spec, f"{spec.backend} {availability.reason}; install with: {availability.install_hint}")
    if availability.reason and not availability.devices:
        return PlannedCase(spec, f"{spec.backend} cannot run here: {availability.reason}")
    if spec.device == "auto":
        device = best_device(availability)
        if device is None:
            return PlannedCase(spec, f"{spec.backend} reports no usable device")
        return PlannedCase(replace(spec, device=device))
    if spec.device not in availability.devices:
        seen = ", ".join(availability.devices) or "none"
        return PlannedCase(spec, f"no {spec.device} device visible to {spec.backend} (it sees: {seen})")
    return PlannedCase(spec)


def plan(specs: list[CaseSpec], availability_of: Callable[[CaseSpec], Availability]) -> list[PlannedCase]:
    """Plan every spec; ``availability_of`` answers for the spec's backend under the spec's interpreter."""
    planned = [plan_case(spec, availability_of(spec)) for spec in specs]
    return list({case.spec: case for case in planned}.values())  # auto may resolve onto an explicit device
