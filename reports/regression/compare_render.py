"""A comparison as a terminal table, a markdown summary (GitHub job summary / PR comment) or JSON.

Every string that came from a run file (case ids, reasons, paths, run ids) is
escaped for the output it goes into.
"""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from tribench.reports import units
from tribench.reports.regression.compare import DEFAULT_FAIL_ON, CaseResult, Comparison, MetricResult

STYLE = {"regressed": "red", "improved": "green", "unchanged": "", "inconclusive": "yellow",
         "not-comparable": "magenta", "new": "cyan", "missing": "cyan", "failed": "red"}
ICON = {"regressed": "🔴", "improved": "🟢", "unchanged": "⚪", "inconclusive": "🟡", "not-comparable": "🟣",
        "new": "🆕", "missing": "➖", "failed": "💥"}
_MARKDOWN_SPECIAL = "\\`*_{}[]()#+!|~"


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "s":
        return units.seconds(value)
    if unit == "bytes":
        return units.bytes_(value)
    if unit == "samples/s":
        return units.rate(value, "samples/s")
    return f"{value:.4g} {unit}"


def _change(metric: MetricResult) -> str:
    return "n/a" if metric.change is None else f"{metric.change * 100:+.1f}%"


def _ci(metric: MetricResult) -> str:
    if metric.ci_low is None or metric.ci_high is None:
        return "–"
    return f"[{(metric.ci_low - 1) * 100:+.1f}%, {(metric.ci_high - 1) * 100:+.1f}%]"


def _p(metric: MetricResult) -> str:
    return "–" if metric.p_adjusted is None else f"{metric.p_adjusted:.2g}"


def _processes(metric: MetricResult) -> str:
    return "–" if metric.n_base is None else f"{metric.n_base} vs {metric.n_head}"


def _detectable(metric: MetricResult) -> str:
    """The minimum detectable change, and for an undecided metric how many processes would resolve it."""
    if metric.min_detectable is None:
        return "–"
    text = f"{metric.min_detectable * 100:.1f}%"
    if metric.verdict == "inconclusive" and metric.processes_needed is not None:
        text += f" (~{metric.processes_needed}/side for {metric.resolve * 100:g}%)"
    return text


def metric_cells(metric: MetricResult) -> list[str]:
    """label, base, head, change, CI, adjusted p, processes, minimum detectable change."""
    label = metric.label + ("" if metric.gated else " (not gated)")
    return [label, format_value(metric.base, metric.unit), format_value(metric.head, metric.unit), _change(metric),
            _ci(metric), _p(metric), _processes(metric), _detectable(metric)]


def _verdict_note(metric: MetricResult) -> str:
    """Why a metric is not-comparable, or why an untestable one is inconclusive (e.g. one process per side)."""
    if metric.verdict == "not-comparable" or (metric.verdict == "inconclusive" and metric.min_detectable is None):
        return metric.reason
    return ""


def summary_line(comparison: Comparison) -> str:
    counts = comparison.counts()
    parts = [f"{count} {verdict}" for verdict, count in counts.items() if count]
    return ", ".join(parts) or "no cases"


def settings_line(comparison: Comparison) -> str:
    settings = comparison.settings
    return (f"threshold {settings.thresholds.describe()} on the log ratio; unit: the process (t-test on log "
            f"per-process values); significance: one-sided adjusted p ≤ {settings.alpha:g} (Benjamini-Hochberg "
            f"per direction over {comparison.tests} gated tests); {settings.confidence:.0%} t-interval of the "
            f"ratio; change = head/base − 1; detectable = the smallest worse change caught with 95% power")


def _side_text(side: dict[str, Any], quote=lambda text: str(text)) -> str:
    """``path (run ID, commit SHA)``; ``quote`` escapes each run-file string for the output."""
    commit = (side.get("git_commit") or "no commit")[:12]
    env = f", env {quote(side['env'])}" if side.get("env") else ""
    return f"{quote(side['path'])} (run {quote(side.get('run_id'))}, commit {quote(commit)}{env})"


