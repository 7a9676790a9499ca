"""``tribench run``: the case matrix from a suite and the flags, run with progress, summarised.

Heavy modules (the engine's runner, the planner, the report) are imported inside the command, so
``tribench --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sys
from dataclasses import replace
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tribench.cli.console import err, out
from tribench.core.errors import InvalidValue
from tribench.core.spec import split_list


def parse_tags(tags: list[str]) -> dict[str, str]:
    parsed = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key.strip():
            raise InvalidValue(f"--tag takes KEY=VALUE, got {tag!r}")
        parsed[key.strip()] = value.strip()
    return parsed


def _raise_keyboard_interrupt(signum, frame):  # SIGTERM (CI cancel) ends a run like Ctrl-C
    raise KeyboardInterrupt


def run(
    suite: str = typer.Option("smoke", help="Built-in suite name (smoke, standard) or path to a suite TOML file."),
    backend: str | None = typer.Option(None, help="Backends, comma-separated: torch,tensorflow,jax."),
    workload: str | None = typer.Option(None, help="Workloads, comma-separated: cnn,rnn,transformer."),
    size: str | None = typer.Option(None, help="Sizes: tiny,small,standard."),
    mode: str | None = typer.Option(None, help="Modes: train,infer."),
    batch: str | None = typer.Option(None, help="Batch sizes, comma-separated whole numbers > 0."),
    precision: str | None = typer.Option(None, help="Precisions: fp32,bf16,fp16."),
    compile: str | None = typer.Option(None, help="Compile modes: eager,compiled."),
    device: str | None = typer.Option(None, help="Devices: cpu,gpu,tpu,mps,auto (auto = best available)."),
    repeats: int = typer.Option(3, "--processes", "--repeats", min=1,
                                help="Processes every case gets, interleaved (the unit of every CI; 3 or more "
                                     "let compare judge a change; 1 gives only a within-process CI)."),
    max_processes: int = typer.Option(0, "--max-processes", min=0,
                                      help="Adaptive: add processes to a case until its across-process CI is "
                                           "within --target-ci, up to this many (0: exactly --processes)."),
    case_budget: float = typer.Option(300.0, "--case-budget", metavar="SECONDS",
                                      help="Adaptive: process wall seconds one case may spend."),
    sequential: bool = typer.Option(False, "--sequential",
                                    help="With two --python: run each case point's sides in random-order pairs "
                                         "of processes until compare's verdict is decided (at least --processes, "
                                         "default 3; at most --max-processes, default 30, pairs)."),
    threshold: str | None = typer.Option(None, "--threshold",
                                         help="With --sequential: the smallest change that counts (default 5%)."),
    min_time: float = typer.Option(0.5, help="Minimum measured seconds per process (processes can be short: the "
                                             "CI comes from their spread)."),
    max_time: float = typer.Option(10.0, help="Measurement budget in seconds per process."),
    min_steps: int = typer.Option(10, help="Minimum measured steps per process."),
    sustained_time: float = typer.Option(0.3, "--sustained-time", min=0.0,
                                         help="Seconds per process of steps run back to back in blocks, one "
                                              "sync per block: the throughput a loop sustains (0: none; "
                                              "throughput is then batch / median synced step)."),
    min_warmup: float = typer.Option(0.2, "--min-warmup", help="Warm-up seconds per process, at least, before "
                                                              "the steady-state rule may end it (clocks, caches)."),
    target_ci: float = typer.Option(0.02, help="Adaptive (--max-processes): stop adding processes once the 95% CI "
                                               "across processes is within this fraction."),
    step_target_ci: float = typer.Option(0.05, help="A process stops measuring once the CI of its own median "
                                                    "is within this fraction (its noise is part of the spread "
                                                    "across processes, which makes the case's CI)."),
    timeout: float = typer.Option(600.0, help="Seconds before a worker process is killed (status timeout)."),
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="Run file to write (default results/run-<id>.json)."),
    tag: list[str] = typer.Option([], help="KEY=VALUE label stored in the run file; repeatable."),
    report: bool = typer.Option(False, "--report", help="Also write the HTML report next to the run file (.html)."),
    energy: bool = typer.Option(True, "--energy/--no-energy",
                                help="Measure energy around the timed steps (RAPL, NVML); cases without a "
                                     "counter say why."),
    idle_baseline: float = typer.Option(2.0, "--idle-baseline", metavar="SECONDS",
                                        help="Idle power measured before the first case, for net-of-idle "
                                             "energy (0: off)."),
    profile: bool = typer.Option(False, "--profile",
                                 help="After each case's measurement, trace a few steps with the framework's "
                                      "profiler into <run file>-traces/ (never during the timed steps)."),
    profile_steps: int = typer.Option(3, min=1, help="Steps traced per case with --profile."),
    python: list[str] = typer.Option([], "--python", metavar="[LABEL=]PATH",
                                     help="Interpreter to run cases under; give it twice for a same-job A/B "
                                          "run (every case under each, labelled A, B or LABEL)."),
    measure_peak: bool = typer.Option(False, "--measure-peak",
                                      help="Measure the device peaks first where none are cached (for MFU)."),
    devices: int = typer.Option(1, "--devices", min=1,
                                help="Data-parallel devices per case (per host); the batch size is per device."),
    scaling: bool = typer.Option(False, "--scaling",
                                 help="With --devices N: run 1, 2, 4, ... N devices, for scaling efficiency."),
    nodes: int | None = typer.Option(None, "--nodes", help="Hosts in a multi-host run, each running this same "
                                     "command with its --node-rank (default: SLURM_STEP_NUM_NODES in srun, else 1)."),
    node_rank: int | None = typer.Option(None, "--node-rank", help="This host's rank, 0..nodes-1 (default: "
                                         "SLURM_NODEID in srun)."),
    master_addr: str | None = typer.Option(None, "--master-addr", help="Node 0's address, where the hosts "
                                           "meet (default: MASTER_ADDR)."),
    master_port: int | None = typer.Option(None, "--master-port", help="First of the 64 rendezvous ports, one "
                                           "per case process (default: MASTER_PORT, else 29500)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Measure exactly this many steps after "
                                     "exactly --warmup-steps warm-up steps (no adaptive stopping)."),
    warmup_steps: int | None = typer.Option(None, "--warmup-steps", min=0,
                                            help="Warm-up steps with --steps (default 10)."),
    threads: str = typer.Option("auto", "--threads", metavar="N|auto|framework",
                                help="Threads per measured process, the same for every framework: auto = the "
                                     "CPUs this process may use, cut to the cgroup quota (or OMP_NUM_THREADS "
                                     "when set); N = N threads on N of them; framework = each framework's own "
                                     "defaults."),
    fork_server: bool = typer.Option(True, "--fork-server/--fresh-interpreters",
                                     help="Fork each single-device CPU process from a per-framework server that "
                                          "imported the framework once (the run file says what was shared), or "
                                          "start every process as a fresh interpreter."),
) -> None:
    """Run a suite (default: smoke) and write a run file."""
    from tribench.harness.ab import parse_pythons
    from tribench.harness.cluster import resolve
    from tribench.harness.fork_pool import ForkServerPool
    from tribench.harness.results import new_run_id
    from tribench.harness.run import default_output
    from tribench.harness.subprocesses import worker_environment
    from tribench.harness.threads import policy_for_run

    if timeout <= 0:
        raise InvalidValue(f"--timeout must be above 0 seconds, got {timeout}")
    cluster = resolve(nodes, node_rank, master_addr, master_port)
    if cluster and scaling:
        raise InvalidValue("--scaling runs on one host; measure scaling with a one-host --scaling run, then "
                           "the multi-host run without it")
    pythons = parse_pythons(python)
    specs = _specs(suite, pythons, backends=backend, workloads=workload, sizes=size, modes=mode,
                   batch_sizes=batch, precisions=precision, compile=compile, devices=device)
    if devices > 1 or scaling or cluster:
        from tribench.harness.distributed import with_device_counts

        specs = with_device_counts(specs, devices, scaling, cluster.nodes if cluster else 1)
    run_id = new_run_id()
    path = output or default_output(Path("results"), run_id)
    if not 0.0 < target_ci < 1.0:
        raise InvalidValue(f"--target-ci must be between 0 and 1 (e.g. 0.02 for ±2%), got {target_ci}")
    if max_processes and max_processes < repeats:
        raise InvalidValue(f"--max-processes {max_processes} is below --processes {repeats}; raise it or drop it")
    options = _run_options(path, pythons, repeats=repeats, timeout_s=timeout, min_steps=min_steps,
                           min_time=min_time, max_time=max_time, target_ci=step_target_ci, energy=energy,
                           min_warmup=min_warmup, sustained_time=sustained_time,
                           idle_baseline=idle_baseline, profile_steps=profile_steps if profile else None)
    options = replace(options, scaling=scaling, cluster=cluster, max_processes=max_processes,
                      process_target_ci=target_ci, case_budget_s=case_budget, threads=policy_for_run(threads))
    if sequential:
        options = _sequential_options(options, pythons, threshold or "5%",
                                      points=len({spec.point_id for spec in specs}))
    elif threshold is not None:
        raise InvalidValue("--threshold sets the sequential A/B rule; add --sequential (compare takes its own "
                           "--threshold)")
    if steps is not None:
        warmup = 10 if warmup_steps is None else warmup_steps
        options = replace(options, timing=options.timing.with_fixed_steps(steps, warmup))
    elif warmup_steps is not None:
        raise InvalidValue("--warmup-steps counts the warm-up of --steps; give --steps N too")
    if cluster:  # every host must launch the same cases in the same order (harness.cluster)
        options = replace(options, order_seed=0)
    with contextlib.ExitStack() as stack:
        if fork_server:
            options = replace(options, fork_servers=stack.enter_context(ForkServerPool(worker_environment())))
        _run_and_report(path, specs, options, run_id, parse_tags(tag), measure_peak=measure_peak, report=report,
                        profile=profile)


def _run_and_report(path: Path, specs: list, options, run_id: str, tags: dict[str, str], *, measure_peak: bool,
                    report: bool, profile: bool) -> None:
    """Plan, run every case with progress, print the summary table and where the files are."""
    from tribench.cli.report import after_run
    from tribench.harness.peak import store_in_run
    from tribench.harness.run import run_cases, start_run
    from tribench.reports.text.table import summary_table

    with err.status("checking backends and devices…"):
        run_file, planned = start_run(path, specs, options, tags, sys.argv, run_id)
    with err.status("measuring device peaks…" if measure_peak else "looking up cached device peaks…"):
        store_in_run(run_file, planned, measure=measure_peak)  # environment["peaks"], for MFU
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    repeats, max_processes = options.repeats, options.max_processes  # --sequential may have raised them
    total = sum(1 if case.skip_reason else repeats for case in planned)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("running", total=total)
            progress.update(task, description=_next_label(planned, 0))

            def on_result(spec, repeat, result):
                progress.advance(task)
                done = int(progress.tasks[0].completed)
                if done >= progress.tasks[0].total and max_processes > repeats:  # the adaptive rule added one
                    progress.update(task, total=done + 1)
                progress.update(task, description=_next_label(planned, done, repeats))
                err.print(f"{_status_mark(result['status'])} {escape(spec.id)}"
                          + (f" (process {repeat + 1})" if repeats > 1 or max_processes else "")
                          + _disturbed_note(result))

            run_cases(run_file, planned, options, on_result)
    except KeyboardInterrupt:
        finished = sum(1 for case in run_file.data["cases"] if case.get("status"))
        err.print(f"[yellow]interrupted[/]: {finished} finished case(s) kept in {escape(str(path))}")
        raise typer.Exit(130) from None
    out.print(summary_table(run_file.data))
    after_run(path, report, out)  # the HTML report, or the command that builds it
    if profile:
        from tribench.harness.profiling import traces_root

        out.print(f"traces: {escape(str(traces_root(path)))}")
    out.print(f"run file: {escape(str(path))}")


def _specs(suite: str, pythons: dict[str, str], **axes: str | None) -> list:
    """The suite's cases with the CLI's axes replacing the suite's; once per interpreter in an A/B run."""
    from tribench import backends
    from tribench.harness.ab import with_envs
    from tribench.suites import expand, suite_file

    matrix = suite_file.load(suite).override(**{axis: split_list(value) for axis, value in axes.items()})
    specs = expand(matrix, backends.names())
    return with_envs(specs, list(pythons)) if len(pythons) > 1 else specs


