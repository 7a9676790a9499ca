"""The history as a terminal table, markdown or JSON (the HTML view is reports.history_html)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from tribench.reports.regression.compare_render import format_value, md_escape
from tribench.reports.regression.history import ChangePointInfo, RunInfo, Series


def describe_point(point: ChangePointInfo) -> str:
    env = f"; environment changed: {'; '.join(point.environment_change)}" if point.environment_change else ""
    return (f"{point.direction} at run #{point.index} ({point.run_id}, commit {(point.commit or 'none')[:8]}): "
            f"{point.magnitude * 100:+.1f}%, p={point.p_value:.2g}{env}")


def _rows(series: list[Series]) -> list[tuple[Series, str, str]]:
    return [(entry, format_value(entry.values[-1], entry.unit),
             "\n".join(describe_point(point) for point in entry.change_points) or "none")
            for entry in series]


def table(series: list[Series], runs: list[RunInfo]) -> Table:
    changes = sum(len(entry.change_points) for entry in series)
    result = Table(title=f"tribench history: {len(series)} series over {len(runs)} runs, {changes} change point(s)",
                   caption="runs ordered by commit time (else run start); change points: E-divisive means, "
                           "permutation test")
    for column in ("case", "metric", "runs", "latest", "change points"):
        result.add_column(column, overflow="fold")
    for entry, latest, points in _rows(series):
        style = "red" if any(p.direction == "regression" for p in entry.change_points) else ""
        shown = f"[{style}]{escape(points)}[/]" if style else escape(points)
        result.add_row(escape(entry.case_id), entry.metric, str(len(entry.values)), escape(latest), shown)
    return result


def markdown(series: list[Series], runs: list[RunInfo]) -> str:
    lines = [f"### tribench history: {len(series)} series over {len(runs)} runs", "",
             "| case | metric | runs | latest | change points |", "| --- | --- | --- | --- | --- |"]
    for entry, latest, points in _rows(series):
        lines.append(f"| {md_escape(entry.case_id)} | {entry.metric} | {len(entry.values)} | {md_escape(latest)} | "
                     f"{'<br>'.join(md_escape(line) for line in points.splitlines())} |")
    return "\n".join(lines) + "\n"


def as_dict(series: list[Series], runs: list[RunInfo], notes: list[str]) -> dict[str, Any]:
    return {"kind": "tribench-history", "runs": [{"run_id": run.run_id, "path": run.path, "commit": run.commit,
                                                  "when": run.when, "ordered_by": run.when_source} for run in runs],
            "notes": notes, "series": [entry.to_dict() for entry in series]}
