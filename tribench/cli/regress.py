"""``tribench compare``, ``history``, ``export`` and ``redact``: regression tracking over run files.

Only typer, rich and the standard library are imported here; numpy, scipy,
pandas and plotly load inside the command that needs them, so ``import
tribench.cli`` stays cheap.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from tribench.core.errors import InvalidChoice, InvalidValue, OutputPathError
from tribench.core.spec import split_list

out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)
FORMATS = ("table", "markdown", "json")


def _write(path: Path, text: str, what: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as error:
        raise OutputPathError(f"cannot write {what} {path}: {error.strerror}; choose another path") from None


def _append_step_summary(text: str) -> None:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not summary:
        return
    try:
        with open(summary, "a") as handle:
            handle.write(text + "\n")
    except OSError as error:
        raise OutputPathError(f"cannot append to GITHUB_STEP_SUMMARY {summary}: {error.strerror}") from None


def _check_format(value: str) -> str:
    if value not in FORMATS:
        raise InvalidChoice("format", value, FORMATS)
    return value


def compare(
    base: Path = typer.Argument(..., help="The base run file (the reference)."),
    head: Path | None = typer.Argument(None, help="The head run file (the candidate); omit it with --env."),
    env: list[str] = typer.Option([], "--env", help="With ONE run file from `tribench run --python A --python B`: "
                                                    "the base and head interpreter labels, e.g. --env A --env B."),
    threshold: str | None = typer.Option(
        None, help="Smallest change that counts: 5% (default), or per metric: throughput=3%,memory=1% "
                   "(metrics: throughput, p50, p99, latency, device_memory, host_memory, memory, energy, compile, "
                   "ttft, tpot, decode_tokens_per_s, generation)."),
    alpha: float = typer.Option(0.05, help="False-alarm rate of the one-sided tests (Benjamini-Hochberg over cases)."),
    fmt: str = typer.Option("table", "--format", help="table | markdown | json."),
    output: Path | None = typer.Option(None, help="Also write the verdicts as JSON to this file."),
    fail_on: str | None = typer.Option(
        None, help="Also fail on: failed (in head), missing, not-comparable (exit 1); comma-separated. "
                   "Inconclusive fails (exit 3) unless --allow-inconclusive."),
    allow_inconclusive: bool = typer.Option(False, "--allow-inconclusive",
                                            help="Exit 0 when a case cannot be told from noise (default: exit 3)."),
    resolve: str | None = typer.Option(None, help="The change the process-count advice aims at, e.g. 3% "
                                                  "(default: twice the threshold)."),
    allow_difference: str | None = typer.Option(
        None, help="Fingerprint fields allowed to differ, e.g. frameworks.torch,release (comma-separated)."),
    gate_compile: bool = typer.Option(False, help="Let compile time take part in the verdict."),
    redact: bool = typer.Option(False, "--redact", help="Share-safe output: host names, user names, home paths "
                                                         "and the command's paths replaced by placeholders."),
) -> None:
    """Compare two run files: a verdict per case and metric; exit 1 on a regression."""
    from tribench.api import compare_settings
    from tribench.reports.regression import compare_render
    from tribench.reports.regression.compare import compare_sides, load_env_sides, load_sides, sequential_settings

    _check_format(fmt)
    settings, fail = compare_settings(threshold, alpha, split_list(fail_on), allow_inconclusive, resolve,
                                      split_list(allow_difference), gate_compile)
    sequential_note = None
    if env:
        if len(env) != 2 or head is not None:
            raise InvalidValue("--env takes exactly two labels (--env A --env B) and one run file")
        base_side, head_side = load_env_sides(base, env[0], env[1], redact=redact)
        settings, sequential_note = sequential_settings(base_side.run, settings, threshold is not None)
    elif head is None:
        raise InvalidValue("compare needs BASE and HEAD run files, or one A/B run file with --env A --env B")
    else:
        base_side, head_side = load_sides(base, head, redact=redact)
    comparison = compare_sides(base_side, head_side, settings)
    if sequential_note:
        comparison.warnings.insert(0, sequential_note)
    if output:
        _write(output, compare_render.as_json(comparison, fail), "verdict file")
    if fmt == "json":
        print(compare_render.as_json(comparison, fail))
    elif fmt == "markdown":
        text = compare_render.markdown(comparison)
        print(text)
        _append_step_summary(text)
    else:
        for line in compare_render.terminal_header(comparison):
            out.print(line)
        out.print(compare_render.table(comparison))
    raise typer.Exit(comparison.exit_code(fail))


def history(
    inputs: list[Path] = typer.Argument(..., help="Run files and/or folders of run files (searched recursively)."),
    case: str | None = typer.Option(None, help="Case ids to show: a glob (torch/*/train/*) or a substring."),
    metric: str | None = typer.Option(
        None, help="Metrics, comma-separated (default throughput,p50,p99; also memory, energy, compile)."),
    fmt: str = typer.Option("table", "--format", help="table | markdown | json."),
    html: Path | None = typer.Option(None, "--html", help="Write an HTML page plotting every series."),
    significance: float = typer.Option(0.05, help="Permutation-test p-value a change point must reach."),
    permutations: int = typer.Option(199, min=19, help="Permutations per change-point test."),
    min_size: int = typer.Option(3, min=1, help="Fewest runs a level must hold to count as a change."),
) -> None:
    """Each case's metrics across runs (in commit order) with change points."""
    from tribench.reports.regression import history_render
    from tribench.reports.regression.compare_metrics import resolve
    from tribench.reports.regression.history import DEFAULT_METRICS
    from tribench.reports.regression.history import history as analyse

    _check_format(fmt)
    metrics = resolve(split_list(metric)) if metric else list(DEFAULT_METRICS)
    series, runs, notes = analyse(list(inputs), metrics, case, significance=significance,
                                  permutations=permutations, min_size=min_size)
    if html:
        from tribench.reports.regression.history_html import render

        _write(html, render(series, runs, notes), "HTML page")
    if fmt == "json":
        print(json.dumps(history_render.as_dict(series, runs, notes), indent=1))
    elif fmt == "markdown":
        print(history_render.markdown(series, runs))
    else:
        for note in notes:
            err.print(f"[yellow]note:[/] {escape(note)}")
        out.print(history_render.table(series, runs))
    if html:
        err.print(f"HTML: {escape(str(html))}")


