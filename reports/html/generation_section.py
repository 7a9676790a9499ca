"""The HTML report's "Generation" section (issue 16): the decoder's prefill and cached decode.

Per point of a generation sweep (workload-size, prompt and new tokens, precision, compile mode):

* **tokens/s against batch**: decode tokens/s in total (batch / TPOT) on the left and prefill tokens/s
  (batch x prompt / TTFT) on the right, one line per backend (and device, run and the interpreter of a
  same-job A/B run where those vary). The
  error bars are the 95% CI across processes, carried over from TPOT's and TTFT's (a rate is a
  constant over a time, so the bounds swap).
* **TTFT and TPOT distributions**: box plots of every measured request's TTFT and every decode step's
  TPOT, pooled over the processes (the raw records in the run file), per batch size and series.

Then a table of every generate case with the figures ``metrics.generation`` holds (``reports.
generation_figures``), and why MFU or the bandwidth fraction is n/a where it is. The definitions
shown are the run file's own. The section exists only when some case ran in generate mode. Every
run-file string goes through ``e`` (HTML) or ``plot_text`` (plotly).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tribench.reports.dataset import PATTERNS, ReportData
from tribench.reports.generation_figures import GENERATION_COLUMNS, generation_cells, missing_peak_reasons
from tribench.reports.html import charts as chart_kinds
from tribench.reports.html.blocks import STATUS_CLASS, Section, chart_div, e, notice, table
from tribench.reports.html.charts import BOX_SHADES, Chart, plot_text, thin
from tribench.reports.report_format import missing, whole

SECTION_ID = "generation"
TITLE = "Generation (prefill and decode)"
GROUP_COLUMNS = ["task", "prompt", "new_tokens", "precision", "compile"]
DEFINED = ("ttft", "tpot", "decode_tokens_per_s", "decode_tokens_per_s_per_sequence", "prefill_tokens_per_s",
           "request_latency")
RATE_PANELS = (("decode_tokens_per_s", "tpot", "decode tokens/s (total)", "batch / TPOT"),
               ("prefill_tokens_per_s", "ttft", "prefill tokens/s", "batch × prompt / TTFT"))


def generate_cases(data: ReportData):
    """The generate cases, each with its ``line``: the series, plus the interpreter of a same-job A/B run."""
    cases = data.frame[data.frame["mode"] == "generate"]
    lines = [f"{series} · {env}" if env else str(series) for series, env in zip(cases["series"], cases["env"],
                                                                              strict=True)]
    return cases.assign(line=lines)


def groups(data: ReportData) -> Iterator[tuple[str, Any]]:
    """(title, rows) per generation point, any status, smallest batch first."""
    cases = generate_cases(data)
    for (task, prompt, new, precision, compile_), rows in cases.groupby(GROUP_COLUMNS, sort=False, dropna=False):
        title = f"{task} · prompt {whole(prompt)} → {whole(new)} new tokens · {precision} · {compile_}"
        yield title, rows.sort_values("batch_size", kind="stable")


# ---------------------------------------------------------------- charts


def _style(data: ReportData, series: str, backend: str) -> dict[str, Any]:
    colour = data.colours.get(backend, "#888")
    style = PATTERNS.index(data.patterns.get(series, ""))  # lines have no patterns: symbol and dash instead
    return {"line": {"color": colour, "dash": chart_kinds.LINE_DASHES[style % len(chart_kinds.LINE_DASHES)]},
            "marker": {"color": colour, "size": 9, "symbol": chart_kinds.SYMBOLS[style % len(chart_kinds.SYMBOLS)]}}


def rate_bounds(group, timed: str, rate_column: str) -> tuple[list[float | None], list[float | None]]:
    """Error bar lengths (+, -) of a rate from its timing's 95% CI: rate x centre / bound (bounds swap)."""
    values = chart_kinds._numbers(group[rate_column])
    centres = chart_kinds._numbers(group[f"{timed}_s"])
    lows, highs = chart_kinds._numbers(group[f"{timed}_ci_low_s"]), chart_kinds._numbers(group[f"{timed}_ci_high_s"])
    plus, minus = [], []
    for value, centre, low, high in zip(values, centres, lows, highs, strict=True):
        known = None not in (value, centre, low, high) and low > 0 and high > 0
        plus.append(value * centre / low - value if known else None)
        minus.append(value - value * centre / high if known else None)
    return plus, minus


