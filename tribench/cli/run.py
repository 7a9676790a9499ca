"""``tribench run``: the case matrix from a suite and the flags, run with progress, summarised.

Heavy modules (the engine's runner, the planner, the report) are imported inside the command, so
``tribench --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tribench.cli.console import err, out


def _raise_keyboard_interrupt(signum, frame):  # SIGTERM (CI cancel) ends a run like Ctrl-C
    raise KeyboardInterrupt


def run(
    suite: str = typer.Option("smoke", help="Built-in suite name (smoke, standard) or path to a suite TOML file."),
    backend: str | None = typer.Option(None, help="Backends, comma-separated: torch,tensorflow,jax."),
    workload: str | None = typer.Option(None, help="Workloads, comma-separated: cnn,rnn,transformer, an installed "
                                        "plugin's name, hf:bert|gpt2|t5|<config.json>, or path/model.py:NAME."),
    size: str | None = typer.Option(None, help="Sizes: tiny,small,standard (a plugin workload's own names)."),
    mode: str | None = typer.Option(None, help="Modes: train,infer,generate (generate: the decoder workload)."),
    batch: str | None = typer.Option(None, help="Batch sizes, comma-separated whole numbers > 0."),
    precision: str | None = typer.Option(None, help="Precisions: fp32,bf16,fp16."),
    compile: str | None = typer.Option(None, help="Compile modes: eager,compiled."),
    device: str | None = typer.Option(None, help="Devices: cpu,gpu,tpu,mps,auto (auto = best available)."),
    prompt: str | None = typer.Option(None, "--prompt", help="Generate mode: prompt tokens per sequence, "
                                      "comma-separated (default 128)."),
    new_tokens: str | None = typer.Option(None, "--new-tokens", help="Generate mode: tokens generated per "
                                          "sequence, comma-separated (default 128)."),
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
    from tribench import api

    request = api.RunRequest(
        suite=suite, backend=backend, workload=workload, size=size, mode=mode, batch=batch, precision=precision,
        compile=compile, device=device, prompt=prompt, new_tokens=new_tokens, processes=repeats,
        max_processes=max_processes, case_budget=case_budget,
        sequential=sequential, threshold=threshold, min_time=min_time, max_time=max_time, min_steps=min_steps,
        sustained_time=sustained_time, min_warmup=min_warmup, target_ci=target_ci, step_target_ci=step_target_ci,
        timeout=timeout, output=output, tags=tuple(tag), report=report, energy=energy, idle_baseline=idle_baseline,
        profile=profile, profile_steps=profile_steps, python=tuple(python), measure_peak=measure_peak,
        devices=devices, scaling=scaling, nodes=nodes, node_rank=node_rank, master_addr=master_addr,
        master_port=master_port, steps=steps, warmup_steps=warmup_steps, threads=threads, fork_server=fork_server)
    prepared = api.prepare(request)
    _run_and_report(prepared)


def _run_and_report(prepared) -> None:
    """Run every case with a progress bar (``tribench.api.execute``), print the summary table and where the
    files are."""
    from tribench import api
    from tribench.cli.report import after_run
    from tribench.reports.text.table import generation_summary, summary_table

    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    path = prepared.path
    try:
        run_file = api.execute(prepared, sys.argv, BarProgress())
    except api.RunInterrupted as stop:
        finished = sum(1 for case in stop.run_file.data["cases"] if case.get("status"))
        err.print(f"[yellow]interrupted[/]: {finished} finished case(s) kept in {escape(str(path))}")
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/] before the first case ran: nothing was measured")
        raise typer.Exit(130) from None
    out.print(summary_table(run_file.data))
    generation = generation_summary(run_file.data)
    if generation is not None:
        out.print(generation)
    after_run(path, prepared.request.report, out)  # the HTML report, or the command that builds it
    if prepared.request.profile:
        from tribench.harness.profiling import traces_root

        out.print(f"traces: {escape(str(traces_root(path)))}")
    out.print(f"run file: {escape(str(path))}")


class BarProgress:
    """``api.execute``'s progress on the terminal: a spinner per stage, a bar over the processes, a line each."""

    def stage(self, text: str):
        return err.status(text)

    @contextlib.contextmanager
    def cases(self, planned, repeats: int, max_processes: int):
        total = sum(1 if case.skip_reason else repeats for case in planned)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
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

            yield on_result


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


