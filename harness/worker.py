"""One case in one fresh process: ``python -m tribench.harness.worker INPUT.json OUTPUT.json``.

The input holds the CaseSpec and the timing and energy settings; the output holds
the process's result (status, timing samples, readings, the energy window). The result goes to a
file rather than stdout because frameworks print to stdout at will. Anything
that kills this process (a crash, a signal, a hang the parent times out) leaves
no output file, and the parent records the case as failed with our stderr tail.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tribench.core.spec import CaseSpec
from tribench.harness import profiling, threads
from tribench.harness.import_guard import block_other_frameworks, frameworks_imported
from tribench.harness.level_shift import LevelShiftRule, find_level_shift
from tribench.harness.probes import memory as host_memory
from tribench.harness.probes.disturbance import DisturbanceWindow, disturbance_record
from tribench.harness.probes.energy import EnergySettings
from tribench.harness.probes.sources import probes_for
from tribench.harness.probes.timed_window import measure_in_window
from tribench.harness.timing import TimingConfig


def _write_json(path: str, data: dict[str, Any]) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        json.dump(data, handle)
    os.replace(temporary, path)


def run_case(spec: CaseSpec, config: TimingConfig, energy: EnergySettings = EnergySettings(),
             profile: profiling.ProfileRequest | None = None,
             checkpoint: Callable[[dict[str, Any]], None] | None = None,
             disturbance: DisturbanceWindow | None = None,
             thread_record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the case's session and time it; return the process result (status ok).

    The energy window opens after warm-up and closes after the last measured step
    (``harness.probes.timed_window``); a probe that fails makes energy unavailable, not the case.
    The disturbance window (``disturbance``; tests pass one reading a fake /proc) nests inside it.
    ``thread_record`` (``harness.threads.apply_in_worker``: the process already pinned) gets what the
    framework's pools were set to, before the build.
    """
    from tribench import backends  # the registry; the framework itself is imported by backends.get

    setup_start = time.perf_counter()  # the framework's import counts as setup, as it always has
    backend = backends.get(spec.backend)
    if thread_record is not None:
        thread_record["framework"] = framework_threads(backend, thread_record)
    if spec.total_devices > 1 and not getattr(backend, "data_parallel", False):
        from tribench.backends.base import CaseSkipped
        from tribench.harness.distributed import unsupported_reason

        raise CaseSkipped(unsupported_reason(spec.backend))
    session = backend.build(spec)
    setup_time = time.perf_counter() - setup_start
    marks: list[host_memory.WindowMark] = []

    def after_compile() -> None:  # every memory peak, host and device, restarts at this one point
        marks.append(host_memory.mark_window())
        if hasattr(session, "mark_window"):
            session.mark_window()

    probes = probes_for(spec.device, energy) if energy.enabled else []
    disturbance = disturbance or DisturbanceWindow()
    scope = getattr(session, "distributed_scope", None)  # data-parallel: barrier, then uneven-step join
    with scope() if spec.total_devices > 1 and scope else contextlib.nullcontext():
        timing, energy_record = measure_in_window(session, config, probes, energy, spec.device, spec.batch_size,
                                                  inner=disturbance, after_compile=after_compile)
    mark = marks[0] if marks else host_memory.WindowMark(None, "the window was never marked")
    readings = list(session.memory()) + [
        host_memory.process_peak_rss(),
        host_memory.window_peak_rss(mark),
        host_memory.window_growth_rss(mark),
    ]
    result = {
        "status": "ok",
        "error": None,
        "setup_time_s": setup_time,
        "timing": timing.to_dict(),
        "param_count": session.param_count(),
        "memory": [reading.to_dict() for reading in readings],
        "energy": energy_record,
        "disturbance": disturbance_evidence(disturbance, timing.samples_s),
        "build": dict(getattr(session, "info", None) or {}),  # how the backend built the case (formats, devices)
    }
    if spec.total_devices > 1:
        result.update(replica_facts(session, spec))
    if hasattr(session, "generation_record"):  # generate: each measured request's TTFT and decode steps
        result["generation"] = measured_requests(session.generation_record(), len(timing.samples_s))
    if profile is not None:  # after every timed step and reading: the profiler never runs in the timed window
        if checkpoint:  # should a native profiler take the process down, the measured result survives
            checkpoint({**result, "profile": profiling.unavailable(
                profile.steps, "the worker process died while profiling; see the case's stderr tail")})
        result["profile"] = profiling.capture(session, profile)  # a failure is recorded, never raised
    return result


