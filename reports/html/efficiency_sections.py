"""The HTML report's "Efficiency" (MFU, roofline) and "Where the time goes" (profiles) sections.

Both read only what the run files hold (``reports.dataset`` adds the columns: ``mfu``,
``achieved_flops_per_s``, ``spec_fraction`` with their ``*_reason``, ``roofline`` and ``profile``);
trace files are looked up next to the run file only to say whether they are still there. Every
absent figure is shown with its reason, and every string from a run file goes through ``e``.
"""

from __future__ import annotations

from typing import Any

from tribench.reports.dataset import ReportData, Run
from tribench.reports.html import charts as chart_kinds
from tribench.reports.html.blocks import Section, chart_div, e, notice, table
from tribench.reports.report_format import missing, number, whole
from tribench.reports.units import rate, seconds

OPEN_PROFILES = 6  # up to this many profiled cases, their operator tables start unfolded


def mfu_text(value: float) -> str:
    """MFU as shown everywhere in the report: a percentage with about four significant digits."""
    return f"{number(value * 100)}%"


def _na(reason: Any) -> str:
    return f'<span class="na" title="{e(reason or "no reason recorded")}">n/a</span>'


def _cell(value: Any, text: str, reason: Any) -> tuple[str, Any]:
    return (_na(reason), None) if missing(value) else (e(text), value)


def _run(data: ReportData, label: str) -> Run:
    return next(run for run in data.runs if run.label == label)


def _reasons(title: str, pairs: list[tuple[str, str]]) -> str:
    """'<title>: <reason> — N case(s)' per distinct reason, the case ids folded away."""
    grouped: dict[str, list[str]] = {}
    for case_id, reason in pairs:
        grouped.setdefault(reason or "no reason recorded", []).append(case_id)
    items = [f"<li><b>{e(title)}:</b> {e(reason)} — {len(ids)} case(s)<details><summary>which</summary>"
             f"{'<br>'.join(f'<code>{e(i)}</code>' for i in ids)}</details></li>" for reason, ids in grouped.items()]
    return f'<ul class="reasons">{"".join(items)}</ul>' if items else ""


# ---------------------------------------------------------------- efficiency


def _peak_cell(row) -> tuple[str, Any]:
    peak = row["mfu_peak_flops_per_s"]
    if missing(peak):
        return _na(row["mfu_reason"]), None
    precision = row["roofline"].get("roof_precision") if isinstance(row["roofline"], dict) else None
    return e(f"{rate(peak, 'FLOP/s')}{f' {precision}' if precision else ''} ({row['mfu_peak_backend']})"), peak


def _intensity_cell(row) -> tuple[str, Any]:
    point = row["roofline"]
    if not isinstance(point, dict):
        return _na(row["roofline_reason"]), None
    kind = chart_kinds.intensity_kind(point["intensity_source"])
    return (f'{e(number(point["arithmetic_intensity"]))} FLOP/B <span class="na" '
            f'title="{e(point["intensity_source"])}">{e(kind)}</span>'), point["arithmetic_intensity"]


def efficiency_table(data: ReportData, rows) -> str:
    with_run = len(data.runs) > 1
    body = []
    for _, r in rows.iterrows():
        body.append([*([(e(r["run_label"]), r["run_label"])] if with_run else []),
                     (f"<code>{e(r['case_id'])}</code>", r["case_id"]),
                     _cell(r["achieved_flops_per_s"], rate(r["achieved_flops_per_s"], "FLOP/s"),
                           r["achieved_flops_per_s_reason"]),
                     _cell(r["mfu"], None if missing(r["mfu"]) else mfu_text(r["mfu"]), r["mfu_reason"]),
                     _peak_cell(r),
                     _cell(r["spec_fraction"], None if missing(r["spec_fraction"]) else mfu_text(r["spec_fraction"]),
                           r["spec_fraction_reason"]),
                     _intensity_cell(r),
                     (e(r["roofline"].get("bound") or "–") if isinstance(r["roofline"], dict) else "–", None)])
    headers = (["run"] if with_run else []) + ["case", "achieved FLOP/s", "MFU", "measured peak (framework)",
                                               "% of datasheet spec", "arithmetic intensity", "bound"]
    return table(headers, body, css="numbers efficiency", sortable=True)


def _roofline_groups(data: ReportData, rows):
    """(device, rows) per device, split by machine when the runs' fingerprints differ."""
    keys = ["device", "fingerprint"] if data.fingerprints_differ() else ["device"]
    for key, group in rows.groupby(keys, sort=False, dropna=False):
        yield (key if isinstance(key, tuple) else (key,))[0], group


def _has_roofs(point: Any) -> bool:
    return isinstance(point, dict) and bool(point.get("roof_peak_flops_per_s")
                                            and point.get("roof_bandwidth_bytes_per_s"))


