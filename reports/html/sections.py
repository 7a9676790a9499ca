"""The HTML report's sections, as escaped HTML fragments plus the charts each one places.

Every string that comes from a run file goes through ``e`` (``blocks``), so a crafted run file
cannot add markup; the only raw HTML here is this module's own and ``blocks``'.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tribench.reports import units
from tribench.reports.dataset import ReportData, Run, fingerprint_differences
from tribench.reports.html import charts as chart_kinds
from tribench.reports.html.blocks import STATUS_CLASS, Section, chart_div, e, notice, table
from tribench.reports.html.charts import NOISE_WARNING
from tribench.reports.html.efficiency_sections import efficiency_section, profile_section
from tribench.reports.html.generation_section import generation_sections
from tribench.reports.html.scaling_section import scale_out_sections
from tribench.reports.report_format import (
    ci_basis_meaning,
    ci_basis_text,
    ci_text,
    execution_legend,
    number,
    threads_lines,
    whole,
)
from tribench.reports.report_format import missing as _missing

# ---------------------------------------------------------------- header


def _what_was_run(data: ReportData) -> str:
    frame = data.frame
    parts = []
    for label, column in (("backends", "backend"), ("workloads", "task"), ("modes", "mode"),
                          ("batch sizes", "batch_size"), ("precisions", "precision"), ("compile", "compile"),
                          ("devices", "device")):
        values = [v for v in dict.fromkeys(frame[column]) if not _missing(v)]
        shown = [whole(v) for v in values]
        parts.append(f"<b>{label}</b> {e(', '.join(shown) or '–')}")
    return " · ".join(parts)


def _status_counts(data: ReportData) -> str:
    counts = Counter(data.frame["status"])
    return ", ".join(f'<span class="status {STATUS_CLASS.get(s, "failed")}">{e(n)} {e(s)}</span>'
                     for s, n in sorted(counts.items(), key=lambda item: (item[0] != "ok", item[0])))


def _accelerators(env: dict[str, Any]) -> str:
    nvidia = (env.get("accelerators") or {}).get("nvidia") or {}
    devices = nvidia.get("devices") or []
    if devices:
        names = Counter(str(d.get("name")) for d in devices)
        listed = ", ".join(f"{n} × {name}" for name, n in names.items())
        return e(f"NVIDIA: {listed} (driver {nvidia.get('driver')})")
    return e(f"no NVIDIA GPU: {nvidia.get('reason') or 'none found'}")


def _frameworks(env: dict[str, Any]) -> str:
    items = []
    for name, info in sorted((env.get("frameworks") or {}).items()):
        info = info or {}
        details = info.get("details") or {}
        extra = ", ".join(f"{k} {details[k]}" for k in ("cuda", "cudnn", "hip") if details.get(k))
        items.append(f"{e(name)} {e(info.get('version') or 'not installed')}" + (f" ({e(extra)})" if extra else ""))
    return "<br>".join(items) or "–"


def _git(env: dict[str, Any]) -> str:
    git = env.get("git") or {}
    if not git.get("commit"):
        return e(git.get("reason") or "unknown")
    dirty = " (uncommitted changes)" if git.get("dirty") else ""
    return f"<code>{e(str(git['commit'])[:12])}</code> {e(git.get('branch') or '')}{e(dirty)}"


def _settings(run: Run) -> str:
    settings = run.data.get("settings") or {}
    timing = settings.get("timing") or {}
    return e(f"{settings.get('repeats', '?')} repeat(s); "
             f"{timing.get('min_time_s', '?')}–{timing.get('max_time_s', '?')} s and "
             f"≥ {timing.get('min_steps', '?')} steps per process; target CI ±{timing.get('target_ci', '?')}; "
             f"timeout {settings.get('timeout_s', '?')} s")


def _run_facts(run: Run) -> list[tuple[str, str]]:
    env = run.environment
    machine = env.get("machine") or {}
    python = env.get("python") or {}
    tags = run.data.get("tags") or {}
    command = run.data.get("command") or []
    env_vars = env.get("env_vars") or {}
    return [
        ("run", f"<b>{e(run.label)}</b>"),
        ("file", f"<code>{e(run.path)}</code>"),
        ("started / finished", e(f"{run.data.get('started_at')} → {run.data.get('finished_at') or '–'}")),
        ("state", e(run.data.get("state"))),
        ("command", f"<code>{e(' '.join(str(c) for c in command))}</code>"),
        ("tags", "<br>".join(e(f"{k}={v}") for k, v in tags.items()) or "–"),
        ("host", e(machine.get("hostname"))),
        ("OS", e(machine.get("os"))),
        ("CPU", e(f"{machine.get('cpu_model')} — {machine.get('logical_cores')} logical / "
                  f"{machine.get('physical_cores')} physical cores, {machine.get('usable_cores')} usable")),
        ("memory", e(units.bytes_(machine.get("memory_total_bytes")))),
        ("accelerators", _accelerators(env)),
        ("Python", e(f"{python.get('version')} ({python.get('implementation')})")),
        ("frameworks", _frameworks(env)),
        ("environment variables", "<br>".join(e(f"{k}={v}") for k, v in env_vars.items()) or "–"),
        ("git", _git(env)),
        ("timing", _settings(run)),
        ("fingerprint", f"<code class='fingerprint'>{e(run.fingerprint)}</code>"),
    ]


def runs_table(data: ReportData) -> str:
    facts = [_run_facts(run) for run in data.runs]
    head = "".join(f'<th scope="col">run {i + 1}</th>' for i in range(len(data.runs)))
    rows = []
    for index, (name, _) in enumerate(facts[0]):
        cells = "".join(f"<td>{run_facts[index][1]}</td>" for run_facts in facts)
        rows.append(f'<tr><th scope="row">{e(name)}</th>{cells}</tr>')
    return (f'<div class="table-wrap"><table class="runs"><thead><tr><th></th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def fingerprint_warning(data: ReportData) -> str:
    if not data.fingerprints_differ():
        return ""
    listed = ", ".join(f"<code>{e(run.fingerprint)}</code> ({e(run.label)})" for run in data.runs)
    text = (f"<b>Fingerprints differ:</b> these runs were made on different machines or software ({listed}). "
            "Differences in the numbers may come from the environment rather than from the code; compare with care.")
    differences = fingerprint_differences(data)
    if differences:
        headers = ["differs in", *(f"run {i + 1}" for i in range(len(data.runs)))]
        rows = [[(f"<code>{e(name)}</code>", None), *((f"<code>{e(v)}</code>", None) for v in values)]
                for name, values in differences]
        text += table(headers, rows, css="diff")
    return notice(text)


def header(data: ReportData, generated_at: str, tool_version: str) -> str:
    warnings = [fingerprint_warning(data)]
    for run in data.runs:
        if run.data.get("state") != "complete":
            warnings.append(notice(f"run <b>{e(run.label)}</b> is <b>{e(run.data.get('state'))}</b>: it holds only "
                                   "the cases that finished"))
    return (f'<header><h1>tribench report</h1><p class="lead">{len(data.runs)} run(s), {len(data.frame)} case(s): '
            f'{_status_counts(data)}</p><p class="what">{_what_was_run(data)}</p>'
            f'<p class="generated">generated {e(generated_at)} by tribench {e(tool_version)} from the run files '
            f'alone</p>{"".join(w for w in warnings if w)}</header>')


def environment_section(data: ReportData) -> Section:
    return Section("runs", "Runs and environment", runs_table(data))


# ---------------------------------------------------------------- measurements


def _case_cell(row) -> str:
    return f"<code>{e(row['case_id'])}</code>"


def _flagged(noise: Any) -> bool:
    return not _missing(noise) and noise > NOISE_WARNING


def throughput_section(data: ReportData) -> Section:
    charts = chart_kinds.throughput_charts(data)
    relative = chart_kinds.relative_chart(data)
    missing_ci = data.ok[data.ok["throughput_ci_low"].isna()]
    note = ""
    if len(missing_ci):
        note = notice(f"{len(missing_ci)} case(s) have no error bar: too few measured steps for a 95% CI of the "
                      "median (it needs at least 6). Raise <code>--min-steps</code> or <code>--max-time</code>.",
                      "info")
    body = ("<p>Throughput is what a loop of the case's steps sustains: batch size x steps over the wall time of "
            "blocks of steps dispatched back to back with one sync per block (run files without that measurement: "
            "batch size / median synced step time). Error bars are its 95% confidence interval across the case's "
            "processes (with one process, that process's own CI, which says nothing about how fresh processes "
            "differ). Latency (p50, p99) is measured apart, one synced step at a time.</p>"
            + _execution_legend(data) + _threads_note(data) + note + "".join(chart_div(c) for c in charts)
            + (chart_div(relative) if relative else ""))
    if not charts:
        body += notice("no case finished, so there is no throughput to show", "info")
    return Section("throughput", "Throughput", body, charts + ([relative] if relative else []))


def _execution_legend(data: ReportData) -> str:
    """What each compile mode ran per backend, from the cases' ``execution`` (nothing for old run files)."""
    lines = execution_legend([case for run in data.runs for case in run.data.get("cases", [])])
    if not lines:
        return ""
    return '<p>Compile modes:</p><ul class="legend">' + "".join(f"<li>{e(line)}</li>" for line in lines) + "</ul>"