# ---- terminal -----------------------------------------------------------------------------------

def table(comparison: Comparison) -> Table:
    result = Table(title=f"tribench compare: {summary_line(comparison)}", caption=escape(settings_line(comparison)))
    for column in ("case", "metric", "base", "head", "change", "95% CI", "adj. p", "processes", "detectable",
                   "verdict"):
        result.add_column(column, overflow="fold")
    for case in comparison.cases:
        _add_case_rows(result, case)
    return result


def _add_case_rows(result: Table, case: CaseResult) -> None:
    style = STYLE.get(case.verdict, "")
    verdict = f"[{style}]{case.verdict}[/]" if style else case.verdict
    if not case.metrics:
        result.add_row(escape(case.id), "–", "", "", "", "", "", "", "", f"{verdict}: {escape(case.reason)}")
        return
    for index, metric in enumerate(case.metrics):
        metric_style = STYLE.get(metric.verdict, "")
        shown = f"[{metric_style}]{metric.verdict}[/]" if metric_style else metric.verdict
        if _verdict_note(metric):
            shown += f": {escape(_verdict_note(metric))}"
        result.add_row(escape(case.id) if index == 0 else "", *(escape(cell) for cell in metric_cells(metric)), shown)


def terminal_header(comparison: Comparison) -> list[str]:
    """Lines printed above the table (rich markup, escaped)."""
    lines = [f"base: {_side_text(comparison.base, escape)}", f"head: {_side_text(comparison.head, escape)}"]
    lines += [f"[yellow]warning:[/] {escape(warning)}" for warning in comparison.warnings]
    return lines


# ---- markdown -----------------------------------------------------------------------------------

def md_escape(text: object) -> str:
    """Escape a run-file string for GitHub markdown: no HTML, no markdown syntax, one line."""
    value = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = "".join("\\" + char if char in _MARKDOWN_SPECIAL else char for char in value)
    return " ".join(value.split())


def _md_rows(cases: list[CaseResult]) -> list[str]:
    rows = ["| case | metric | base | head | change | 95% CI | adj. p | processes | detectable | verdict |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for case in cases:
        if not case.metrics:
            rows.append(f"| {md_escape(case.id)} | – | | | | | | | | {ICON[case.verdict]} {case.verdict}: "
                        f"{md_escape(case.reason)} |")
            continue
        for index, metric in enumerate(case.metrics):
            cells = " | ".join(metric_cells(metric))  # tribench's own text: no escaping
            verdict = f"{ICON.get(metric.verdict, '')} {metric.verdict}"
            if _verdict_note(metric):
                verdict += f": {md_escape(_verdict_note(metric))}"
            name = md_escape(case.id) if index == 0 else ""
            rows.append(f"| {name} | {cells} | {verdict} |")
    return rows


def markdown(comparison: Comparison) -> str:
    counts = comparison.counts()
    headline = ("🔴 regression" if counts["regressed"] else "🟡 inconclusive" if counts["inconclusive"]
                else "✅ no regression")
    lines = [f"### tribench compare: {headline} — {summary_line(comparison)}", "",
             f"**base** {_side_text(comparison.base, md_escape)}  ",
             f"**head** {_side_text(comparison.head, md_escape)}  ",
             settings_line(comparison), ""]
    lines += [f"> ⚠️ {md_escape(warning)}" for warning in comparison.warnings]
    if comparison.warnings:
        lines.append("")
    notable = [case for case in comparison.cases if case.verdict != "unchanged"]
    if notable:
        lines += _md_rows(notable) + [""]
    lines += [f"<details><summary>all {len(comparison.cases)} cases</summary>", ""]
    lines += _md_rows(comparison.cases) + ["", "</details>", ""]
    return "\n".join(lines)


def as_json(comparison: Comparison, fail_on: tuple[str, ...] = DEFAULT_FAIL_ON) -> str:
    return json.dumps(comparison.to_dict(fail_on), indent=1)
