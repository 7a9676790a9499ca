"""tribench's Python API: ``run``, ``load``, ``compare`` and ``report``, the functions the command line calls.

``tribench run`` and ``tribench.run(...)`` share ``RunRequest`` (every flag, with the same default),
``prepare`` (the checks and the case matrix) and ``execute`` (plan, measure, save); the command line
only adds its progress bar and tables (``tribench.cli.run``). So the same request writes the same run
file either way, but for the recorded ``command`` and what was measured.

    import tribench

    run = tribench.run(backend="torch", workload="cnn", size="tiny", processes=3)
    run.frame[["case_id", "throughput_samples_per_s"]]       # pandas, one row per case
    verdicts = tribench.compare("base.json", run.path)       # .frame, .regressions, .exit_code
    tribench.report([run.path], "report.html")

Nothing here imports a framework: measurements run in worker processes, as from the command line.
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tribench.core.errors import InvalidValue
from tribench.core.spec import split_list

Axis = str | Sequence[str] | Sequence[int] | None


@dataclass(frozen=True)
class RunRequest:
    """Everything ``tribench run`` takes; each field is the flag of the same name (``--max-processes`` is
    ``max_processes``), with the same default. Axes take a comma-separated string or a list."""

    suite: str = "smoke"
    backend: Axis = None
    workload: Axis = None
    size: Axis = None
    mode: Axis = None
    batch: Axis = None
    precision: Axis = None
    compile: Axis = None
    device: Axis = None
    prompt: Axis = None
    new_tokens: Axis = None
    processes: int = 3
    max_processes: int = 0
    case_budget: float = 300.0
    sequential: bool = False
    threshold: str | None = None
    min_time: float = 0.5
    max_time: float = 10.0
    min_steps: int = 10
    sustained_time: float = 0.3
    min_warmup: float = 0.2
    target_ci: float = 0.02
    step_target_ci: float = 0.05
    timeout: float = 600.0
    output: str | Path | None = None
    tags: Mapping[str, str] | Sequence[str] = field(default_factory=dict)
    report: bool = False
    energy: bool = True
    idle_baseline: float = 2.0
    profile: bool = False
    profile_steps: int = 3
    python: Sequence[str] = ()
    measure_peak: bool = False
    devices: int = 1
    scaling: bool = False
    nodes: int | None = None
    node_rank: int | None = None
    master_addr: str | None = None
    master_port: int | None = None
    steps: int | None = None
    warmup_steps: int | None = None
    threads: str = "auto"
    fork_server: bool = True

    def call_text(self) -> list[str]:
        """How the API records the request as the run file's ``command``: the non-default arguments, paths as
        text, an empty list or mapping as the default it equals."""
        defaults = RunRequest()
        given = []
        for f in fields(self):
            value, default = getattr(self, f.name), getattr(defaults, f.name)
            if isinstance(value, Path):
                value = str(value)
            if value == default or (not value and not default and value is not None and default is not None):
                continue
            given.append(f"{f.name}={value!r}")
        return ["tribench.run(" + ", ".join(given) + ")"]

    def check(self) -> None:
        """The limits the command line's flags carry (typer's ``min=``), for a request made in Python."""
        for name, low in (("processes", 1), ("max_processes", 0), ("devices", 1), ("profile_steps", 1),
                          ("min_steps", 1), ("steps", 1), ("warmup_steps", 0)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise InvalidValue(f"{name} must be a whole number of at least {low}, got {value!r}")
        for name in ("min_time", "max_time", "sustained_time", "case_budget"):  # the others' checks say more
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidValue(f"{name} must be a number of seconds, 0 or more, got {value!r}")


@dataclass(frozen=True)
class Prepared:
    """A checked request: the cases, the engine's options, where the run file goes, and its tags."""

    request: RunRequest
    specs: list
    options: Any          # harness.runner.RunOptions
    path: Path
    run_id: str
    tags: dict[str, str]


