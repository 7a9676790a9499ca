"""``tribench report``: one report (HTML, markdown or terminal tables) from one or more run files.

Light to import (``tribench.cli`` registers it at start-up): pandas and plotly are imported
inside the function, only when a report is built.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from tribench.core.errors import InvalidValue
from tribench.core.spec import check_choice

FORMATS = ("html", "markdown", "table")


def html_report_path(run_file: Path) -> Path:
    """Where ``tribench run --report`` puts the HTML report: beside the run file, same name, .html."""
    return run_file.with_suffix(".html")


def report_command_hint(run_file: Path) -> str:
    """The command that builds the HTML report of a run file (printed at the end of ``tribench run``)."""
    return f"tribench report {shlex.quote(str(run_file))} -o {shlex.quote(str(html_report_path(run_file)))}"


def report(
    runs: list[Path] = typer.Argument(..., metavar="RUN.json...",
                                      help="Run files (one or more): e.g. a CPU and a GPU run, or yesterday's "
                                           "and today's."),
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="File to write (html: default report.html next to the first run file; "
                                            "markdown: default standard output)."),
    format_: str = typer.Option("html", "--format", help="html | markdown | table"),
    offline: bool = typer.Option(True, "--offline/--cdn",
                                 help="Embed plotly.js so the HTML works offline (default), or link it from the CDN."),
    redact: bool = typer.Option(False, "--redact", help="Share-safe output: host names, user names, home paths "
                                                         "and the command's paths replaced by placeholders."),
) -> None:
    """Build a report from run files: self-contained HTML, a markdown summary, or terminal tables."""
    check_choice("report format", format_, FORMATS)
    out = Console(width=None if sys.stdout.isatty() else 200)
    if format_ == "html":
        from tribench.reports.html.report import write_report

        path = write_report(runs, output, "inline" if offline else "cdn", redact=redact)
        out.print(f"report: {escape(str(path))}", soft_wrap=True)
        return
    from tribench.reports import dataset

    data = dataset.load(runs, redact=redact)
    if format_ == "table":
        if output is not None:
            raise InvalidValue("--output is not used with --format table; redirect the output instead")
        from tribench.reports.text.terminal import render

        out.print(render(data))
        return
    _markdown(data, output)


def _markdown(data, output: Path | None) -> None:
    from tribench.reports.text.markdown import append_to_step_summary, render

    text = render(data)
    if output is not None:
        from tribench.harness.results import check_writable

        check_writable(output)
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)  # raw: never through rich, which would read brackets as markup
    summary = append_to_step_summary(text)
    if summary is not None:
        print(f"appended to the job summary ({summary})", file=sys.stderr)


def after_run(run_file: Path, write_html: bool, console: Console) -> None:
    """End of ``tribench run``: write the HTML report (``--report``) or print the command that would."""
    if write_html:
        from tribench.reports.html.report import write_report

        path = write_report([run_file], html_report_path(run_file))
        console.print(f"report: {escape(str(path))}", soft_wrap=True)
    else:
        console.print(f"HTML report: {escape(report_command_hint(run_file))}", soft_wrap=True)