def _run_options(path: Path, pythons: dict[str, str], *, repeats: int, timeout_s: float, min_steps: int,
                 min_time: float, max_time: float, target_ci: float, energy: bool, idle_baseline: float,
                 min_warmup: float, profile_steps: int | None, sustained_time: float):
    """RunOptions from the flags: timing, energy, interpreters (A/B order seeded at random), profiling."""
    from tribench.harness.probes.energy import EnergySettings
    from tribench.harness.profiling import ProfileOptions
    from tribench.harness.runner import RunOptions
    from tribench.harness.timing import TimingConfig

    timing = TimingConfig(min_steps=min_steps, min_time_s=min_time, max_time_s=max(max_time, min_time),
                          min_warmup_time_s=min_warmup, target_ci=target_ci, sustained_time_s=sustained_time)
    options = RunOptions(timing=timing, repeats=repeats, timeout_s=timeout_s,
                         energy=EnergySettings(enabled=energy, idle_baseline_s=idle_baseline))
    if len(pythons) == 1:
        options = replace(options, python=next(iter(pythons.values())))
    elif pythons:
        options = replace(options, pythons=pythons, order_seed=random.SystemRandom().randrange(2**31))
    if profile_steps:  # traces go next to the run file: <run file stem>-traces/<case slug>/
        options = replace(options, profile=ProfileOptions(path, profile_steps))
    return options


