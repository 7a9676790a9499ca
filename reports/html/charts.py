"""Plotly figures for the HTML report: one function per chart kind, each returning ``Chart``s.

Conventions every chart keeps: a title that says what is compared and the unit, axis titles
with units, one colour per backend across the whole report (``ReportData.colours``) and a bar
pattern per device/run, so series of one backend stay distinct. Plotly renders a subset of
HTML inside titles, labels and hover text, so every string from a run file passes through
``plot_text`` (HTML-escaped; plotly shows the entities as literal characters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Any

from tribench.reports.dataset import PATTERNS, ReportData
from tribench.reports.report_format import ci_text, number
from tribench.reports.units import rate, seconds

NOISE_WARNING = 0.10  # IQR/median above this is flagged (same threshold as the terminal summary)
MAX_BOX_SAMPLES = 2000  # per case; more are thinned to evenly spaced order statistics
AXIS_VARIANT = "setting"
AXIS_CASE = "case"
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon")
LINE_DASHES = ("solid", "dash", "dot", "dashdot")
BOX_SHADES = (0.5, 0.12, 0.85, 0.3)  # box fill opacity per device/run (boxes have no patterns)
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"


@dataclass(frozen=True)
class Chart:
    key: str  # stable, unique within a report: the chart's div id
    figure: Any  # plotly.graph_objects.Figure
    caption: str = ""  # trusted HTML shown under the chart (callers escape what they put in)


def plot_text(value: object) -> str:
    """A run-file string made inert for plotly's pseudo-HTML text rendering."""
    return escape(str(value), quote=False)


def _numbers(values) -> list[float | None]:
    return [None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
            for value in values]


def _with_alpha(colour: str, alpha: float) -> str:
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def _case_label(row) -> str:
    return f"{row['task']} · {row['variant']}"


def _base_layout(title: str, subtitle: str = "", legend_title: str = "backend") -> dict[str, Any]:
    text = f"<b>{title}</b>" + (f"<br><span style='font-size:12px;color:#555'>{subtitle}</span>" if subtitle else "")
    return {
        "template": "plotly_white",
        "title": {"text": text, "x": 0, "xanchor": "left", "xref": "container", "y": 1, "yref": "container",
                  "yanchor": "top", "pad": {"t": 14, "l": 4}, "font": {"size": 16}},
        "font": {"family": FONT, "size": 12},
        "margin": {"l": 10, "r": 20, "t": 84, "b": 60},
        "legend": {"orientation": "v", "x": 1.01, "xanchor": "left", "y": 1, "yanchor": "top",
                   "title": {"text": legend_title}},
        "hoverlabel": {"align": "left"},
        "showlegend": True,  # even for one backend: the legend says which colour it is
    }


def _marker(data: ReportData, backend: str, series: str) -> dict[str, Any]:
    return {"color": data.colours.get(backend, "#888"), "pattern": {"shape": data.patterns.get(series, "")},
            "line": {"color": "#333", "width": 0.5}}


def _height(categories: int, series: int) -> int:
    """Room for every bar (and for the rotated category-axis title next to them)."""
    return max(300, 160 + categories * max(1, series) * 24)


def _horizontal_bars(data: ReportData, rows, value_column: str, *, key: str, title: str, subtitle: str,
                     axis: str, scale: float = 1.0, hover_unit: str = "", bar_label=None) -> Chart:
    """One bar per case, grouped by case label, coloured by backend, patterned by device/run."""
    import plotly.graph_objects as go

    rows = rows.assign(_label=rows.apply(_case_label, axis=1) if len(rows) else [])
    categories = [plot_text(label) for label in dict.fromkeys(rows["_label"])]
    figure = go.Figure()
    for series, group in rows.groupby("series", sort=False):
        backend = group["backend"].iloc[0]
        values = [None if v is None else v * scale for v in _numbers(group[value_column])]
        figure.add_bar(
            y=[plot_text(label) for label in group["_label"]], x=values, orientation="h",
            name=plot_text(series), marker=_marker(data, backend, series),
            customdata=[[plot_text(case), plot_text(run)] for case, run in zip(group["case_id"], group["run_label"],
                                                                                 strict=True)],
            hovertemplate=f"%{{customdata[0]}}<br>run %{{customdata[1]}}<br>%{{x:.4g}} {hover_unit}"
                          "<extra>%{fullData.name}</extra>",
            text=[bar_label(v) if v is not None else "" for v in values] if bar_label else None,
            textposition="outside" if bar_label else None, cliponaxis=False,
        )
    layout = _base_layout(title, subtitle, data.series_title)
    layout.update(barmode="group", height=_height(len(categories), rows["series"].nunique()),
                  xaxis={"title": {"text": axis}, "rangemode": "tozero"},
                  yaxis={"title": {"text": AXIS_CASE}, "categoryorder": "array", "categoryarray": categories,
                         "autorange": "reversed", "automargin": True})
    figure.update_layout(layout)
    return Chart(key, figure)