def parse_tags(tags: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    """``{"k": "v"}`` as it is; ``["k=v", ...]`` (the CLI's ``--tag``) split, one line when malformed."""
    if isinstance(tags, Mapping):
        return {str(key): str(value) for key, value in tags.items()}
    parsed = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key.strip():
            raise InvalidValue(f"--tag takes KEY=VALUE, got {tag!r}")
        parsed[key.strip()] = value.strip()
    return parsed


def _axis(value: Axis) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return split_list(value)
    return [str(item) for item in value]


def prepare(request: RunRequest) -> Prepared:
    """Check the request and expand its cases; a mistake raises a TribenchError (one line)."""
    from tribench.harness.ab import parse_pythons
    from tribench.harness.cluster import resolve
    from tribench.harness.results import new_run_id
    from tribench.harness.run import default_output
    from tribench.harness.threads import policy_for_run

    request.check()
    if request.timeout <= 0:
        raise InvalidValue(f"--timeout must be above 0 seconds, got {request.timeout}")
    cluster = resolve(request.nodes, request.node_rank, request.master_addr, request.master_port)
    if cluster and request.scaling:
        raise InvalidValue("--scaling runs on one host; measure scaling with a one-host --scaling run, then "
                           "the multi-host run without it")
    pythons = parse_pythons(list(request.python))
    specs = case_specs(request, pythons)
    if request.devices > 1 or request.scaling or cluster:
        from tribench.harness.distributed import with_device_counts

        specs = with_device_counts(specs, request.devices, request.scaling, cluster.nodes if cluster else 1)
    run_id = new_run_id()
    path = Path(request.output) if request.output else default_output(Path("results"), run_id)
    if not 0.0 < request.target_ci < 1.0:
        raise InvalidValue(f"--target-ci must be between 0 and 1 (e.g. 0.02 for ±2%), got {request.target_ci}")
    if request.max_processes and request.max_processes < request.processes:
        raise InvalidValue(f"--max-processes {request.max_processes} is below --processes {request.processes}; "
                           "raise it or drop it")
    options = run_options(request, path, pythons)
    options = replace(options, scaling=request.scaling, cluster=cluster, max_processes=request.max_processes,
                      process_target_ci=request.target_ci, case_budget_s=request.case_budget,
                      threads=policy_for_run(request.threads))
    if request.sequential:
        options = sequential_options(options, pythons, request.threshold or "5%",
                                     points=len({spec.point_id for spec in specs}))
    elif request.threshold is not None:
        raise InvalidValue("--threshold sets the sequential A/B rule; add --sequential (compare takes its own "
                           "--threshold)")
    if request.steps is not None:
        warmup = 10 if request.warmup_steps is None else request.warmup_steps
        options = replace(options, timing=options.timing.with_fixed_steps(request.steps, warmup))
    elif request.warmup_steps is not None:
        raise InvalidValue("--warmup-steps counts the warm-up of --steps; give --steps N too")
    if cluster:  # every host must launch the same cases in the same order (harness.cluster)
        options = replace(options, order_seed=0)
    return Prepared(request, specs, options, path, run_id, parse_tags(request.tags))


def workload_name(item: str) -> str:
    """A workload item as the case's workload name: ``path/model.py:NAME`` is loaded and registered for the
    run's workers (``suites.plugins``; refused, one line, when its name is taken); others as given."""
    from tribench.suites import huggingface, plugins, workloads

    if ".py:" in item and not huggingface.is_reference(item):
        return plugins.register_file(item, taken=workloads.name_taken)
    return item


def case_specs(request: RunRequest, pythons: dict[str, str]) -> list:
    """The suite's cases with the request's axes replacing the suite's; once per interpreter in an A/B run."""
    from tribench import backends
    from tribench.harness.ab import with_envs
    from tribench.suites import expand, suite_file

    axes = {"backends": request.backend, "workloads": request.workload, "sizes": request.size,
            "modes": request.mode, "batch_sizes": request.batch, "precisions": request.precision,
            "compile": request.compile, "devices": request.device, "prompts": request.prompt,
            "new_tokens": request.new_tokens}
    matrix = suite_file.load(request.suite).override(**{axis: _axis(value) for axis, value in axes.items()})
    matrix = replace(matrix, workloads=tuple(workload_name(item) for item in matrix.workloads))  # files, suite's too
    specs = expand(matrix, backends.names())
    return with_envs(specs, list(pythons)) if len(pythons) > 1 else specs


def run_options(request: RunRequest, path: Path, pythons: dict[str, str]):
    """RunOptions from the request: timing, energy, interpreters (A/B order seeded at random), profiling."""
    from tribench.harness.probes.energy import EnergySettings
    from tribench.harness.profiling import ProfileOptions
    from tribench.harness.runner import RunOptions
    from tribench.harness.timing import TimingConfig

    timing = TimingConfig(min_steps=request.min_steps, min_time_s=request.min_time,
                          max_time_s=max(request.max_time, request.min_time), min_warmup_time_s=request.min_warmup,
                          target_ci=request.step_target_ci, sustained_time_s=request.sustained_time)
    options = RunOptions(timing=timing, repeats=request.processes, timeout_s=request.timeout,
                         energy=EnergySettings(enabled=request.energy, idle_baseline_s=request.idle_baseline))
    if len(pythons) == 1:
        options = replace(options, python=next(iter(pythons.values())))
    elif pythons:
        options = replace(options, pythons=pythons, order_seed=random.SystemRandom().randrange(2**31))
    if request.profile:  # traces go next to the run file: <run file stem>-traces/<case slug>/
        options = replace(options, profile=ProfileOptions(path, request.profile_steps))
    return options


def sequential_options(options, pythons: dict[str, str], threshold: str, points: int):
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


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM turned into it) while cases ran: the finished cases are kept in ``run_file``, which
    is marked interrupted."""

    def __init__(self, run_file) -> None:
        super().__init__()
        self.run_file = run_file


class Progress:
    """What ``execute`` tells while it works. This one prints a line per finished process to stderr; the
    command line's draws a progress bar (``tribench.cli.run``); ``Progress(quiet=True)`` says nothing.
    Any object with the same two methods will do."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    @contextlib.contextmanager
    def stage(self, text: str) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def cases(self, planned: list, repeats: int, max_processes: int) -> Iterator[Callable[[Any, int, dict], None]]:
        def on_result(spec, repeat: int, result: dict) -> None:
            if not self.quiet:
                print(f"{result['status']} {spec.id} (process {repeat + 1})", file=sys.stderr, flush=True)

        yield on_result