def _sequential_options(options, pythons: dict[str, str], threshold: str, points: int):
    """The sequential A/B plan (harness.sequential) from --processes, --max-processes and --threshold."""
    from tribench.harness.sequential import SequentialPlan
    from tribench.reports.regression.compare_metrics import parse_fraction

    if len(pythons) != 2:
        raise InvalidValue("--sequential compares two interpreters: give --python A=PATH --python B=PATH")
    if options.cluster is not None:
        raise InvalidValue("--sequential runs on one host; multi-host runs launch counted processes")
    low = options.repeats if options.repeats > 1 else 3
    plan = SequentialPlan(threshold=parse_fraction(threshold), min_pairs=low,
                          max_pairs=options.max_processes or max(30, low), points=points)
    return replace(options, repeats=low, max_processes=plan.max_pairs, sequential=plan)


def _disturbed_note(result: dict) -> str:
    reasons = (result.get("disturbance") or {}).get("reasons") or []
    return f" [yellow]disturbed[/]: {escape('; '.join(reasons))}" if reasons else ""


def _status_mark(status: str) -> str:
    return {"ok": "[green]ok[/]", "skipped": "[yellow]skipped[/]"}.get(status, f"[red]{status}[/]")


def _next_label(planned, done: int, repeats: int = 1) -> str:
    skipped = [case for case in planned if case.skip_reason]
    runnable = [case for case in planned if not case.skip_reason]
    index = done - len(skipped)
    if index < 0 or not runnable or index >= len(runnable) * repeats:
        return "running"
    return escape(runnable[index % len(runnable)].spec.id)