def _why_no_roof(row) -> str:
    point = row["roofline"]
    if not isinstance(point, dict):
        return row["roofline_reason"]
    return "; ".join(r for r in (point.get("roof_peak_reason"), point.get("roof_bandwidth_reason")) if r)


def _roofline_title(data: ReportData, device: str, group) -> str:
    from tribench.harness.efficiency import device_name

    first = group.iloc[0]
    name = device_name(_run(data, first["run_label"]).environment, first["backend"], device)
    title = f"Roofline of {chart_kinds.plot_text(device)}" + (f" ({chart_kinds.plot_text(name)})" if name else "")
    if data.fingerprints_differ():
        title += " · run " + chart_kinds.plot_text(", ".join(dict.fromkeys(group["run_label"])))
    return title


def roofline_block(data: ReportData) -> tuple[str, list]:
    """One roofline chart per device where intensity and both measured roofs are known, else why not."""
    body, charts = "", []
    for device, group in _roofline_groups(data, data.ok):
        plotted = group[group["roofline"].map(_has_roofs)]
        if len(plotted):
            chart = chart_kinds.roofline_chart(data, plotted, key=f"roofline-{len(charts)}",
                                               title=_roofline_title(data, device, group))
            sources = sorted({p["intensity_source"] for p in plotted["roofline"]})
            charts.append(chart_kinds.Chart(chart.key, chart.figure, "arithmetic intensity: "
                                            + "; ".join(e(s) for s in sources)))
            body += chart_div(charts[-1])
        unplotted = group[~group["roofline"].map(_has_roofs)]
        if len(unplotted) == len(group):
            reasons = sorted({_why_no_roof(r) for _, r in unplotted.iterrows()})
            runs = f" (run {', '.join(dict.fromkeys(group['run_label']))})" if data.fingerprints_differ() else ""
            body += notice(f"<b>no roofline for {e(device)}{e(runs)}:</b> {e('; '.join(reasons))}", "info")
        elif len(unplotted):
            body += _reasons(f"not on the {device} roofline",
                             [(r["case_id"], _why_no_roof(r)) for _, r in unplotted.iterrows()])
    return body, charts


def efficiency_section(data: ReportData) -> Section:
    ok = data.ok
    intro = ("<p><b>Achieved FLOP/s</b> = the workload's analytic FLOPs per step / median step time. <b>MFU</b> = "
             "achieved / the highest dense-matmul rate any framework measured on the case's device and precision "
             "(<code>tribench peak</code>). <b>% of spec</b> divides by the vendor's datasheet peak where the device "
             "is known. The <b>roofline</b> places each case by arithmetic intensity (FLOPs per byte moved per "
             "step: XLA's cost analysis for profiled JAX steps, otherwise an analytic estimate) against the "
             "device's measured compute and bandwidth peaks.</p>")
    if ok.empty:
        return Section("efficiency", "Efficiency: MFU and roofline",
                       intro + notice("no case finished, so there is no efficiency to show", "info"))
    known = ok[ok["achieved_flops_per_s"].notna()]
    if known.empty:
        reasons = sorted({str(r) for r in ok["achieved_flops_per_s_reason"]})
        return Section("efficiency", "Efficiency: MFU and roofline", intro + notice(
            f"<b>no efficiency figures in these run files:</b> {e('; '.join(reasons))} (run files written before "
            "tribench computed achieved FLOP/s and MFU; run again to get them)", "info"))
    charts = chart_kinds.efficiency_charts(data)
    body = intro + "".join(chart_div(c) for c in charts)
    if not any(c.key == "mfu" for c in charts):
        body += notice("<b>no MFU for any case:</b> " + e("; ".join(sorted({str(r) for r in ok["mfu_reason"]}))))
    body += "<h3>Per case</h3>" + efficiency_table(data, ok)
    for column, title in (("mfu", "MFU n/a"), ("spec_fraction", "% of spec n/a")):
        absent = ok[ok[column].isna()]
        body += _reasons(title, [(r["case_id"], r[f"{column}_reason"]) for _, r in absent.iterrows()])
    roofline, roofline_charts = roofline_block(data)
    body += "<h3>Roofline</h3>" + roofline
    return Section("efficiency", "Efficiency: MFU and roofline", body, charts + roofline_charts)


# ---------------------------------------------------------------- where the time goes


def profiled(run: Run) -> bool:
    """Whether a run was made with --profile (its settings or command say so, or a case holds a profile)."""
    settings = run.data.get("settings") or {}
    return bool(settings.get("profile")) or "--profile" in (run.data.get("command") or []) or any(
        (case.get("metrics") or {}).get("profile") for case in run.data.get("cases") or [])


def _has_operators(profile: Any) -> bool:
    return isinstance(profile, dict) and profile.get("status") == "captured" and bool(profile.get("operators"))