def _threads_note(data: ReportData) -> str:
    """The runs' CPU thread policy (``settings.threads``): how many threads every framework ran, where."""
    return "".join(f"<p>{e(line)}</p>" for line in threads_lines([run.data for run in data.runs]))


def latency_section(data: ReportData) -> Section:
    charts = chart_kinds.latency_charts(data)
    rows = [[(_case_cell(r), r["case_id"]), (e(r["run_label"]), r["run_label"]),
             (e(units.seconds(r["step_time_p50_s"])), r["step_time_p50_s"]),
             (e(units.seconds(r["step_time_p90_s"])), r["step_time_p90_s"]),
             (e(units.seconds(r["step_time_p99_s"])), r["step_time_p99_s"]),
             (e(units.seconds(r["step_time_mean_s"])), r["step_time_mean_s"]),
             (e(whole(r["samples"])), r["samples"])]
            for _, r in data.ok.iterrows()]
    body = "".join(chart_div(c) for c in charts)
    body += "<h3>Percentiles of the step time (all measured steps)</h3>"
    body += table(["case", "run", "p50", "p90", "p99", "mean", "steps"], rows, css="numbers", sortable=True)
    return Section("latency", "Latency distributions", body, charts)


def _reason_list(reasons: list[tuple[str, str]]) -> str:
    """Group (case id, reason) pairs by reason: '<reason>: N case(s)' with the ids folded away."""
    grouped: dict[str, list[str]] = {}
    for case_id, reason in reasons:
        grouped.setdefault(reason, []).append(case_id)
    items = [f"<li><b>not measured:</b> {e(reason)} — {len(ids)} case(s)<details><summary>which</summary>"
             f"{'<br>'.join(f'<code>{e(i)}</code>' for i in ids)}</details></li>" for reason, ids in grouped.items()]
    return f'<ul class="reasons">{"".join(items)}</ul>'


