"""The HTML report's "Scaling with devices" section (issue 8): data-parallel throughput and efficiency.

One chart per point that was run on more than one device (workload-size, mode, per-device batch,
precision and compile mode): global throughput and scaling efficiency against the total device count
(hosts x devices per host), one line per backend (and device/run where those vary), with ideal linear
scaling drawn beside it. The numbers are the run file's own (``harness.distributed``): ``throughput``
of a data-parallel case is global (the sum over ranks), ``scaling_efficiency`` = global throughput /
(N x the same point's 1-device throughput in the same run). The 1-device case is that baseline, so it
is drawn at 100% by definition. An efficiency the run file does not have is never drawn (and never as
0): the table under the chart gives its reason. The section exists only when some case ran on more
than one device. Every run-file string goes through ``e`` (HTML) or ``plot_text`` (plotly).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tribench.reports.dataset import PATTERNS, ReportData
from tribench.reports.html import charts as chart_kinds
from tribench.reports.html.blocks import STATUS_CLASS, Section, chart_div, e, notice, table
from tribench.reports.html.charts import Chart, plot_text
from tribench.reports.report_format import missing, number, whole
from tribench.reports.units import seconds

SECTION_ID = "scale-out"
TITLE = "Scaling with devices (data-parallel)"
GROUP_COLUMNS = ["task", "mode", "batch_size", "precision", "compile"]
BASELINE_TEXT = "100% (the 1-device baseline)"
IDEAL_COLOUR = "#616161"
SCALING_COLUMNS = ("backend", "workload", "setting", "devices", "global throughput (samples/s)",
                   "scaling efficiency")


def data_parallel(data: ReportData) -> bool:
    """Whether any case of the report ran on more than one device."""
    return bool((data.frame["total_devices"] > 1).any())


def _setting(row) -> str:
    return f"{row['mode']} · bs{whole(row['batch_size'])} · {row['precision']} · {row['compile']}"


def _line(row) -> str:
    """The line a case belongs to: its series, plus the interpreter label of a same-job A/B run."""
    return f"{row['series']} · {row['env']}" if row["env"] else str(row["series"])


def groups(data: ReportData) -> Iterator[tuple[str, str, Any]]:
    """(task, setting, rows) per point that has a case on more than one device; rows hold every device
    count of the point, any status, fewest devices first."""
    frame = data.frame.assign(line=data.frame.apply(_line, axis=1) if len(data.frame) else [])
    for _, rows in frame.groupby(GROUP_COLUMNS, sort=False, dropna=False):
        if (rows["total_devices"] > 1).any():
            rows = rows.sort_values(["total_devices", "nodes"], kind="stable")
            yield rows["task"].iloc[0], _setting(rows.iloc[0]), rows


def devices_text(row) -> str:
    """'2' on one host, '4 (2 hosts × 2)' across hosts."""
    total, nodes = int(row["total_devices"]), int(row["nodes"] or 1)
    return str(total) if nodes == 1 else f"{total} ({nodes} hosts × {int(row['devices'])})"


def efficiency_percent(row) -> float | None:
    """Scaling efficiency in %: 100 for an ok 1-device case (its own baseline), None where the run file has none."""
    if row["status"] != "ok":
        return None
    if row["total_devices"] == 1:
        return 100.0
    return None if missing(row["scaling_efficiency"]) else 100.0 * row["scaling_efficiency"]


def efficiency_reason(row) -> str | None:
    """Why a case has no efficiency figure (None when it has one)."""
    if row["status"] != "ok":
        return f"the case did not finish ({row['status']})"
    if row["total_devices"] == 1 or not missing(row["scaling_efficiency"]):
        return None
    return str(row["scaling_efficiency_reason"] or "no reason recorded")


def efficiency_text(row) -> str:
    percent = efficiency_percent(row)
    if percent is None:
        return f"n/a: {efficiency_reason(row)}"
    return BASELINE_TEXT if row["total_devices"] == 1 else f"{number(percent)}%"


def _per_device(row) -> float | None:
    value = row["throughput_samples_per_s"]
    return None if row["status"] != "ok" or missing(value) else value / row["total_devices"]


def _slowest_rank_text(row) -> str:
    if row["total_devices"] == 1 or missing(row["slowest_rank"]):
        return "–"
    step = row["slowest_rank_step_s"]
    return f"rank {whole(row['slowest_rank'])}" + ("" if missing(step) else f": {seconds(step)} median step")


def _rank_spread(row) -> str:
    rates = [r for r in (row["rank_throughputs"] or []) if not missing(r)]
    return "–" if len(rates) < 2 else f"{number(min(rates))} – {number(max(rates))}"


def scaling_rows(data: ReportData) -> list[dict[str, Any]]:
    """Plain-text cells (SCALING_COLUMNS, unescaped) of every case of every data-parallel point."""
    rows = []
    for task, setting, group in groups(data):
        for _, row in group.iterrows():
            throughput = row["throughput_samples_per_s"] if row["status"] == "ok" else None
            rows.append({"run": row["run_label"], "case": row["case_id"], "backend": row["line"], "workload": task,
                         "setting": setting, "devices": devices_text(row),
                         "global throughput (samples/s)": number(throughput),
                         "scaling efficiency": efficiency_text(row)})
    return rows


# ---------------------------------------------------------------- chart


def _hover_rows(group) -> list[list[str]]:
    return [[plot_text(row["case_id"]), plot_text(devices_text(row)), number(_per_device(row)),
             plot_text(efficiency_text(row)), plot_text(_slowest_rank_text(row))] for _, row in group.iterrows()]


def _style(data: ReportData, group) -> dict[str, Any]:
    colour = data.colours.get(group["backend"].iloc[0], "#888")
    style = PATTERNS.index(data.patterns.get(group["series"].iloc[0], ""))  # symbol and dash per device/run
    return {"line": {"color": colour, "dash": chart_kinds.LINE_DASHES[style % len(chart_kinds.LINE_DASHES)]},
            "marker": {"color": colour, "size": 9, "symbol": chart_kinds.SYMBOLS[style % len(chart_kinds.SYMBOLS)]}}


def _add_line(figure, data: ReportData, line: str, group) -> None:
    """One line's throughput, its ideal (N x its 1-device throughput) and its efficiency where known."""
    name, style = plot_text(line), _style(data, group)
    xs = [float(x) for x in group["total_devices"]]
    values = chart_kinds._numbers(group["throughput_samples_per_s"])
    figure.add_scatter(x=xs, y=values, row=1, col=1, name=name, legendgroup=name, mode="lines+markers", **style,
                       customdata=_hover_rows(group),
                       hovertemplate="%{customdata[0]}<br>%{customdata[1]} device(s): %{y:,.4g} samples/s (global), "
                                     "%{customdata[2]} per device<br>efficiency %{customdata[3]}<br>slowest "
                                     "%{customdata[4]}<extra>%{fullData.name}</extra>")
    base = group[group["total_devices"] == 1]["throughput_samples_per_s"]
    if len(base):
        ideal = [float(base.iloc[0]) * x for x in xs]
        figure.add_scatter(x=xs, y=ideal, row=1, col=1, name=f"{name}: ideal (N × its 1-device throughput)",
                           legendgroup=name, mode="lines", line={"color": style["line"]["color"], "dash": "dot",
                                                                 "width": 1.5},
                           hovertemplate="ideal at %{x} device(s): %{y:,.4g} samples/s<extra></extra>")
    known = [(x, p, hover) for x, p, hover in zip(xs, map(efficiency_percent, (r for _, r in group.iterrows())),
                                                   _hover_rows(group), strict=True) if p is not None]
    if known:
        figure.add_scatter(x=[k[0] for k in known], y=[k[1] for k in known], row=1, col=2, name=name,
                           legendgroup=name, showlegend=False, mode="lines+markers", **style,
                           customdata=[k[2] for k in known],
                           hovertemplate="%{customdata[0]}<br>%{customdata[1]} device(s): efficiency "
                                         "%{customdata[3]}<extra>%{fullData.name}</extra>")


