"""The HTML report: ONE self-contained file built from run files alone.

plotly.js is inlined from the installed plotly package by default, so the file works offline
and can be attached to a CI run or mailed; ``plotly_js="cdn"`` links it from plotly's CDN instead
(a much smaller file that needs a network to draw its charts). Figures travel as one JSON block
in a ``<script type="application/json">`` element with ``<``, ``>`` and ``&`` written as ``\\u``
escapes, so no string from a run file can close the script element or open a new one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from tribench.reports import dataset
from tribench.reports.dataset import ReportData
from tribench.reports.html.blocks import Section, e
from tribench.reports.html.page_assets import CHARTS_JS, CSS, SORT_JS
from tribench.reports.html.sections import all_sections, header
from tribench.version import __version__

PLOTLY_CHOICES = ("inline", "cdn")
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_safe_json(text: str) -> str:
    """JSON text made safe inside a <script> element (valid JSON still: the escapes sit in strings)."""
    for raw, escaped in _JSON_ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


def plotly_script(plotly_js: str) -> str:
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    if plotly_js == "cdn":
        url = f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"
        return f'<script src="{e(url)}" charset="utf-8"></script>'
    source = get_plotlyjs()
    if "</script" in source.lower():  # never true for plotly's bundle; guards the inlining anyway
        source = source.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")
    return f'<script type="text/javascript">{source}</script>'


def figures_json(sections: list[Section]) -> str:
    parts = []
    for section in sections:
        for chart in section.charts:
            parts.append(f'"{chart.key}":{chart.figure.to_json()}')
    return script_safe_json("{" + ",".join(parts) + "}")


def _nav(sections: list[Section]) -> str:
    return "<nav>" + "".join(f'<a href="#{s.id}">{e(s.title)}</a>' for s in sections) + "</nav>"


def render(data: ReportData, plotly_js: str = "inline", generated_at: str | None = None) -> str:
    """The whole report as one HTML document."""
    if plotly_js not in PLOTLY_CHOICES:
        raise ValueError(f"plotly_js must be one of {PLOTLY_CHOICES}, got {plotly_js!r}")
    generated_at = generated_at or datetime.now(UTC).isoformat(timespec="seconds")
    sections = all_sections(data)
    body = "".join(f'<section id="{s.id}"><h2>{e(s.title)}</h2>{s.body}</section>' for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>tribench report — {e(', '.join(run.label for run in data.runs))}</title>"
        f'<style>{CSS}</style>{plotly_script(plotly_js)}</head><body>'
        f"{header(data, generated_at, __version__)}{_nav(sections)}<main>{body}</main>"
        '<footer>tribench — every number above comes from the run files listed in "Runs and environment".</footer>'
        f'<script type="application/json" id="tribench-figures">{figures_json(sections)}</script>'
        f"<script>{CHARTS_JS}</script><script>{SORT_JS}</script></body></html>\n"
    )


def default_output(first_run: str | os.PathLike) -> Path:
    """report.html next to the first run file."""
    return Path(first_run).parent / "report.html"


def write_report(run_paths: Iterable[str | os.PathLike], output: str | os.PathLike | None = None,
                 plotly_js: str = "inline", redact: bool = False) -> Path:
    """Load the run files (share-safe copies with ``redact``), render the report and write it (atomically);
    returns its path."""
    from tribench.harness.results import check_writable

    run_paths = list(run_paths)
    data = dataset.load(run_paths, redact=redact)
    path = Path(output) if output else default_output(run_paths[0])
    check_writable(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(render(data, plotly_js), encoding="utf-8")
    os.replace(temporary, path)
    return path