def export(
    run_file: Path = typer.Argument(..., help="The run file to export."),
    to: str = typer.Option(..., "--to", help="pytest-benchmark | github-action-benchmark | bencher | csv."),
    tool: str | None = typer.Option(
        None, help="github-action-benchmark only: customBiggerIsBetter (throughput) or customSmallerIsBetter "
                   "(latency, memory, energy); run twice for both."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: standard output)."),
    redact: bool = typer.Option(False, "--redact", help="Share-safe output: host names, user names, home paths "
                                                         "and the command's paths replaced by placeholders."),
) -> None:
    """Export a run file for pytest-benchmark, github-action-benchmark, Bencher (BMF) or as CSV."""
    from tribench.harness.results import load_run
    from tribench.reports.regression import export as formats

    if to not in formats.FORMATS:
        raise InvalidChoice("export format", to, formats.FORMATS)
    if to == "github-action-benchmark" and tool is None:
        raise InvalidValue("--to github-action-benchmark needs --tool customBiggerIsBetter (throughput) or "
                           "customSmallerIsBetter (latency, memory, energy)")
    if to != "github-action-benchmark" and tool is not None:
        raise InvalidValue("--tool only applies to --to github-action-benchmark")
    run = load_run(run_file)
    if redact:
        from tribench.reports.share_safe import redact_run

        run = redact_run(run)
    if to == "csv":
        text = formats.to_csv(str(run_file), redact=redact)
    elif to == "pytest-benchmark":
        text = json.dumps(formats.to_pytest_benchmark(run), indent=1)
    elif to == "bencher":
        text = json.dumps(formats.to_bencher(run), indent=1)
    else:
        text = json.dumps(formats.to_github_action_benchmark(run, tool), indent=1)
    if output:
        _write(output, text, "export")
        err.print(f"wrote {escape(str(output))}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def redact(
    runs: list[Path] = typer.Argument(..., metavar="RUN.json...", help="Run files to write share-safe copies of."),
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="With one run file: the copy to write (default: RUN.redacted.json)."),
) -> None:
    """Write share-safe copies of run files: host names, user names, home paths and the command's paths replaced
    by stable placeholders; cases, metrics and fingerprint kept, so compare and history work on them."""
    from tribench.harness.results import load_run
    from tribench.reports.share_safe import redact_run

    if output is not None and len(runs) != 1:
        raise InvalidValue("--output names the copy of ONE run file; drop it to write RUN.redacted.json for each")
    for run_file in runs:
        target = output or run_file.with_name(run_file.stem + ".redacted.json")
        _write(target, json.dumps(redact_run(load_run(run_file)), indent=1), "redacted run file")
        err.print(f"wrote {escape(str(target))}")