def execute(prepared: Prepared, command: list[str], progress: Progress | None = None):
    """Plan, capture the environment, measure every case and save the run file; returns the RunFile.

    Ctrl-C (KeyboardInterrupt) while cases run keeps the finished ones, marks the file interrupted and raises
    ``RunInterrupted``; before that (planning, the peaks) it propagates as it is, and no run file holds
    anything measured."""
    from tribench.harness.fork_pool import ForkServerPool
    from tribench.harness.peak import store_in_run
    from tribench.harness.run import run_cases, start_run
    from tribench.harness.subprocesses import worker_environment

    progress = progress or Progress()
    options = prepared.options
    with contextlib.ExitStack() as stack:
        if prepared.request.fork_server:
            options = replace(options, fork_servers=stack.enter_context(ForkServerPool(worker_environment())))
        with progress.stage("checking backends and devices…"):
            run_file, planned = start_run(prepared.path, prepared.specs, options, prepared.tags, command,
                                          prepared.run_id)
        measure = prepared.request.measure_peak
        with progress.stage("measuring device peaks…" if measure else "looking up cached device peaks…"):
            store_in_run(run_file, planned, measure=measure)  # environment["peaks"], for MFU
        try:
            with progress.cases(planned, options.repeats, options.max_processes) as on_result:
                run_cases(run_file, planned, options, on_result)
        except KeyboardInterrupt:
            raise RunInterrupted(run_file) from None
    return run_file


# ---------------------------------------------------------------- results as Python objects


@dataclass(frozen=True)
class Run:
    """One run file: its path, its contents (``data``), its cases, and a DataFrame of them (``frame``)."""

    path: Path
    data: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path) -> Run:
        from tribench.harness.results import load_run

        return cls(Path(path), load_run(path))

    @property
    def cases(self) -> list[dict[str, Any]]:
        return self.data["cases"]

    @property
    def frame(self):
        """One row per case (``reports.load``: metrics with their units in the column names)."""
        from tribench.reports.frame import load as load_frame

        return load_frame([self.path])

    def case(self, case_id: str) -> dict[str, Any]:
        for case in self.cases:
            if case["id"] == case_id:
                return case
        raise KeyError(f"no case {case_id!r} in {self.path}; its cases: {', '.join(c['id'] for c in self.cases)}")


def run(suite: str = "smoke", *, progress: Progress | bool = True, **flags: Any) -> Run:
    """Run a suite as ``tribench run`` does (keyword arguments: ``RunRequest``'s fields) and return the Run.

    ``progress``: True prints a line per finished process to stderr, False nothing, or a ``Progress``.
    Workload files the call names are known to its workers for this call only."""
    from tribench.core.errors import InvalidChoice
    from tribench.suites.plugins import files_scope

    known = [f.name for f in fields(RunRequest)]
    for name in flags:
        if name not in known:
            raise InvalidChoice("tribench.run argument", name, known)
    request = RunRequest(suite=suite, **flags)
    with files_scope():
        prepared = prepare(request)
        reporter = Progress(quiet=not progress) if isinstance(progress, bool) else progress
        run_file = execute(prepared, request.call_text(), reporter)
    if request.report:
        report([prepared.path], Path(prepared.path).with_suffix(".html"))
    return Run.open(run_file.path)


