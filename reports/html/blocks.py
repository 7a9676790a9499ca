"""The HTML report's building blocks: a section, escaping, a chart's placeholder, a notice, a sortable table.

Every string that comes from a run file goes through ``e`` (``html.escape`` with quotes), so a
crafted run file cannot add markup; the only raw HTML is the blocks' own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from tribench.reports.html.charts import Chart
from tribench.reports.report_format import missing as _missing

STATUS_CLASS = {"ok": "ok", "skipped": "skipped", "failed": "failed", "timeout": "failed"}


@dataclass
class Section:
    id: str
    title: str
    body: str
    charts: list[Chart] = field(default_factory=list)


def e(value: object) -> str:
    """Escape anything for HTML text or a quoted attribute; None shows as an empty string."""
    return escape("" if value is None else str(value), quote=True)


def chart_div(chart: Chart) -> str:
    caption = f'<p class="caption">{chart.caption}</p>' if chart.caption else ""
    return f'<figure class="chart-box"><div class="chart" id="chart-{e(chart.key)}" data-chart="{e(chart.key)}">' \
           f"</div>{caption}</figure>"


def notice(text: str, kind: str = "warning") -> str:
    """A visible box; ``text`` must already be escaped."""
    mark = "⚠" if kind == "warning" else "note:"
    return f'<div class="notice {kind}" role="note"><span class="mark">{mark}</span> {text}</div>'


def table(headers: list[str], rows: list[list[tuple[str, Any]]], css: str = "", sortable: bool = False) -> str:
    """Rows of (escaped cell HTML, sort value or None); headers are trusted plain text."""
    head = "".join(f'<th scope="col">{e(h)}</th>' for h in headers)
    body = []
    for row in rows:
        cells = []
        for html_text, sort_value in row:
            key = "" if _missing(sort_value) else f' data-sort="{e(sort_value)}"'
            cells.append(f"<td{key}>{html_text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    classes = " ".join(c for c in (css, "sortable" if sortable else "") if c)
    title = ' title="click a column heading to sort"' if sortable else ""
    return (f'<div class="table-wrap"><table class="{classes}"{title}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')