def memory_section(data: ReportData) -> Section:
    charts = chart_kinds.memory_charts(data)
    body = ("<p>Host memory is the worker process's peak resident set; device memory is the framework "
            "allocator's peak. Each chart names where its numbers come from.</p>")
    body += "".join(chart_div(c) for c in charts)
    unmeasured = data.ok[data.ok["device_peak_memory_bytes"].isna()]
    if len(unmeasured):
        body += "<h3>Device allocator peak</h3>" + _reason_list(
            [(r["case_id"], r["device_peak_memory_reason"] or "no reading") for _, r in unmeasured.iterrows()])
    return Section("memory", "Peak memory", body, charts)


def compile_section(data: ReportData) -> Section:
    chart = chart_kinds.compile_chart(data)
    body = chart_div(chart) if chart else notice("no compile time recorded", "info")
    return Section("compile", "Compile and first-step time", body, [chart] if chart else [])


def energy_section(data: ReportData) -> Section:
    chart = chart_kinds.energy_chart(data)
    body = chart_div(chart) if chart else ""
    unmeasured = data.ok[data.ok["energy_j_per_sample"].isna()]
    if len(unmeasured):
        body += _reason_list([(r["case_id"], r["energy_reason"] or "no reading") for _, r in unmeasured.iterrows()])
    if not len(data.ok):
        body += notice("no case finished, so no energy could be measured", "info")
    return Section("energy", "Energy per sample", body, [chart] if chart else [])


