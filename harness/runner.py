"""Run each planned case in fresh worker processes and record every result as it lands.

Each process is ``python -m tribench.harness.worker IN.json OUT.json`` in a session of
its own (so a timeout kills it and anything it started), with stdout and
stderr captured. The parent blocks in ``communicate(timeout=...)`` — a select
on the pipes, not a polling loop. A worker that raises, segfaults, is killed
or outlives the timeout becomes a ``failed``/``timeout`` result carrying the
tail of its stderr; the suite goes on. Processes are run in rounds (every case's
first process, then every case's second, ...) so slow drifts of the machine
spread over all cases rather than landing on one.

The process is the unit of uncertainty (``harness.process_stats``), so the stopping rule works at
the process level: every case gets ``repeats`` processes; with ``max_processes`` above that, a case
keeps getting one more process per round until the CI across its processes is within
``process_target_ci``, it has ``max_processes`` usable processes, or its ``case_budget_s`` of
process wall time is spent. A process flagged as disturbed (``harness.probes.disturbance``) does
not count as usable: the adaptive rule gives the case a fresh one instead (at most twice the
process cap in launches, within the case budget). Counted runs (no ``max_processes``, and every
multi-host run) launch exactly ``repeats`` processes: a disturbed one is flagged and left out of
the estimate while two or more undisturbed ones remain, but not replaced.
With ``fork_servers`` (the CLI's default), a single-device CPU process is forked from a server that
imported its framework once (``harness.fork_pool``): processes share that import and nothing else.
Without, each process is a fresh interpreter that imports its framework afresh. Every process result
says which (``launch``).

A sequential same-job A/B (``sequential``, ``harness.sequential``) replaces the CI target with a
decision per case point: both sides keep getting a process per round, in a fresh random order,
until the point is decided at one of the plan's looks, or its cap or budget is spent.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tribench.core.spec import CaseSpec
from tribench.harness.fork_pool import FRESH, ForkServer, ForkServerPool, ServerGone
from tribench.harness.planner import PlannedCase
from tribench.harness.probes.energy import EnergySettings
from tribench.harness.profiling import ProfileOptions
from tribench.harness.results import RunFile
from tribench.harness.sequential import SequentialPlan, decision, per_process_medians
from tribench.harness.subprocesses import describe_exit, module_command, tail, worker_environment
from tribench.harness.threads import ThreadPolicy
from tribench.harness.timing import TimingConfig

if TYPE_CHECKING:
    from tribench.harness.cluster import Cluster



@dataclass(frozen=True)
class RunOptions:
    timing: TimingConfig = field(default_factory=TimingConfig)
    repeats: int = 1  # processes every case gets (--processes)
    max_processes: int = 0  # adaptive: up to this many usable processes per case (0: exactly ``repeats``)
    process_target_ci: float = 0.02  # adaptive: stop once the across-process CI is within this fraction
    case_budget_s: float = 300.0  # adaptive: process wall seconds a case may spend
    sequential: SequentialPlan | None = None  # same-job A/B: pairs until each point is decided
    timeout_s: float = 600.0
    python: str = sys.executable
    pythons: dict[str, str] = field(default_factory=dict)  # same-job A/B: env label -> interpreter
    order_seed: int = 0  # seeds the random A/B order of each round (recorded in the run file)
    energy: EnergySettings = field(default_factory=EnergySettings)  # with the idle baselines once measured
    profile: ProfileOptions | None = None  # --profile: trace each case's first process after its measurement
    scaling: bool = False  # --scaling: the run has 1, 2, 4, ... devices of each data-parallel point
    cluster: Cluster | None = None  # --nodes M > 1: this host's place in a multi-host run
    launch_index: int = 0  # which case process of the run this is (a multi-host case's rendezvous port)
    fork_servers: ForkServerPool | None = None  # fork eligible processes from per-backend servers (None: fresh)
    threads: ThreadPolicy | None = None  # every worker's CPU set and thread counts (None: framework defaults)

    @property
    def process_cap(self) -> int:
        return max(self.repeats, self.max_processes)

    def python_for(self, env: str) -> str:
        """The interpreter a case labelled ``env`` runs under (the default one when unlabelled)."""
        return self.pythons.get(env, self.python)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_process(spec: CaseSpec, options: RunOptions) -> dict[str, Any]:
    """One fresh worker for ``spec``; always returns a process result, whatever the worker did.

    A data-parallel case (``harness.distributed``) runs one process per device when its backend
    launches that way (torch), else this one worker drives every local device (JAX, TensorFlow).
    """
    if spec.total_devices > 1:
        from tribench.harness import distributed

        if distributed.launch_of(spec) == "process-per-device":
            return distributed.run_distributed(spec, options)
        return distributed.single_process_result(spec, _run_worker(spec, *distributed.single_process_launch(
            spec, options, worker_environment())))
    if forkable(spec, options):
        server = options.fork_servers.server(options.python_for(spec.env), spec.backend)
        if server is not None:
            try:
                return _run_forked(server, spec, options)
            except ServerGone as gone:  # the process runs again in a fresh interpreter, below
                options.fork_servers.forget(server, str(gone))
    return _run_worker(spec, options, worker_environment())


def _request(spec: CaseSpec, options: RunOptions) -> dict[str, Any]:
    return {"spec": spec.to_dict(), "timing": options.timing.to_dict(), "energy": options.energy.to_dict(),
            "profile": options.profile.request_for(spec.id).to_dict() if options.profile else None,
            "threads": options.threads.to_dict() if options.threads else None}


def _run_worker(spec: CaseSpec, options: RunOptions, env: dict[str, str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tribench-") as folder:
        request, output = Path(folder, "in.json"), Path(folder, "out.json")
        request.write_text(json.dumps(_request(spec, options)))
        started = time.perf_counter()
        process = subprocess.Popen(
            module_command(options.python_for(spec.env), "tribench.harness.worker", str(request), str(output)),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, env=env, text=True, errors="replace",
        )
        try:
            _, stderr = process.communicate(timeout=options.timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(process)
            _, stderr = process.communicate()
            timed_out = True
        except BaseException:  # Ctrl-C or SIGTERM while waiting: take the worker down with us
            _kill_group(process)
            process.wait()
            raise
        finally:
            _kill_group(process)  # anything the worker left behind in its session
        return _process_result(output, process.returncode, stderr or "", time.perf_counter() - started,
                               timed_out, spec, options, {"method": "fresh-interpreter", "shared": FRESH})


def _run_forked(server: ForkServer, spec: CaseSpec, options: RunOptions) -> dict[str, Any]:
    """One process of ``spec`` forked from its backend's server (``harness.fork_pool``); the same result."""
    with tempfile.TemporaryDirectory(prefix="tribench-") as folder:
        request, output = Path(folder, "in.json"), Path(folder, "out.json")
        request.write_text(json.dumps(_request(spec, options)))
        started = time.perf_counter()
        outcome = server.run({"kind": "case", "input": str(request), "output": str(output)}, options.timeout_s)
        return _process_result(output, outcome.code, outcome.stderr, time.perf_counter() - started,
                               outcome.timed_out, spec, options, server.launch_record())


