"""A compact markdown summary of run files, for a GitHub job summary or a PR comment.

Every string from a run file goes through ``md``: HTML is escaped (``<`` -> ``&lt;``) and every
markdown control character is backslash-escaped, so a crafted case id or error message shows as
text and cannot open a link, an image, a table cell or raw HTML. Newlines become spaces, so a
value never breaks a table row.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from tribench.reports.dataset import ReportData, fingerprint_differences
from tribench.reports.generation_figures import GENERATION_COLUMNS, GENERATION_LEGEND
from tribench.reports.html.scaling_section import SCALING_COLUMNS, scaling_rows
from tribench.reports.report_format import execution_legend, threads_lines, throughput_legend
from tribench.reports.text.summary import (
    SUMMARY_COLUMNS,
    energy_reasons,
    generation_reasons,
    generation_rows,
    ok_rows,
    problem_rows,
    status_counts,
)

MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>:])")


def md(value: object) -> str:
    """Make any text inert in markdown (GitHub-flavoured, with raw HTML allowed)."""
    text = " ".join(str(value if value is not None else "").split())
    text = html.escape(text, quote=False)  # & < > first; the escapes below never touch entity text
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _runs(data: ReportData) -> list[str]:
    rows = []
    for run in data.runs:
        env = run.environment
        rows.append([md(run.label), md((env.get("machine") or {}).get("hostname")), md(run.data.get("started_at")),
                     md(run.data.get("state")), md(run.fingerprint)])
    return _table(["run", "host", "started", "state", "fingerprint"], rows)


def _fingerprint_warning(data: ReportData) -> list[str]:
    if not data.fingerprints_differ():
        return []
    fields = ", ".join(md(name) for name, _ in fingerprint_differences(data)) or "unknown fields"
    return ["", "> [!WARNING]", f"> **Fingerprints differ** between these runs (differs in: {fields}): the machines "
            "or software differ, so compare with care."]


def _results(data: ReportData) -> list[str]:
    rows = ok_rows(data)
    if not rows:
        return ["", "No case finished."]
    many_runs = len(data.runs) > 1
    headers = (["run"] if many_runs else []) + [c for c in SUMMARY_COLUMNS if c != "status"]
    cells = []
    for row in rows:
        noise = md(row["noise"]) + (" ⚠" if row["noisy"] else "")
        values = [md(row[c]) if c != "noise" else noise for c in SUMMARY_COLUMNS if c != "status"]
        cells.append(([md(row["run"])] if many_runs else []) + values)
    lines = ["", "### Results", "", *_table(headers, cells), ""]
    if any(row["noisy"] for row in rows):
        lines.append("⚠ noise (IQR / median of the step time) above 10%: that number is less trustworthy.")
    for reason, count in energy_reasons(data):
        lines.append(f"Energy not measured for {count} case(s): {md(reason)}.")
    cases = [case for run in data.runs for case in run.data.get("cases", [])]
    lines.extend(["", *(md(line) for line in throughput_legend(cases))] if throughput_legend(cases) else [])
    legend = execution_legend(cases)
    if legend:
        lines.extend(["", "Compile modes:", *(f"- {md(line)}" for line in legend)])
    threads = threads_lines([run.data for run in data.runs])
    if threads:
        lines.extend(["", *(md(line) for line in threads)])
    return lines


def _scaling(data: ReportData) -> list[str]:
    """Data-parallel points: global throughput and scaling efficiency per device count (or why there is none)."""
    rows = scaling_rows(data)
    if not rows:
        return []
    many_runs = len(data.runs) > 1
    cells = [([md(r["run"])] if many_runs else []) + [md(r[c]) for c in SCALING_COLUMNS] for r in rows]
    return ["", "### Data-parallel scaling", "", *_table((["run"] if many_runs else []) + list(SCALING_COLUMNS), cells)]


def _generation(data: ReportData) -> list[str]:
    """Generate cases: TTFT, TPOT, tokens/s, KV cache, MFU and decode bandwidth (or why they are n/a)."""
    rows = generation_rows(data)
    if not rows:
        return []
    many_runs = len(data.runs) > 1
    headers = (["run"] if many_runs else []) + list(GENERATION_COLUMNS)
    cells = [([md(r["run"])] if many_runs else []) + [md(r[c]) for c in GENERATION_COLUMNS] for r in rows]
    reasons = [f"MFU or bandwidth fraction n/a: {md(reason)}." for reason in generation_reasons(data)]
    return ["", "### Generation", "", *_table(headers, cells), "", md(GENERATION_LEGEND), *reasons]


def _problems(data: ReportData) -> list[str]:
    rows = problem_rows(data)
    if not rows:
        return []
    many_runs = len(data.runs) > 1
    headers = (["run"] if many_runs else []) + ["case", "status", "reason"]
    cells = [([md(r["run"])] if many_runs else []) + [md(r["case"]), f"**{md(r['status'])}**", md(r["reason"])]
             for r in rows]
    return ["", f"### Failed, timed-out and skipped ({len(rows)})", "", *_table(headers, cells)]


def render(data: ReportData) -> str:
    """The summary as markdown text (ends with a newline)."""
    lines = ["## tribench report", "", f"{len(data.runs)} run(s), {len(data.frame)} case(s): {status_counts(data)}",
             "", *_runs(data), *_fingerprint_warning(data), *_results(data), *_generation(data), *_scaling(data),
             *_problems(data)]
    return "\n".join(lines) + "\n"


def append_to_step_summary(text: str, environ: dict[str, str] | None = None) -> Path | None:
    """Append to $GITHUB_STEP_SUMMARY when it is set (GitHub Actions); returns the file written, if any."""
    target = (os.environ if environ is None else environ).get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
    return path