def throughput_charts(data: ReportData) -> list[Chart]:
    """Per workload: backends side by side, error bars = 95% CI of throughput."""
    import plotly.graph_objects as go

    charts = []
    ok = data.ok
    for index, (task, rows) in enumerate(ok.groupby("task", sort=False)):
        categories = [plot_text(v) for v in dict.fromkeys(rows["variant"])]
        figure = go.Figure()
        for series, group in rows.groupby("series", sort=False):
            values = _numbers(group["throughput_samples_per_s"])
            high, low = _numbers(group["throughput_ci_high"]), _numbers(group["throughput_ci_low"])
            plus = [None if h is None or v is None else h - v for v, h in zip(values, high, strict=True)]
            minus = [None if lo is None or v is None else v - lo for v, lo in zip(values, low, strict=True)]
            cis = [ci_text(lo, h) for lo, h in zip(low, high, strict=True)]
            tokens = [f"{number(t)} tokens/s" if t is not None else ""
                      for t in _numbers(group["throughput_tokens_per_s"])]
            figure.add_bar(
                y=[plot_text(v) for v in group["variant"]], x=values, orientation="h", name=plot_text(series),
                marker=_marker(data, group["backend"].iloc[0], series),
                error_x={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus,
                         "color": "#222", "thickness": 1.5, "width": 4},
                customdata=[[plot_text(c), plot_text(ci), tok]
                            for c, ci, tok in zip(group["case_id"], cis, tokens, strict=True)],
                hovertemplate="%{customdata[0]}<br>%{x:,.4g} samples/s (95% CI %{customdata[1]})"
                              "<br>%{customdata[2]}<extra>%{fullData.name}</extra>",
            )
        layout = _base_layout(f"Throughput of {plot_text(task)}: backends side by side",
                              "samples per second, higher is better; error bars: 95% CI (from the median step "
                              "time's distribution-free CI)", data.series_title)
        layout.update(barmode="group", height=_height(len(categories), rows["series"].nunique()),
                      xaxis={"title": {"text": "throughput (samples/s)"}, "rangemode": "tozero"},
                      yaxis={"title": {"text": AXIS_VARIANT}, "categoryorder": "array", "categoryarray": categories,
                             "autorange": "reversed", "automargin": True})
        figure.update_layout(layout)
        charts.append(Chart(f"throughput-{index}", figure))
    return charts


def relative_chart(data: ReportData) -> Chart | None:
    """Each case's throughput as % of the fastest case doing the same work (any backend, device, run)."""
    ok = data.ok.dropna(subset=["throughput_samples_per_s"])
    if ok.empty:
        return None
    fastest = ok.groupby(["task", "variant"])["throughput_samples_per_s"].transform("max")
    rows = ok.assign(relative_percent=100.0 * ok["throughput_samples_per_s"] / fastest)
    return _horizontal_bars(
        data, rows, "relative_percent", key="relative",
        title="Throughput relative to the fastest for the same workload and setting",
        subtitle="% of the fastest backend/device/run doing the same work (100% = fastest); higher is better",
        axis="throughput relative to the fastest (%)", hover_unit="% of the fastest", bar_label=lambda v: f"{v:.0f}%",
    )


def thin(samples: list[float], limit: int = MAX_BOX_SAMPLES) -> list[float]:
    """At most ``limit`` evenly spaced order statistics of ``samples`` (the distribution's shape is kept)."""
    if len(samples) <= limit:
        return list(samples)
    ordered = sorted(samples)
    return [ordered[round(i * (len(ordered) - 1) / (limit - 1))] for i in range(limit)]