def tokens_chart(data: ReportData, title: str, rows, key: str) -> Chart:
    """Decode tokens/s (left) and prefill tokens/s (right) against batch size, one line per series."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                           subplot_titles=tuple(panel[2] for panel in RATE_PANELS))
    ok = rows[rows["status"] == "ok"]
    for line, group in ok.groupby("line", sort=False):
        style = _style(data, group["series"].iloc[0], group["backend"].iloc[0])
        for col, (column, timed, label, formula) in enumerate(RATE_PANELS, start=1):
            plus, minus = rate_bounds(group, timed, column)
            figure.add_scatter(
                x=chart_kinds._numbers(group["batch_size"]), y=chart_kinds._numbers(group[column]), row=1, col=col,
                name=plot_text(line), legendgroup=plot_text(line), showlegend=col == 1, mode="lines+markers",
                error_y={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus}, **style,
                customdata=[[plot_text(case)] for case in group["case_id"]],
                hovertemplate=f"%{{customdata[0]}}<br>batch %{{x}}: %{{y:,.4g}} {label} ({formula})"
                              "<extra>%{fullData.name}</extra>")
    layout = chart_kinds._base_layout(
        f"Tokens per second against batch size: {plot_text(title)}",
        "left: decode tokens/s in total (batch / TPOT); right: prefill tokens/s (batch × prompt / TTFT); higher "
        "is better; error bars: 95% CI across processes", data.series_title)
    layout.update(height=460)
    figure.update_layout(layout)
    batches = sorted({int(b) for b in ok["batch_size"].dropna()})
    for col, (_, _, label, _) in enumerate(RATE_PANELS, start=1):
        figure.update_xaxes(title_text="batch size (sequences per request)", type="log", tickvals=batches,
                            ticktext=[str(b) for b in batches], row=1, col=col)
        figure.update_yaxes(title_text=label, rangemode="tozero", row=1, col=col)
    return Chart(key, figure)


def distribution_chart(data: ReportData, title: str, rows, key: str) -> Chart:
    """Box plots of the pooled TTFT (left) and TPOT (right) samples per batch size, one colour per series."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                           subplot_titles=("time to first token (ms)", "time per output token (ms)"))
    ok = rows[rows["status"] == "ok"]
    for line, group in ok.groupby("line", sort=False):
        colour = data.colours.get(group["backend"].iloc[0], "#888")
        shade = BOX_SHADES[PATTERNS.index(data.patterns.get(group["series"].iloc[0], "")) % len(BOX_SHADES)]
        for col, column in enumerate(("ttft_samples_s", "tpot_samples_s"), start=1):
            xs, ys = [], []
            for batch, samples in zip(group["batch_size"], group[column], strict=True):
                kept = thin(samples)
                xs.extend([f"bs{whole(batch)}"] * len(kept))
                ys.extend(sample * 1e3 for sample in kept)
            figure.add_box(x=xs, y=ys, row=1, col=col, name=plot_text(line), legendgroup=plot_text(line),
                           showlegend=col == 1, boxpoints="outliers", line={"width": 1.2, "color": colour},
                           fillcolor=chart_kinds._with_alpha(colour, shade), marker={"color": colour, "size": 3})
    layout = chart_kinds._base_layout(
        f"TTFT and TPOT distributions: {plot_text(title)}",
        "milliseconds, lower is better; every measured request (TTFT) and decode step (TPOT) of every process, "
        "pooled; box: quartiles, whiskers: 1.5 × IQR, dots: outliers", data.series_title)
    layout.update(boxmode="group", height=460)
    figure.update_layout(layout)
    categories = [f"bs{whole(b)}" for b in dict.fromkeys(ok["batch_size"])]
    for col, axis in ((1, "TTFT (ms)"), (2, "TPOT (ms)")):
        figure.update_xaxes(title_text="batch size", categoryorder="array", categoryarray=categories, row=1, col=col)
        figure.update_yaxes(title_text=axis, rangemode="tozero", row=1, col=col)
    return Chart(key, figure)


# ---------------------------------------------------------------- table