def trace_location(run: Run, profile: dict[str, Any]) -> str:
    """Where the trace is (relative to the run file's folder), whether it is still there, and how to open it."""
    from tribench.harness.profiling import resolve_trace

    path = resolve_trace(run.path, profile)
    if path is None:
        where = "no trace file recorded"
        if profile.get("trace_dir"):
            where += f"; trace folder <code>{e(profile['trace_dir'])}</code>"
    else:
        state = "" if path.exists() else " — <b>not found there now</b> (moved or deleted?)"
        where = f"trace <code>{e(profile['trace_file'])}</code>{state}"
    text = f"{where}; paths are relative to the run file's folder <code>{e(run.path.parent)}</code>"
    if profile.get("open_with"):
        text += f"; open with: {e(profile['open_with'])}"
    return text


def operators_table(profile: dict[str, Any]) -> str:
    rows = [[(f"<code>{e(op['operator'])}</code>", op["operator"]), (e(whole(op["calls"])), op["calls"]),
             (e(seconds(op["total_s"])), op["total_s"]), (e(seconds(op["self_s"])), op["self_s"]),
             (e(f"{number(100 * op['share'])}%"), op["share"])] for op in profile["operators"]]
    return table(["operator", "calls", "total", "self", "share of step"], rows, css="numbers operators",
                 sortable=True)


def _profile_meta(profile: dict[str, Any]) -> str:
    shown = len(profile.get("operators") or [])
    total = profile.get("operators_total")
    counted = f"top {shown} of {total} operators" if total and total > shown else f"{shown} operators"
    return e(f"{profile.get('tool') or 'profiler'}: {profile.get('steps')} step(s) profiled in "
             f"{seconds(profile.get('window_s'))}; {counted}; times: {profile.get('time_basis') or 'not stated'}")


def case_profile(data: ReportData, row, open_: bool) -> str:
    """One case's operator table with its trace's location, or a visible note why there is none."""
    run = _run(data, row["run_label"])
    profile = row["profile"] if isinstance(row["profile"], dict) else None
    title = f"<code>{e(row['case_id'])}</code>" + (f" · run {e(row['run_label'])}" if len(data.runs) > 1 else "")
    if not profile:
        return f"<h3>{title}</h3>" + notice("<b>no profile recorded for this case</b> (its profiled process did "
                                            "not finish; see the case's stderr)")
    if profile.get("status") != "captured":
        return f"<h3>{title}</h3>" + notice(f"<b>no profile:</b> {e(profile.get('reason') or 'no reason recorded')}")
    where = f'<p class="trace">{trace_location(run, profile)}</p>'
    if not profile.get("operators"):
        why = profile.get("operators_reason") or "the trace holds no operator events"
        return f"<h3>{title}</h3>" + notice(f"<b>trace captured, but no operator table:</b> {e(why)}", "info") + where
    top = profile["operators"][0]
    summary = f"{title} — top: <code>{e(top['operator'])}</code> {e(number(100 * top['share']))}% of the step"
    return (f'<details class="profile"{" open" if open_ else ""}><summary>{summary}</summary>'
            f'<p class="caption">{_profile_meta(profile)}</p>{where}{operators_table(profile)}</details>')


def profile_section(data: ReportData) -> Section:
    title = "Where the time goes (profiles)"
    runs = [run for run in data.runs if profiled(run)]
    if not runs:
        return Section("profile", title, notice(
            "no run in this report was made with <code>--profile</code>; run e.g. <code>tribench run --workload cnn "
            "--profile</code> to trace each case and see its top operators here", "info"))
    labels = {run.label for run in runs}
    rows = data.ok[data.ok["run_label"].isin(labels)]
    charts = []
    with_ops = rows[rows["profile"].map(_has_operators)]
    for (task, variant), group in with_ops.groupby(["task", "variant"], sort=False):
        charts.append(chart_kinds.time_breakdown_chart(
            data, group, key=f"profile-{len(charts)}",
            title=f"Where the time goes: {chart_kinds.plot_text(task)} · {chart_kinds.plot_text(variant)}"))
    body = ("<p>Each profiled case traced a few steady-state steps <b>after</b> its timed steps. An operator's "
            "<b>self</b> time is the time it was the innermost one running (shared with operators running at the "
            "same moment on other threads); <b>share</b> = self time / the profiled steps' wall time, so the shares "
            "never add up to more than 100%. Operator names are each framework's own, so compare where the time "
            "goes, not names.</p>")
    body += "".join(chart_div(c) for c in charts)
    unprofiled = [run.label for run in data.runs if run.label not in labels]
    if unprofiled:
        body += notice(f"run(s) {e(', '.join(unprofiled))} were made without <code>--profile</code>", "info")
    if rows.empty:
        body += notice("no profiled case finished, so there is no profile to show", "info")
    open_ = len(rows) <= OPEN_PROFILES
    body += "".join(case_profile(data, row, open_) for _, row in rows.iterrows())
    return Section("profile", title, body, charts)