def noise_section(data: ReportData) -> Section:
    chart = chart_kinds.noise_chart(data)
    noisy = data.ok[data.ok["noise_iqr_over_median"].map(_flagged)]
    body = ""
    if len(noisy):
        items = "".join(f"<li><code>{e(r['case_id'])}</code> ({e(r['run_label'])}): "
                        f"{e(units.percent(r['noise_iqr_over_median']))}</li>" for _, r in noisy.iterrows())
        body += notice(f"<b>{len(noisy)} case(s) are noisy</b> (IQR / median above {NOISE_WARNING:.0%}): their "
                       f"numbers are less trustworthy; quiet the machine or raise the measuring time.<ul>{items}</ul>")
    body += chart_div(chart) if chart else ""
    return Section("noise", "Noise", body, [chart] if chart else [])


def scaling_section(data: ReportData) -> Section:
    charts = chart_kinds.scaling_charts(data)
    body = "".join(chart_div(c) for c in charts) or notice(
        "no run sweeps batch sizes; run with e.g. <code>--batch 8,32,128</code> to see how throughput and "
        "latency scale", "info")
    return Section("scaling", "Scaling with batch size", body, charts)


# ---------------------------------------------------------------- tables


def _number_cell(value: Any, formatter) -> tuple[str, Any]:
    return (e(formatter(None if _missing(value) else value)), None if _missing(value) else value)


def _ci_cell(row) -> tuple[str, Any]:
    """The throughput CI, what it is made from (processes) and the case's process flags, escaped."""
    low = row["throughput_ci_low"]
    basis = ci_basis_text(row.get("ci_basis"), row.get("processes"))
    flags = row.get("process_flags") or ""
    text = (f'{e(ci_text(low, row["throughput_ci_high"]))}<br>'
            f'<span class="na" title="{e(ci_basis_meaning(basis))}">{e(basis)}</span>')
    if flags:
        text += f'<br><span class="flag">{e(flags)}</span>'
    return text, None if _missing(low) else low


def _energy_cell(row) -> tuple[str, Any]:
    if row["status"] != "ok":
        return "", None
    if _missing(row["energy_j_per_sample"]):
        return f'<span class="na" title="{e(row["energy_reason"])}">not measured</span>', None
    return e(f"{row['energy_j_per_sample']:.4g} J/sample"), row["energy_j_per_sample"]


def _noise_cell(value: Any) -> tuple[str, Any]:
    if _missing(value):
        return "n/a", None
    text = e(units.percent(value))
    return (f'<span class="flag" title="noisy: above {NOISE_WARNING:.0%}">{text} ⚠</span>'
            if _flagged(value) else text), value


def _status_cell(status: str) -> tuple[str, Any]:
    return f'<span class="status {STATUS_CLASS.get(status, "failed")}">{e(status)}</span>', status


CASE_HEADERS = ["case", "backend", "workload", "batch", "status", "throughput (samples/s)", "95% CI (samples/s)",
                "tokens/s", "p50", "p99", "noise (IQR/median)", "compile time", "host peak RSS", "device peak",
                "energy", "repeats", "steps", "MFU"]