def latency_charts(data: ReportData) -> list[Chart]:
    """Per workload: box plots of the raw per-step samples, per backend and setting."""
    import plotly.graph_objects as go

    charts = []
    for index, (task, rows) in enumerate(data.ok.groupby("task", sort=False)):
        categories = [plot_text(v) for v in dict.fromkeys(rows["variant"])]
        figure = go.Figure()
        for series, group in rows.groupby("series", sort=False):
            xs, ys = [], []
            for variant, samples in zip(group["variant"], group["samples_s"], strict=True):
                kept = thin(samples)
                xs.extend([plot_text(variant)] * len(kept))
                ys.extend(sample * 1e3 for sample in kept)
            colour = data.colours.get(group["backend"].iloc[0], "#888")
            shade = BOX_SHADES[PATTERNS.index(data.patterns.get(series, "")) % len(BOX_SHADES)]
            figure.add_box(x=xs, y=ys, name=plot_text(series), boxpoints="outliers",
                           line={"width": 1.2, "color": colour}, fillcolor=_with_alpha(colour, shade),
                           marker={"color": colour, "size": 3})
        layout = _base_layout(f"Step-time distribution of {plot_text(task)} by backend",
                              "milliseconds per step from the raw per-step samples, lower is better; box: "
                              "quartiles, whiskers: 1.5 × IQR, dots: outliers", data.series_title)
        layout.update(boxmode="group", height=460,
                      yaxis={"title": {"text": "step time (ms)"}, "rangemode": "tozero"},
                      xaxis={"title": {"text": AXIS_VARIANT}, "categoryorder": "array",
                             "categoryarray": categories, "automargin": True})
        figure.update_layout(layout)
        charts.append(Chart(f"latency-{index}", figure))
    return charts


def memory_charts(data: ReportData) -> list[Chart]:
    """Host peak RSS and device allocator peaks, each bar's source in its hover text."""
    charts = []
    for column, source, key, title, what in (
        ("host_peak_rss_bytes", "host_peak_rss_source", "memory-host", "Peak host memory (resident set) per case",
         "the worker process's peak RSS"),
        ("device_peak_memory_bytes", "device_peak_memory_source", "memory-device",
         "Peak device memory (framework allocator) per case", "the backend allocator's peak"),
    ):
        rows = data.ok.dropna(subset=[column])
        if rows.empty:
            continue
        sources = sorted({str(s) for s in rows[source].dropna()})
        chart = _horizontal_bars(data, rows, column, key=key, title=title,
                                 subtitle=f"MiB, lower is better; {what}", axis="peak memory (MiB)",
                                 scale=1 / 2**20, hover_unit="MiB")
        charts.append(Chart(chart.key, chart.figure, "source: " + "; ".join(escape(s) for s in sources)))
    return charts


def compile_chart(data: ReportData) -> Chart | None:
    rows = data.ok.dropna(subset=["compile_time_s"])
    if rows.empty:
        return None
    return _horizontal_bars(data, rows, "compile_time_s", key="compile",
                            title="Compile / first-step time per case",
                            subtitle="seconds for the first step (trace, compile, autotune) incl. sync; "
                                     "median over repeats; lower is better",
                            axis="first-step time (s)", hover_unit="s")


def energy_chart(data: ReportData) -> Chart | None:
    rows = data.ok.dropna(subset=["energy_j_per_sample"])
    if rows.empty:
        return None
    sources = sorted({str(s) for s in rows["energy_source"].dropna()})
    chart = _horizontal_bars(data, rows, "energy_j_per_sample", key="energy", title="Energy per sample (measured)",
                             subtitle="joules per sample, lower is better; measured counters only, never estimates",
                             axis="energy per sample (J/sample)", hover_unit="J/sample")
    return Chart(chart.key, chart.figure, "source: " + "; ".join(escape(s) for s in sources))


def noise_chart(data: ReportData) -> Chart | None:
    rows = data.ok.dropna(subset=["noise_iqr_over_median"])
    if rows.empty:
        return None
    rows = rows.assign(noise_percent=100.0 * rows["noise_iqr_over_median"])
    chart = _horizontal_bars(data, rows, "noise_percent", key="noise",
                             title="Measurement noise per case: IQR / median of the step time",
                             subtitle=f"%, lower is better; above {NOISE_WARNING:.0%} (dashed line) is flagged ⚠",
                             axis="noise: IQR / median (%)", hover_unit="%", bar_label=_noise_label)
    threshold = 100 * NOISE_WARNING
    chart.figure.add_shape(type="line", x0=threshold, x1=threshold, y0=0, y1=1, yref="paper",
                           line={"dash": "dash", "color": "#C62828", "width": 1.5})
    chart.figure.add_annotation(x=threshold, y=1, yref="paper", yanchor="bottom", showarrow=False,
                                text=f"⚠ {threshold:.0f}%", font={"color": "#C62828"})
    return chart


