"""``tribench run`` without the terminal: plan the cases, capture the environment, execute, save.

The CLI adds flags, progress and tables on top; tests drive this directly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from backends.base import Availability
from harness import availability, environment
from harness.errors import BackendUnavailable
from harness.planner import PlannedCase, plan
from harness.results import RunFile, check_writable
from harness.runner import Progress, RunOptions, execute
from harness.spec import CaseSpec


def plan_or_refuse(specs: list[CaseSpec], availability_of: Callable[[str], Availability]) -> list[PlannedCase]:
    """Plan the cases; refuse (exit 2) when not one of them could run because frameworks are missing."""
    planned = plan(specs, availability_of)
    requested = sorted({spec.backend for spec in specs})
    missing = [name for name in requested if not availability_of(name).installed]
    if missing and len(missing) == len(requested):
        hints = "; ".join(f"{name}: {availability_of(name).install_hint}" for name in missing)
        raise BackendUnavailable(f"no requested backend is installed ({', '.join(missing)}); install with {hints}")
    return planned


def default_output(results_folder: Path, run_id: str) -> Path:
    return results_folder / f"run-{run_id}.json"


def start_run(output: Path, specs: list[CaseSpec], options: RunOptions, tags: dict[str, str],
              command: list[str], run_id: str) -> tuple[RunFile, list[PlannedCase]]:
    """Plan, capture the environment and create the (empty) run file on disk."""
    check_writable(output)
    query = lambda name: availability.query(name, options.python)  # noqa: E731
    planned = plan_or_refuse(specs, query)
    used = sorted({case.spec.backend for case in planned})
    frameworks = {name: query(name).to_dict() for name in used}
    settings = {"timing": options.timing.to_dict(), "repeats": options.repeats, "timeout_s": options.timeout_s}
    run_file = RunFile(output, environment.capture(frameworks), settings, tags, command, run_id)
    run_file.save()
    return run_file, planned


def run_cases(run_file: RunFile, planned: list[PlannedCase], options: RunOptions,
              on_result: Progress | None = None) -> None:
    """Execute and mark the run complete, or interrupted on Ctrl-C/SIGTERM (then re-raise)."""
    try:
        execute(planned, run_file, options, on_result)
    except KeyboardInterrupt:
        run_file.finish("interrupted")
        raise
    run_file.finish("complete")
