"""``tribench run`` without the terminal: plan the cases, capture the environment, execute, save.

The CLI adds flags, progress and tables on top; tests drive this directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tribench import backends
from tribench.backends.base import Availability
from tribench.core.errors import BackendUnavailable
from tribench.core.spec import CaseSpec
from tribench.harness import availability, environment
from tribench.harness.fork_pool import FRESH, SHARED, accelerator_present
from tribench.harness.planner import PlannedCase, plan
from tribench.harness.probes.baseline import measure_idle
from tribench.harness.results import RunFile, check_writable
from tribench.harness.runner import Progress, RunOptions, execute
from tribench.harness.threads import pin_every_thread


def plan_or_refuse(specs: list[CaseSpec], availability_of: Callable[[CaseSpec], Availability]) -> list[PlannedCase]:
    """Plan the cases; refuse (exit 2) when not one of them could run because frameworks are missing."""
    planned = plan(specs, availability_of)
    if specs and not any(availability_of(spec).installed for spec in specs):
        first = {spec.backend: spec for spec in reversed(specs)}
        hints = "; ".join(f"{name}: {availability_of(first[name]).install_hint}" for name in sorted(first))
        raise BackendUnavailable(f"no requested backend is installed ({', '.join(sorted(first))}); "
                                 f"install with {hints}")
    return planned


def default_output(results_folder: Path, run_id: str) -> Path:
    return results_folder / f"run-{run_id}.json"


def start_run(output: Path, specs: list[CaseSpec], options: RunOptions, tags: dict[str, str],
              command: list[str], run_id: str) -> tuple[RunFile, list[PlannedCase]]:
    """Plan, capture the environment and create the (empty) run file on disk."""
    check_writable(output)
    threads = thread_settings(options)  # first: the fork servers the availability asks start inherit the pin
    ask = _availability_asker(options)

    def query(spec: CaseSpec) -> Availability:
        return ask(spec.backend, options.python_for(spec.env))

    planned = plan_or_refuse(specs, query)
    used = sorted({case.spec.backend for case in planned})
    frameworks = {name: ask(name, options.python).to_dict() for name in used}
    settings = {"timing": options.timing.to_dict(), "repeats": options.repeats, "timeout_s": options.timeout_s,
                "processes": {"min": options.repeats, "max": options.process_cap,
                              "target_ci": options.process_target_ci if options.max_processes else None,
                              "case_budget_s": options.case_budget_s if options.max_processes else None,
                              "shared_between_processes": shared_between_processes(options)},
                "energy": {k: v for k, v in options.energy.to_dict().items() if k != "baselines"},
                "threads": threads}
    if options.profile is not None:  # --profile: traces of profile_steps steps per case, after the measurement
        settings["profile"] = {"steps": options.profile.steps}
    if options.cluster:  # a multi-host run: this file holds this host's ranks (tribench merge joins them)
        settings["cluster"] = options.cluster.to_dict()
    env = environment.capture(frameworks)
    if options.pythons:  # same-job A/B: each interpreter's own framework versions
        env["envs"] = {label: {"python": python, "frameworks": {
            name: ask(name, python).to_dict() for name in used}}
            for label, python in options.pythons.items()}
        settings["envs"] = dict(options.pythons)
        settings["ab_order_seed"] = options.order_seed
    if options.sequential is not None:
        settings["sequential"] = options.sequential.to_dict()
    run_file = RunFile(output, env, settings, tags, command, run_id)
    run_file.save()
    return run_file, planned


def thread_settings(options: RunOptions) -> dict[str, object]:
    """The run's thread policy for the run file; the parent pins itself to the kept CPU where there is one."""
    if options.threads is None:
        return {"policy": "framework defaults (--threads framework): each framework sizes its own pools"}
    return {**options.threads.to_dict(), "parent": pin_every_thread(options.threads.reserved_cpus)}


def shared_between_processes(options: RunOptions) -> str:
    """What the run's measured processes shared, in words for the run file (``harness.fork_pool``)."""
    if options.fork_servers is None:
        return FRESH
    return (f"single-device CPU processes: {SHARED}. Every other process (accelerator, data-parallel, "
            f"multi-host, profiled): {FRESH}")


def _availability_asker(options: RunOptions) -> Callable[[str, str], Availability]:
    """Availability per (backend, interpreter), asked once: of a forked child of the backend's fork server
    when the run has them and the machine shows no accelerator, else of a fresh interpreter."""
    answers: dict[tuple[str, str], Availability] = {}
    pool = options.fork_servers if options.fork_servers is not None and not accelerator_present() else None

    def ask(name: str, python: str) -> Availability:
        if (name, python) not in answers:
            forked = pool.availability(python, name) if pool is not None and backends.is_installed(name) else None
            answers[name, python] = (Availability.from_dict(forked) if forked is not None
                                     else availability.query(name, python))
        return answers[name, python]

    return ask


def idle_baseline(run_file: RunFile, planned: list[PlannedCase], options: RunOptions) -> RunOptions:
    """Measure idle power once, before the first case, for every device the run uses; keep it in the run file."""
    devices = {case.spec.device for case in planned if not case.skip_reason}
    baseline = measure_idle(devices, options.energy)
    run_file.data["idle_baseline"] = baseline
    run_file.save()
    return replace(options, energy=options.energy.with_baselines(baseline["readings"]))


def run_cases(run_file: RunFile, planned: list[PlannedCase], options: RunOptions,
              on_result: Progress | None = None) -> None:
    """Measure the idle baseline, execute, and mark the run complete, or interrupted on Ctrl-C/SIGTERM."""
    try:
        options = idle_baseline(run_file, planned, options)
        execute(planned, run_file, options, on_result)
        if options.fork_servers is not None and options.fork_servers.failures:  # those cases ran fresh
            run_file.data["settings"]["fork_server_failures"] = dict(options.fork_servers.failures)
        if any(case.spec.total_devices > 1 for case in planned):
            from tribench.harness.distributed_metrics import add_scaling

            add_scaling(run_file.data["cases"], options.scaling)
    except KeyboardInterrupt:
        run_file.finish("interrupted")
        raise
    run_file.finish("complete")
