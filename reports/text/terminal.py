"""``tribench report --format table``: the report as rich tables for the terminal.

Strings from run files are passed through ``rich.markup.escape`` so a case id such as
``[bold]x[/]`` prints as text, not as markup.
"""

from __future__ import annotations

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tribench.reports.dataset import ReportData, fingerprint_differences
from tribench.reports.text.summary import (
    SUMMARY_COLUMNS,
    energy_reasons,
    generation_reasons,
    generation_rows,
    ok_rows,
    problem_rows,
    status_counts,
)
from tribench.reports.text.table import generation_table

STATUS_STYLE = {"ok": "green", "skipped": "yellow", "failed": "red", "timeout": "red"}


def runs_table(data: ReportData) -> Table:
    table = Table(title=f"tribench report: {len(data.runs)} run(s), {status_counts(data)}")
    for column in ("run", "file", "host", "started", "state", "fingerprint"):
        table.add_column(column, overflow="fold")
    for run in data.runs:
        host = (run.environment.get("machine") or {}).get("hostname")
        table.add_row(*(escape(str(v)) for v in (run.label, run.path, host, run.data.get("started_at"),
                                                  run.data.get("state"), run.fingerprint)))
    return table


def fingerprint_warning(data: ReportData) -> Text | None:
    if not data.fingerprints_differ():
        return None
    fields = ", ".join(name for name, _ in fingerprint_differences(data)) or "unknown fields"
    return Text(f"⚠ fingerprints differ (in: {fields}): the machines or software differ; compare with care",
                style="bold red")


def results_table(data: ReportData) -> Table:
    many_runs = len(data.runs) > 1
    table = Table(title="results (ok cases)")
    for column in (["run"] if many_runs else []) + [c for c in SUMMARY_COLUMNS if c != "status"]:
        table.add_column(column, overflow="fold")
    for row in ok_rows(data):
        noise = escape(row["noise"]) + (" [bold red]⚠[/]" if row["noisy"] else "")
        cells = [escape(row[c]) if c != "noise" else noise for c in SUMMARY_COLUMNS if c != "status"]
        table.add_row(*([escape(row["run"])] if many_runs else []), *cells)
    return table


def generation_results(data: ReportData) -> Table | None:
    """The ok generate cases' TTFT, TPOT, tokens/s, KV cache, MFU and decode bandwidth; None without any."""
    rows = generation_rows(data)
    if not rows:
        return None
    return generation_table(rows, generation_reasons(data), "generation (ok generate cases)", len(data.runs) > 1)


def problems_table(data: ReportData) -> Table | None:
    rows = problem_rows(data)
    if not rows:
        return None
    table = Table(title="failed, timed-out and skipped cases")
    for column in ("run", "case", "status", "reason"):
        table.add_column(column, overflow="fold")
    for row in rows:
        style = STATUS_STYLE.get(row["status"], "red")
        table.add_row(escape(row["run"]), escape(row["case"]), f"[{style}]{escape(row['status'])}[/]",
                      escape(row["reason"]))
    return table


def render(data: ReportData) -> Group:
    parts = [runs_table(data), fingerprint_warning(data), results_table(data), generation_results(data),
             problems_table(data)]
    notes = [Text(f"energy not measured for {count} case(s): {reason}", style="dim")
             for reason, count in energy_reasons(data)]
    return Group(*(part for part in parts if part is not None), *notes)