def scaling_chart(data: ReportData, task: str, setting: str, rows, key: str) -> Chart:
    """Global throughput (left) and scaling efficiency (right) against total devices, one line per backend."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                           subplot_titles=("global throughput (samples/s)", "scaling efficiency (% of ideal)"))
    ok = rows[(rows["status"] == "ok") & rows["throughput_samples_per_s"].notna()]
    for line, group in ok.groupby("line", sort=False):
        _add_line(figure, data, line, group)
    counts = sorted({int(x) for x in ok["total_devices"]})
    figure.add_scatter(x=[counts[0], counts[-1]], y=[100.0, 100.0], row=1, col=2, mode="lines",
                       name="ideal: 100% efficiency", line={"color": IDEAL_COLOUR, "dash": "dash", "width": 1.5},
                       hoverinfo="name")
    layout = chart_kinds._base_layout(
        f"Scaling with devices: {plot_text(task)} · {plot_text(setting)}",
        "left: global throughput (samples/s, sum over ranks; higher is better), dotted: ideal linear scaling; "
        "right: scaling efficiency (% of ideal; the 1-device point is 100% by definition)", "backend and ideal")
    layout.update(height=460)
    figure.update_layout(layout)
    efficiencies = [p for p in (efficiency_percent(r) for _, r in ok.iterrows()) if p is not None]
    for col, axis in ((1, "global throughput (samples/s)"), (2, "scaling efficiency (% of ideal)")):
        figure.update_xaxes(title_text="devices (hosts × devices per host)", type="log", tickvals=counts,
                            ticktext=[str(c) for c in counts], row=1, col=col)
        figure.update_yaxes(title_text=axis, rangemode="tozero", row=1, col=col)
    figure.update_yaxes(range=[0, max([110.0, *efficiencies]) * 1.05], row=1, col=2)
    return Chart(key, figure)


# ---------------------------------------------------------------- section


def _efficiency_cell(row) -> tuple[str, Any]:
    percent = efficiency_percent(row)
    if percent is None:
        return f'<span class="na">n/a</span>: {e(efficiency_reason(row))}', None
    return e(efficiency_text(row)), percent


def _number_cell(value: Any) -> tuple[str, Any]:
    return (e(number(None if missing(value) else value)), None if missing(value) else value)


def scaling_table(data: ReportData, rows) -> str:
    """Every case of one point: devices, status, global and per-device throughput, efficiency or why not."""
    with_run = len(data.runs) > 1
    body = []
    for _, row in rows.iterrows():
        throughput = row["throughput_samples_per_s"] if row["status"] == "ok" else None
        body.append([*([(e(row["run_label"]), row["run_label"])] if with_run else []),
                     (f"<code>{e(row['case_id'])}</code>", row["case_id"]), (e(row["line"]), row["line"]),
                     (e(devices_text(row)), row["total_devices"]),
                     (f'<span class="status {STATUS_CLASS.get(row["status"], "failed")}">{e(row["status"])}</span>',
                      row["status"]),
                     _number_cell(throughput), _number_cell(_per_device(row)), _efficiency_cell(row),
                     (e(_slowest_rank_text(row)), None), (e(_rank_spread(row)), None)])
    headers = (["run"] if with_run else []) + ["case", "backend", "devices", "status", "global throughput (samples/s)",
                                               "per device (samples/s)", "scaling efficiency", "slowest rank",
                                               "rank throughputs (samples/s)"]
    return table(headers, body, css="numbers scale-out", sortable=True)


INTRO = ("<p>Data-parallel cases: torch runs one process per device; JAX and TensorFlow run one process per host "
         "driving all its devices. The x axis is the total device count (hosts × "
         "devices per host); <b>global throughput</b> is the sum over ranks of per-device batch / the rank's median "
         "step time. <b>Scaling efficiency</b> = global throughput / (N × the same point's 1-device throughput in "
         "the same run): 100% is ideal linear scaling (the dotted and dashed lines). The 1-device case is the "
         "baseline, so it is drawn at 100% by definition. An efficiency the run file does not hold is left out of "
         "the chart (never drawn as 0) and its reason is in the table under the chart. There are no error bars: "
         "the global figure sums the ranks' medians; the table lists the slowest rank and each rank's "
         "throughput.</p>")


def scale_out_sections(data: ReportData) -> list[Section]:
    """The section when some case ran on more than one device, otherwise none."""
    if not data_parallel(data):
        return []
    body, charts = INTRO, []
    for task, setting, rows in groups(data):
        body += f"<h3>{e(task)} · {e(setting)}</h3>"
        if ((rows["status"] == "ok") & rows["throughput_samples_per_s"].notna()).any():
            charts.append(scaling_chart(data, task, setting, rows, f"{SECTION_ID}-{len(charts)}"))
            body += chart_div(charts[-1])
        else:
            body += notice("no case of this point finished, so there is nothing to chart", "info")
        body += scaling_table(data, rows)
    return [Section(SECTION_ID, TITLE, body, charts)]