def _process_result(output: Path, code: int | None, stderr: str, wall: float, timed_out: bool,
                    spec: CaseSpec, options: RunOptions, launch: dict[str, Any]) -> dict[str, Any]:
    base = {"wall_s": wall, "exit_code": code, "stderr_tail": tail(stderr),
            "python": options.python_for(spec.env), "launch": launch}
    if timed_out:
        return {**base, "status": "timeout", "error": f"timed out after {options.timeout_s:g} s"}
    if output.exists():
        return {**base, **json.loads(output.read_text())}
    return {**base, "status": "failed",
            "error": f"worker {describe_exit(code)}: {tail(stderr, 1) or 'no stderr'}"}


def forkable(spec: CaseSpec, options: RunOptions) -> bool:
    """Whether this process of ``spec`` may be forked from a server (see ``harness.fork_pool``).

    CPU only: forking a framework that has loaded a GPU or TPU driver is unsafe, and we have not
    verified that import alone never does. Data-parallel and multi-host cases set variables before
    their framework loads; a profiled process keeps the profiler's threads away from any fork.
    """
    return (options.fork_servers is not None and spec.total_devices == 1 and spec.device == "cpu"
            and options.profile is None and options.cluster is None)


def skipped_result(reason: str) -> dict[str, Any]:
    return {"status": "skipped", "error": reason, "wall_s": 0.0, "exit_code": None, "stderr_tail": ""}


Progress = Callable[[CaseSpec, int, dict[str, Any]], None]