def load(paths: str | Path | Sequence[str | Path], redact: bool = False):
    """Run files as one pandas DataFrame, one row per case per run (``reports.load``)."""
    from tribench.reports.frame import load as load_frame

    return load_frame([paths] if isinstance(paths, str | Path) else list(paths), redact=redact)


@dataclass(frozen=True)
class Verdicts:
    """``compare``'s answer: each case's verdict and metric results as objects (``cases``), as a DataFrame
    (``frame``, one row per case and metric), and the exit code ``tribench compare`` would give."""

    comparison: Any      # reports.regression.compare.Comparison
    fail_on: tuple[str, ...]

    @property
    def cases(self) -> list:
        return self.comparison.cases

    @property
    def regressions(self) -> list:
        return [case for case in self.cases if case.verdict == "regressed"]

    @property
    def exit_code(self) -> int:
        return self.comparison.exit_code(self.fail_on)

    @property
    def warnings(self) -> list[str]:
        return self.comparison.warnings

    def to_dict(self) -> dict[str, Any]:
        return self.comparison.to_dict(self.fail_on)

    @property
    def frame(self):
        import pandas as pd

        rows = []
        for case in self.cases:  # a case with no metric compared (missing, failed) keeps one row, metric None
            head = {"case_id": case.id, "case_verdict": case.verdict, "case_reason": case.reason}
            rows += [{**head, "metric": metric.metric, "verdict": metric.verdict, "base": metric.base,
                      "head": metric.head, "change": metric.change, "ci_low": metric.ci_low,
                      "ci_high": metric.ci_high, "p_adjusted": metric.p_adjusted, "unit": metric.unit,
                      "reason": metric.reason} for metric in case.metrics] or [{**head, "metric": None}]
        return pd.DataFrame(rows)


def compare(base: str | Path, head: str | Path, *, threshold: str | None = None, alpha: float = 0.05,
            fail_on: Sequence[str] = (), allow_inconclusive: bool = False, resolve: str | None = None,
            allow_difference: Sequence[str] = (), gate_compile: bool = False, redact: bool = False) -> Verdicts:
    """Compare two run files as ``tribench compare`` does; the verdicts as objects and a DataFrame."""
    from tribench.reports.regression.compare import compare_sides, load_sides

    settings, fail = compare_settings(threshold, alpha, fail_on, allow_inconclusive, resolve, allow_difference,
                                      gate_compile)
    base_side, head_side = load_sides(base, head, redact=redact)
    return Verdicts(compare_sides(base_side, head_side, settings), fail)


def compare_settings(threshold: str | None, alpha: float, fail_on: Sequence[str], allow_inconclusive: bool,
                     resolve: str | None, allow_difference: Sequence[str], gate_compile: bool):
    """(CompareSettings, the categories that fail) from compare's options; one line on a bad one."""
    from tribench.core.errors import InvalidChoice
    from tribench.reports.regression.compare import FAIL_ON_CHOICES, CompareSettings
    from tribench.reports.regression.compare_metrics import parse_fraction, parse_thresholds

    fail = tuple(fail_on)
    for name in fail:
        if name not in FAIL_ON_CHOICES:
            raise InvalidChoice("--fail-on category", name, FAIL_ON_CHOICES)
    if allow_inconclusive and "inconclusive" in fail:
        raise InvalidValue("--allow-inconclusive and --fail-on inconclusive contradict each other; choose one")
    fail = tuple(dict.fromkeys(fail + (() if allow_inconclusive else ("inconclusive",))))
    if not 0.0 < alpha < 1.0:
        raise InvalidValue(f"--alpha must be between 0 and 1, got {alpha}")
    settings = CompareSettings(thresholds=parse_thresholds(threshold), alpha=alpha,
                               resolve=parse_fraction(resolve) if resolve else None,
                               allow_differences=tuple(allow_difference), gate_compile=gate_compile)
    return settings, fail


def report(runs: str | Path | Sequence[str | Path], output: str | Path | None = None, *, format: str = "html",
           offline: bool = True, redact: bool = False) -> Path | str:
    """A report of run files: HTML (written; returns its path) or markdown (returns the text; written too
    when ``output`` is given)."""
    from tribench.core.spec import check_choice

    check_choice("report format", format, ("html", "markdown"))
    paths = [runs] if isinstance(runs, str | Path) else list(runs)
    if format == "html":
        from tribench.reports.html.report import write_report

        return write_report(paths, output, "inline" if offline else "cdn", redact=redact)
    from tribench.reports import dataset
    from tribench.reports.text.markdown import render

    text = render(dataset.load(paths, redact=redact))
    if output is not None:
        Path(output).write_text(text, encoding="utf-8")
    return text