def _sort_values(row) -> dict[str, Any]:
    """The raw number each column sorts by (None: sorts as missing)."""
    def value(column: str) -> Any:
        return None if missing(row[column]) else row[column]

    return {"TTFT (95% CI)": value("ttft_s"), "TPOT (95% CI)": value("tpot_s"),
            "TPOT p50 / p90 / p99": value("tpot_p99_s"), "decode tokens/s (total)": value("decode_tokens_per_s"),
            "decode tokens/s per sequence": value("decode_tokens_per_s_per_sequence"),
            "prefill tokens/s": value("prefill_tokens_per_s"), "request": value("request_latency_s"),
            "KV cache": value("kv_cache_bytes"), "MFU prefill / decode": value("decode_mfu"),
            "decode bandwidth": value("decode_bandwidth_bytes_per_s")}


def _cells(row) -> list[tuple[str, Any]]:
    """One case's cells: its figures when it finished, else its status and reason across the row."""
    if row["status"] != "ok" or not row["generation"]:
        status = f'<span class="status {STATUS_CLASS.get(row["status"], "failed")}">{e(row["status"])}</span>'
        reason = str(row["error"] or "no generation figures in the run file").strip().splitlines()[:1]
        filler = [("", None)] * (len(GENERATION_COLUMNS) - 2)  # the columns after case, backend, status
        return [(f"<code>{e(row['case_id'])}</code>", row["case_id"]), (e(row["backend"]), row["backend"]),
                (f"{status} {e(reason[0] if reason else '')}", row["status"]), *filler]
    text = generation_cells(row["case_id"], row["generation"])
    sorts = _sort_values(row)
    return [(f"<code>{e(row['case_id'])}</code>", row["case_id"]), (e(row["backend"]), row["backend"]),
            *((e(text[column]), sorts.get(column)) for column in GENERATION_COLUMNS[1:])]


def generation_table(data: ReportData) -> str:
    with_run = len(data.runs) > 1
    rows = [[*([(e(row["run_label"]), row["run_label"])] if with_run else []), *_cells(row)]
            for _, row in generate_cases(data).iterrows()]
    headers = (["run"] if with_run else []) + ["case", "backend", *GENERATION_COLUMNS[1:]]
    return table(headers, rows, css="numbers generation", sortable=True)


def _definitions(data: ReportData) -> str:
    """The figures' definitions as the run files state them (the first generate case that has each)."""
    found: dict[str, str] = {}
    for generation in generate_cases(data)["generation"]:
        for name in DEFINED:
            definition = ((generation or {}).get(name) or {}).get("definition")
            if definition:
                found.setdefault(name, definition)
    if not found:
        return ""
    items = "".join(f"<li><b>{e(name)}</b>: {e(text)}</li>" for name, text in found.items())
    return f'<p>Definitions, from the run file:</p><ul class="legend">{items}</ul>'


def _peak_reasons(data: ReportData) -> str:
    reasons = missing_peak_reasons([g for g in generate_cases(data)["generation"] if g])
    return "".join(notice(f"MFU or bandwidth fraction n/a: {e(reason)}", "info") for reason in reasons)


INTRO = ("<p>Each measured step of a generate case is one request: a prompt prefilled, then new tokens decoded "
         "one at a time from a preallocated KV cache, greedy. TTFT and TPOT are timed inside every request; "
         "their centre and 95% CI come from the processes' medians (the process is the unit of uncertainty), "
         "their percentiles pool every request or decode step. Decode is memory-bound: its bandwidth is the "
         "bytes a step must read (every weight once and the KV cache so far) over TPOT, against the run's "
         "measured memory bandwidth.</p>")


def generation_sections(data: ReportData) -> list[Section]:
    """The section when some case ran in generate mode, otherwise none."""
    if generate_cases(data).empty:
        return []
    body, charts = INTRO + _definitions(data), []
    for title, rows in groups(data):
        body += f"<h3>{e(title)}</h3>"
        if (rows["status"] == "ok").any():
            charts.append(tokens_chart(data, title, rows, f"{SECTION_ID}-tokens-{len(charts)}"))
            charts.append(distribution_chart(data, title, rows, f"{SECTION_ID}-distributions-{len(charts)}"))
            body += chart_div(charts[-2]) + chart_div(charts[-1])
        else:
            body += notice("no case of this point finished, so there is nothing to chart", "info")
    body += "<h3>Every generate case</h3>" + generation_table(data) + _peak_reasons(data)
    return [Section(SECTION_ID, TITLE, body, charts)]