def execute(planned: list[PlannedCase], run_file: RunFile, options: RunOptions,
            on_result: Progress | None = None, launch: Callable[..., dict[str, Any]] = run_process) -> None:
    """Run every planned case in rounds of fresh processes until each is done (module docstring),
    saving the run file after each process."""
    for case in planned:
        if case.skip_reason:
            _record(run_file, case.spec, 0, skipped_result(case.skip_reason), on_result)
    specs = [case.spec for case in planned]
    open_ids = {case.spec.id for case in planned if not case.skip_reason}
    place = {spec.id: index for index, spec in enumerate(specs)}
    spent: dict[str, float] = dict.fromkeys(open_ids, 0.0)
    rng = random.Random(options.order_seed)
    round_index = 0
    while open_ids:
        # the order and launch numbers come from the whole plan, skipped cases included, so that every
        # host of a multi-host run gives a case the same number (its rendezvous port, harness.cluster)
        for spec in interleaved(specs, rng):
            if spec.id not in open_ids:
                continue
            settings = replace(options, launch_index=round_index * len(specs) + place[spec.id])
            result = launch(spec, settings if round_index == 0 else replace(settings, profile=None))  # profile once
            spent[spec.id] += float(result.get("wall_s") or 0.0)
            _record(run_file, spec, round_index, result, on_result)
        round_index += 1
        open_ids = {spec.id for spec in specs if spec.id in open_ids
                    and needs_another(run_file.case_of(spec), round_index, spent[spec.id], options)}
        if options.sequential is not None:
            open_ids -= decided_points(run_file, specs, options.sequential)


def decided_points(run_file: RunFile, specs: list[CaseSpec], plan: SequentialPlan) -> set[str]:
    """The case ids of every A/B point that needs no more pairs: decided, or a side that did not run ok.

    The decision is written on each of the point's cases (``sequential``) as the run goes.
    """
    groups: dict[str, list[CaseSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.point_id, []).append(spec)
    closed: set[str] = set()
    for group in groups.values():
        cases = [run_file.case_of(spec) for spec in group if run_file.has_case(spec)]
        if len(cases) != 2 or any(case["status"] != "ok" for case in cases):
            closed.update(spec.id for spec in group)
            continue
        verdict = decision(per_process_medians(cases[0]), per_process_medians(cases[1]), plan)
        pairs = min(len(per_process_medians(case)) for case in cases)
        for case in cases:
            case["sequential"] = {"decision": verdict or "undecided", "pairs": pairs}
        if verdict is not None:
            closed.update(spec.id for spec in group)
    run_file.save()
    return closed


def needs_another(case: dict[str, Any], launched: int, spent_s: float, options: RunOptions) -> bool:
    """Whether a case gets one more process after ``launched`` of them (see the module docstring)."""
    if case["status"] == "skipped":  # a case its backend refused once is refused every time
        return False
    if launched < options.repeats:
        return True
    if options.max_processes <= options.repeats or options.cluster is not None or case["status"] != "ok":
        return False  # counted processes (multi-host hosts must launch alike); a failing case gets no more
    if launched >= 2 * options.process_cap or spent_s >= options.case_budget_s:
        return False
    step = case["metrics"]["step_time"]
    usable = step["processes"] - step["quality"]["disturbed_used"]
    if usable < options.repeats:
        return True  # replace a disturbed process rather than average it in
    if options.sequential is not None:
        return usable < options.sequential.max_pairs  # the point's decision closes it (decided_points)
    width = step.get("ci_rel_halfwidth")
    return usable < options.max_processes and (width is None or width > options.process_target_ci)


def interleaved(specs: list[CaseSpec], rng: random.Random) -> list[CaseSpec]:
    """The round's order: case points as planned; a point's A/B interpreters in a fresh random order.

    Randomising which interpreter goes first at every point and every repeat keeps a slow drift of
    the machine (thermal, a neighbour's load) from always favouring the same side.
    """
    groups: dict[str, list[CaseSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.point_id, []).append(spec)
    order: list[CaseSpec] = []
    for group in groups.values():
        rng.shuffle(group)
        order.extend(group)
    return order


def _record(run_file: RunFile, spec: CaseSpec, repeat: int, result: dict[str, Any],
            on_result: Progress | None) -> None:
    run_file.record(spec, result)
    if on_result:
        on_result(spec, repeat, result)