def measured_requests(requests: list[dict[str, Any]], measured: int) -> dict[str, Any]:
    """The measured requests' timings: the last ``measured`` (compile and warm-up requests came first; the
    generate mode has no sustained phase after them)."""
    kept = requests[-measured:] if measured else []
    return {"ttft_s": [request["ttft_s"] for request in kept], "tpot_s": [request["tpot_s"] for request in kept],
            "source": "time.perf_counter around the prefill to the first token read on the host (TTFT), and "
                      "around each decode step to its token read (TPOT), inside each measured request"}


def framework_threads(backend: Any, record: dict[str, Any]) -> dict[str, Any]:
    """Set the framework's pools to the policy's counts (``Backend.apply_threads``); what it now reports."""
    apply = getattr(backend, "apply_threads", None)
    if apply is None:
        return {"how": "not set: the backend has no apply_threads; the framework keeps its own counts"}
    return apply(int(record["intra_op"]), int(record["inter_op"]))


def pin_process(request: dict[str, Any]) -> dict[str, Any] | None:
    """Apply the run's thread policy (``harness.threads``) to this process, its rank's share if data-parallel."""
    if not request.get("threads"):
        return None  # --threads framework: every framework keeps its own defaults
    policy = threads.ThreadPolicy.from_dict(request["threads"])
    rank, world = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    return threads.apply_in_worker(policy.for_rank(rank, world))


def disturbance_evidence(window: DisturbanceWindow, samples_s: list[float],
                         rule: LevelShiftRule = LevelShiftRule()) -> dict[str, Any]:
    """The process's ``disturbance`` record: the window's readings, a level shift in its own steps, the verdict."""
    return disturbance_record(window, find_level_shift(samples_s, rule), rule.to_dict())


def replica_facts(session: Any, spec: CaseSpec) -> dict[str, Any]:
    """Which devices this data-parallel process drove, and on which host (node rank) of the run."""
    from tribench.harness.cluster import from_env

    names = session.data_parallel_devices() if hasattr(session, "data_parallel_devices") else [spec.device]
    return {"replica_devices": list(names), "node_rank": from_env()[1], "host": socket.gethostname()}


def main(argv: list[str]) -> int:
    input_path, output_path = argv
    with open(input_path) as handle:
        request = json.load(handle)
    spec = CaseSpec.from_dict(request["spec"])
    blocked = block_other_frameworks(spec.backend)  # first: before anything can import a framework
    thread_record = pin_process(request)  # before the framework starts a thread: they inherit the CPU set
    config = TimingConfig(**request["timing"])
    if spec.total_devices > 1 or spec.mode == "generate":
        # data-parallel throughput is global, over the ranks' synced steps (harness.distributed); a generation
        # request is already a loop of steps, each synced as a streaming server would
        config = replace(config, sustained_time_s=0.0)
    energy = EnergySettings.from_dict(request.get("energy", {}))
    profile = profiling.ProfileRequest.from_dict(request["profile"]) if request.get("profile") else None
    from tribench.backends.base import CaseSkipped

    try:
        result = run_case(spec, config, energy, profile,
                          checkpoint=lambda partial: _write_json(output_path, {**partial, "pid": os.getpid()}),
                          thread_record=thread_record)
    except CaseSkipped as skipped:
        result = {"status": "skipped", "error": str(skipped)}
    except Exception as error:  # a case's failure must not hide its traceback
        traceback.print_exc()
        result = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    result["pid"] = os.getpid()
    result["threads"] = thread_record or {"policy": "framework defaults (--threads framework)"}
    result["imports"] = {"frameworks": frameworks_imported(), "blocked": list(blocked)}
    _write_json(output_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