def case_table_rows(data: ReportData, with_run: bool) -> list[list[tuple[str, Any]]]:
    rows = []
    for _, r in data.frame.iterrows():
        batch = r["batch_size"]  # float64 in the frame
        rows.append([
            *([(e(r["run_label"]), r["run_label"])] if with_run else []),
            (_case_cell(r), r["case_id"]), (e(r["backend"]), r["backend"]), (e(r["task"]), r["task"]),
            (e(whole(batch)), None if _missing(batch) else batch), _status_cell(r["status"]),
            *(_measurements(r) if r["status"] == "ok" else [("", None)] * 10),
            (e(r["repeats"]), r["repeats"]), _number_cell(r["samples"], whole),
            _mfu_cell(r) if r["status"] == "ok" else ("", None),
        ])
    return rows


def _mfu_cell(row) -> tuple[str, Any]:
    """MFU as a percentage (about 4 significant digits), or "n/a" with the reason on hover."""
    if _missing(row["mfu"]):
        return f'<span class="na" title="{e(row["mfu_reason"])}">n/a</span>', None
    return e(f"{number(row['mfu'] * 100)}%"), row["mfu"]


def _measurements(r) -> list[tuple[str, Any]]:
    return [
        _number_cell(r["throughput_samples_per_s"], number), _ci_cell(r),
        _number_cell(r["throughput_tokens_per_s"], lambda v: "–" if v is None else number(v)),
        _number_cell(r["step_time_p50_s"], units.seconds), _number_cell(r["step_time_p99_s"], units.seconds),
        _noise_cell(r["noise_iqr_over_median"]), _number_cell(r["compile_time_s"], units.seconds),
        _number_cell(r["host_peak_rss_bytes"], units.bytes_),
        _number_cell(r["device_peak_memory_bytes"], units.bytes_), _energy_cell(r),
    ]


def cases_section(data: ReportData) -> Section:
    with_run = len(data.runs) > 1
    headers = (["run"] if with_run else []) + CASE_HEADERS
    body = table(headers, case_table_rows(data, with_run), css="cases numbers", sortable=True)
    return Section("cases", "All cases", "<p>Click a column heading to sort; click again to reverse.</p>" + body)


def problems_section(data: ReportData) -> Section:
    problems = data.problems
    if problems.empty:
        return Section("problems", "Failed, timed-out and skipped cases",
                       notice("every case finished: none failed, timed out or was skipped", "info"))
    rows = []
    for _, r in problems.iterrows():
        stderr = r["stderr_tail"] or ""
        details = (f"<details><summary>stderr (last lines)</summary><pre>{e(stderr)}</pre></details>"
                   if stderr.strip() else "")
        rows.append([*([(e(r["run_label"]), None)] if len(data.runs) > 1 else []), (_case_cell(r), None),
                     _status_cell(r["status"]),
                     (f"<pre class='reason'>{e(r['error'] or 'no reason recorded')}</pre>{details}", None)])
    headers = (["run"] if len(data.runs) > 1 else []) + ["case", "status", "reason"]
    counts = Counter(problems["status"])
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return Section("problems", "Failed, timed-out and skipped cases",
                   f"<p>{e(summary)}. A failed or timed-out case does not stop a run; a skipped case could not be "
                   "run faithfully on this backend or device.</p>"
                   + table(headers, rows, css="problems"))


def all_sections(data: ReportData) -> list[Section]:
    """Every section in page order (generation only when some case ran in generate mode, the scale-out ones only
    when some case ran on several devices)."""
    return [environment_section(data), throughput_section(data), *generation_sections(data),
            efficiency_section(data), profile_section(data),
            latency_section(data), memory_section(data),
            compile_section(data), energy_section(data), noise_section(data), scaling_section(data),
            *scale_out_sections(data), cases_section(data), problems_section(data)]