def _noise_label(percent: float) -> str:
    return f"{percent:.1f}%" + (" ⚠" if percent > 100 * NOISE_WARNING else "")


def sweeps(data: ReportData):
    """Groups (task, mode, precision, compile) where some series was run at more than one batch size."""
    ok = data.ok.dropna(subset=["throughput_samples_per_s", "batch_size"])
    for key, rows in ok.groupby(["task", "mode", "precision", "compile"], sort=False):
        if rows.groupby("series")["batch_size"].nunique().max() > 1:
            yield key, rows


def scaling_charts(data: ReportData) -> list[Chart]:
    """Throughput and median step time against batch size, one line per backend (and device/run)."""
    from plotly.subplots import make_subplots

    charts = []
    for index, ((task, mode, precision, compile_), rows) in enumerate(sweeps(data)):
        figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                               subplot_titles=("throughput (samples/s)", "median step time (ms)"))
        for series, group in rows.sort_values("batch_size").groupby("series", sort=False):
            colour = data.colours.get(group["backend"].iloc[0], "#888")
            style = PATTERNS.index(data.patterns.get(series, ""))  # lines have no patterns: symbol and dash instead
            batches = _numbers(group["batch_size"])
            values = _numbers(group["throughput_samples_per_s"])
            plus = [None if h is None else h - v for v, h in zip(values, _numbers(group["throughput_ci_high"]),
                                                                  strict=True)]
            minus = [None if lo is None else v - lo for v, lo in zip(values, _numbers(group["throughput_ci_low"]),
                                                                     strict=True)]
            common = {"name": plot_text(series), "legendgroup": plot_text(series), "mode": "lines+markers",
                      "line": {"color": colour, "dash": LINE_DASHES[style % len(LINE_DASHES)]},
                      "marker": {"color": colour, "size": 8, "symbol": SYMBOLS[style % len(SYMBOLS)]}}
            figure.add_scatter(x=batches, y=values, row=1, col=1, **common,
                               error_y={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus},
                               hovertemplate="batch %{x}: %{y:,.4g} samples/s<extra>%{fullData.name}</extra>")
            figure.add_scatter(x=batches, y=[v * 1e3 for v in _numbers(group["step_time_p50_s"])], row=1, col=2,
                               showlegend=False, **common,
                               hovertemplate="batch %{x}: %{y:.4g} ms<extra>%{fullData.name}</extra>")
        setting = plot_text(f"{task} · {mode} · {precision} · {compile_}")
        layout = _base_layout(f"Scaling with batch size: {setting}",
                              "left: throughput (samples/s, higher is better, 95% CI); right: median step time "
                              "(ms, lower is better)", data.series_title)
        layout.update(height=460)
        figure.update_layout(layout)
        for col, axis in ((1, "throughput (samples/s)"), (2, "median step time (ms)")):
            figure.update_xaxes(title_text="batch size (samples per step)", type="log", dtick=math.log10(2),
                                row=1, col=col)
            figure.update_yaxes(title_text=axis, rangemode="tozero", row=1, col=col)
        charts.append(Chart(f"scaling-{index}", figure))
    return charts


# ---------------------------------------------------------------- efficiency, roofline, where the time goes

OPERATOR_COLOURS = ("#1565C0", "#2E7D32", "#EF6C00", "#6A1B9A", "#00838F", "#AD1457", "#9E9D24", "#4E342E",
                    "#42A5F5", "#66BB6A", "#FFA726", "#AB47BC", "#26C6DA", "#EC407A", "#D4E157", "#8D6E63")
OTHER_COLOUR = "#BDBDBD"
CHART_OPERATORS = 6  # per case in the "where the time goes" bars; the rest is "other"
XLA_INTENSITY = "XLA cost analysis"
ANALYTIC_INTENSITY = "analytic estimate"
INTENSITY_SYMBOLS = {ANALYTIC_INTENSITY: "circle", XLA_INTENSITY: "diamond"}


