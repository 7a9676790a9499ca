"""The history as one self-contained HTML page: each series plotted, its change points marked.

plotly.js is inlined once, so the page works offline. Every string from a run
file (case ids, run ids, commits, file paths) is HTML-escaped before it goes
into the page or into a chart (plotly renders some markup in labels).
"""

from __future__ import annotations

import html
from typing import Any

from tribench.reports.regression.history import RunInfo, Series

_SCALE = {"s": (1e3, "ms"), "bytes": (1 / 2**20, "MiB")}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.change { color: #b00020; } .improvement { color: #1b7f3b; } .muted { color: #666; font-size: 0.9rem; }
"""


def _short(commit: str | None) -> str:
    return (commit or "no commit")[:8]


def _figure(series: Series) -> Any:
    import plotly.graph_objects as go

    factor, unit = _SCALE.get(series.unit, (1.0, series.unit))
    xs = list(range(len(series.values)))
    ys = [value * factor for value in series.values]
    hover = [html.escape(f"run {run.run_id}<br>commit {_short(run.commit)}<br>{run.when or ''}")
             .replace("&lt;br&gt;", "<br>") for run in series.runs]
    figure = go.Figure(go.Scatter(x=xs, y=ys, mode="lines+markers", name=html.escape(series.metric),
                                  hovertext=hover, hoverinfo="text+y", line={"color": "#3366cc"}))
    bounds = [0] + [point.index for point in series.change_points] + [len(ys)]
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):  # segment medians
        segment = sorted(ys[start:end])
        middle = segment[len(segment) // 2] if len(segment) % 2 else sum(segment[len(segment) // 2 - 1:
                                                                                 len(segment) // 2 + 1]) / 2
        figure.add_shape(type="line", x0=start - 0.4, x1=end - 0.6, y0=middle, y1=middle,
                         line={"color": "#999", "dash": "dot"})
    for point in series.change_points:
        colour = "#b00020" if point.direction == "regression" else "#1b7f3b"
        figure.add_vline(x=point.index - 0.5, line={"color": colour, "dash": "dash"})
        figure.add_annotation(x=point.index, y=ys[point.index], text=html.escape(
            f"{point.magnitude * 100:+.1f}% (p={point.p_value:.2g})"), showarrow=True, font={"color": colour})
    figure.update_layout(
        title=html.escape(f"{series.case_id} — {series.metric} per run (commit order)"),
        xaxis={"title": "run (ordered by commit time)", "tickmode": "array", "tickvals": xs,
               "ticktext": [html.escape(_short(run.commit)) for run in series.runs]},
        yaxis={"title": html.escape(f"{series.metric} ({unit})")}, height=360, margin={"t": 60, "b": 60},
        showlegend=False)
    return figure


def _change_list(series: Series) -> str:
    if not series.change_points:
        return '<p class="muted">no change point</p>'
    items = []
    for point in series.change_points:
        env = f"; environment changed: {'; '.join(point.environment_change)}" if point.environment_change else ""
        items.append(f'<li class="{"change" if point.direction == "regression" else "improvement"}">'
                     + html.escape(f"{point.direction} at run #{point.index} ({point.run_id}, commit "
                                   f"{_short(point.commit)}): {point.magnitude * 100:+.1f}%, p={point.p_value:.2g}"
                                   f"{env}") + "</li>")
    return "<ul>" + "".join(items) + "</ul>"


def render(series: list[Series], runs: list[RunInfo], notes: list[str] | None = None) -> str:
    """The whole page as a string."""
    import plotly.offline

    sections = []
    for index, entry in enumerate(series):
        chart = _figure(entry).to_html(full_html=False, include_plotlyjs=False, div_id=f"series-{index}")
        sections.append(f"<section><h2>{html.escape(entry.case_id)} — {html.escape(entry.metric)}</h2>"
                        f"{_change_list(entry)}{chart}</section>")
    basis = sorted({run.when_source for run in runs})
    notes_html = "".join(f'<p class="muted">{html.escape(note)}</p>' for note in notes or [])
    changes = sum(len(entry.change_points) for entry in series)
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>tribench history</title>"
        f"<style>{_STYLE}</style><script type=\"text/javascript\">{plotly.offline.get_plotlyjs()}</script>"
        "</head><body>"
        f"<h1>tribench history: {len(series)} series over {len(runs)} runs, {changes} change point(s)</h1>"
        f'<p class="muted">runs ordered by {html.escape(" / ".join(basis))}; change points by E-divisive means '
        "with a permutation test; dotted lines are segment medians</p>"
        f"{notes_html}{''.join(sections)}</body></html>"
    )