def efficiency_charts(data: ReportData) -> list[Chart]:
    """MFU, achieved FLOP/s and % of datasheet spec per case, each only where some case has it."""
    charts = []
    for column, scale, key, title, subtitle, axis, unit in (
        ("mfu", 100.0, "mfu", "Model FLOPs utilisation (MFU) per case",
         "achieved FLOP/s as % of the measured dense-matmul peak for the case's device and precision (best over "
         "frameworks); higher is better", "MFU (% of measured peak)", "% of measured peak"),
        ("achieved_flops_per_s", 1e-9, "achieved-flops", "Achieved FLOP/s per case",
         "analytic FLOPs per step / median step time, in GFLOP/s; higher is better", "achieved (GFLOP/s)",
         "GFLOP/s"),
        ("spec_fraction", 100.0, "spec-fraction", "Achieved FLOP/s as % of the datasheet peak",
         "% of the vendor's dense peak for the device and precision (harness/datasheet.py); higher is better",
         "% of datasheet spec", "% of spec"),
    ):
        rows = data.ok.dropna(subset=[column])
        if rows.empty:
            continue
        label = (lambda v: f"{number(v)}%") if scale == 100.0 else (lambda v: number(v))
        charts.append(_horizontal_bars(data, rows, column, key=key, title=title, subtitle=subtitle, axis=axis,
                                       scale=scale, hover_unit=unit, bar_label=label))
    return charts


def intensity_kind(source: str) -> str:
    """How a roofline point's arithmetic intensity was obtained, in two words for legends."""
    return XLA_INTENSITY if str(source).startswith("XLA") else ANALYTIC_INTENSITY


def _roof_lines(figure, points: list[dict[str, Any]], low: float, high: float) -> None:
    """Measured bandwidth roofs (diagonal) and compute roofs (flat), each a line with its value in the legend."""
    bandwidths = sorted({p["roof_bandwidth_bytes_per_s"] for p in points})
    peaks = sorted({(p["roof_precision"], p["roof_peak_flops_per_s"]) for p in points}, key=lambda pair: pair[1])
    top = peaks[-1][1]
    for bandwidth in bandwidths:
        figure.add_scatter(x=[low, top / bandwidth], y=[low * bandwidth, top], mode="lines",
                           name=f"memory roof: {rate(bandwidth, 'B/s')} (measured copy)",
                           line={"color": "#37474F", "dash": "dash", "width": 2}, hoverinfo="name")
    for index, (precision, peak) in enumerate(peaks):
        figure.add_scatter(x=[peak / bandwidths[-1], high], y=[peak, peak], mode="lines",
                           name=f"compute roof {plot_text(precision)}: {rate(peak, 'FLOP/s')} (measured matmul)",
                           line={"color": "#37474F", "dash": LINE_DASHES[index % len(LINE_DASHES)], "width": 2},
                           hoverinfo="name")


def roofline_chart(data: ReportData, rows, *, key: str, title: str) -> Chart:
    """Log-log roofline of one device: every case a point, the measured peaks as lines."""
    import plotly.graph_objects as go

    points = list(rows["roofline"])
    xs = [p["arithmetic_intensity"] for p in points] + [p["roof_ridge_flop_per_byte"] for p in points]
    low, high = min(xs) / 8, max(xs) * 8
    figure = go.Figure()
    _roof_lines(figure, points, low, high)
    kinds = rows["roofline"].map(lambda p: intensity_kind(p["intensity_source"]))
    for (series, kind), group in rows.assign(_kind=kinds).groupby(["series", "_kind"], sort=False):
        group_points = list(group["roofline"])
        figure.add_scatter(
            x=[p["arithmetic_intensity"] for p in group_points], y=[p["achieved_flops_per_s"] for p in group_points],
            mode="markers", name=f"{plot_text(series)} · {kind}",
            marker={"color": data.colours.get(group["backend"].iloc[0], "#888"), "size": 12,
                    "symbol": INTENSITY_SYMBOLS[kind], "line": {"color": "#222", "width": 1}},
            customdata=[[plot_text(case), plot_text(run), rate(p["attainable_flops_per_s"], "FLOP/s"),
                         number(100 * p["achieved_flops_per_s"] / p["attainable_flops_per_s"]), p["bound"] or "?",
                         plot_text(p["intensity_source"])]
                        for case, run, p in zip(group["case_id"], group["run_label"], group_points, strict=True)],
            hovertemplate="%{customdata[0]}<br>run %{customdata[1]}<br>intensity %{x:.4g} FLOP/byte"
                          "<br>achieved %{y:.4g} FLOP/s = %{customdata[3]}% of the attainable %{customdata[2]}"
                          " (%{customdata[4]}-bound)<br>intensity: %{customdata[5]}<extra>%{fullData.name}</extra>",
        )
    ys = [p["achieved_flops_per_s"] for p in points] + [low * min(p["roof_bandwidth_bytes_per_s"] for p in points)]
    layout = _base_layout(title, "log-log; achieved FLOP/s against arithmetic intensity (FLOPs per byte moved per "
                                 "step); lines: the device's measured peaks; ● analytic estimate, ◆ XLA cost analysis",
                          "case (backend · intensity source) and roofs")
    layout.update(height=520, xaxis={"title": {"text": "arithmetic intensity (FLOP/byte)"}, "type": "log",
                                     "exponentformat": "SI", "range": [math.log10(low), math.log10(high)]},
                  yaxis={"title": {"text": "achieved FLOP/s"}, "type": "log", "exponentformat": "SI",
                         "range": [math.log10(min(ys) / 2), math.log10(max(p["roof_peak_flops_per_s"]
                                                                             for p in points) * 2)]})
    figure.update_layout(layout)
    return Chart(key, figure)


def _short(name: str, limit: int = 40) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


def _top_operators(profile: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
    """The case's top operators for the chart and the share of the step left as "other" (never below 0)."""
    top = (profile.get("operators") or [])[:CHART_OPERATORS]
    return top, max(0.0, 1.0 - sum(op["share"] for op in top))


def time_breakdown_chart(data: ReportData, rows, *, key: str, title: str) -> Chart:
    """One stacked bar per backend (series): its top operators' share of the profiled steps, the rest "other".

    A bar segment's colour is the operator's rank in its case (the largest first), the legend groups each
    backend's operators under it: operator names are each framework's own, so they are not matched up.
    """
    import plotly.graph_objects as go

    categories = [plot_text(series) for series in rows["series"]]
    figure = go.Figure()
    others = []
    for category, case_id, profile in zip(categories, rows["case_id"], rows["profile"], strict=True):
        top, other = _top_operators(profile)
        others.append(other)
        for rank, op in enumerate(top):
            figure.add_bar(
                y=[category], x=[100 * op["share"]], orientation="h", name=plot_text(_short(op["operator"])),
                legendgroup=category, legendgrouptitle={"text": category} if rank == 0 else None,
                text=[plot_text(_short(op["operator"], 24))], textposition="inside", insidetextanchor="middle",
                marker={"color": OPERATOR_COLOURS[rank % len(OPERATOR_COLOURS)], "line": {"color": "#fff", "width": 1}},
                customdata=[[plot_text(op["operator"]), plot_text(case_id), op["calls"], seconds(op["self_s"])]],
                hovertemplate="%{customdata[0]}<br>%{customdata[1]}<br>%{x:.3g}% of the step: self %{customdata[3]}, "
                              "%{customdata[2]} call(s)<extra></extra>",
            )
    figure.add_bar(y=categories, x=[100 * other for other in others], orientation="h",
                   name=f"other (outside each top {CHART_OPERATORS})", marker={"color": OTHER_COLOUR},
                   legendgroup="other", customdata=[plot_text(case) for case in rows["case_id"]],
                   hovertemplate="everything else: other operators, idle and framework time<br>%{customdata}"
                                 "<br>%{x:.3g}% of the step<extra></extra>")
    layout = _base_layout(title, f"share of the profiled steps' wall time per operator (self time), top "
                                 f"{CHART_OPERATORS} per backend, largest first; the rest is \"other\"", "operator")
    layout["legend"].update(traceorder="grouped", groupclick="toggleitem")
    legend_rows = len(figure.data) + 2 * len(categories)  # entries plus group titles and gaps
    layout.update(barmode="stack", height=max(320, 200 + 60 * len(categories), 140 + 19 * legend_rows),
                  uniformtext={"minsize": 9, "mode": "hide"},
                  xaxis={"title": {"text": "share of the profiled step time (%)"}, "range": [0, 100]},
                  yaxis={"title": {"text": data.series_title}, "categoryorder": "array", "categoryarray": categories,
                         "autorange": "reversed", "automargin": True})
    figure.update_layout(layout)
    return Chart(key, figure)
