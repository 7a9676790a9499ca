"""The HTML report's efficiency (MFU, roofline) and "where the time goes" (profiles) sections.

tests/data/run-profiled.json was written by a real run:
``tribench run --backend torch,jax,tensorflow --workload cnn --size tiny --mode train --compile compiled
--max-time 0.5 --profile --measure-peak`` (its traces were left behind: the report must work from the
run file alone). Expected numbers are the ones that file holds; variants are built from it in code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.test_report_browser import RenderedCharts, _chart_keys, _write, browse, console_messages
from tests.test_report_html import BREAKOUT, SECTIONS, XSS, Page
from tribench.harness.efficiency import NO_PEAKS
from tribench.reports import dataset
from tribench.reports.html.charts import CHART_OPERATORS
from tribench.reports.html.report import render

DATA = Path(__file__).resolve().parent / "data"
RUN = DATA / "run-profiled.json"
TORCH, JAX, TF = (f"{b}/cnn-tiny/train/bs32/fp32/compiled/cpu" for b in ("torch", "jax", "tensorflow"))
GOLDEN_MFU = {TORCH: "16.91%", JAX: "26.22%", TF: "29.36%"}  # number(mfu * 100) of the stored values
GOLDEN_ACHIEVED = {TORCH: "25.3 GFLOP/s", JAX: "39.2 GFLOP/s", TF: "43.9 GFLOP/s"}


def _stored() -> dict:
    return json.loads(RUN.read_text())


def _cases(run: dict) -> dict[str, dict]:
    return {case["id"]: case for case in run["cases"]}


def _page(run: dict, tmp_path: Path, name: str = "run-profiled.json") -> Page:
    path = tmp_path / name
    path.write_text(json.dumps(run))
    return Page(render(dataset.load([path]), generated_at="2026-01-01T00:00:00+00:00"))


@pytest.fixture(scope="module")
def page() -> Page:
    return Page(render(dataset.load([RUN]), generated_at="2026-01-01T00:00:00+00:00"))


def _after(text: str, start: str, length: int = 200) -> str:
    index = text.index(start)
    return text[index:index + length]


# ---------------------------------------------------------------- efficiency


def test_sections_and_charts_of_a_profiled_run(page):
    assert page.section_ids() == SECTIONS
    assert page.chart_keys() == ["throughput-0", "relative", "mfu", "achieved-flops", "roofline-0", "profile-0",
                                 "latency-0", "memory-host", "memory-device", "compile", "noise"]
    assert sorted(page.figures()) == sorted(page.chart_keys())


def test_mfu_is_the_stored_value_formatted(page):
    cases = _cases(_stored())
    efficiency, all_cases = page.section("efficiency"), page.section("cases")
    for case_id, text in GOLDEN_MFU.items():
        mfu = cases[case_id]["metrics"]["mfu"]["value"]
        assert 0 < mfu < 1
        peak = cases[case_id]["metrics"]["mfu"]["peak_flops_per_s"]
        assert mfu == cases[case_id]["metrics"]["achieved_flops_per_s"]["value"] / peak  # as stored, exactly
        row = _after(efficiency, f"{case_id} ")
        assert row.startswith(f"{case_id} {GOLDEN_ACHIEVED[case_id]} {text} 149 GFLOP/s fp32 (torch) n/a "), row
        assert _after(all_cases, f"{case_id} ", 400).split(" not measured 1 ")[1].split(" ")[1] == text
    figure = page.figures()["mfu"]
    assert figure["layout"]["xaxis"]["title"]["text"] == "MFU (% of measured peak)"
    by_backend = {trace["name"]: trace["x"] for trace in figure["data"]}
    assert by_backend == {b: [pytest.approx(100 * cases[c]["metrics"]["mfu"]["value"], rel=1e-12)]
                          for b, c in (("jax", JAX), ("tensorflow", TF), ("torch", TORCH))}
    sorts = [attrs["data-sort"] for tag, attrs in page.tags if tag == "td" and "data-sort" in attrs]
    assert str(cases[TORCH]["metrics"]["mfu"]["value"]) in sorts  # sorting uses the full stored value


def test_achieved_flops_chart_and_absent_spec_reason(page):
    cases = _cases(_stored())
    achieved = {t["name"]: t["x"] for t in page.figures()["achieved-flops"]["data"]}
    assert achieved["torch"] == [pytest.approx(cases[TORCH]["metrics"]["achieved_flops_per_s"]["value"] / 1e9)]
    assert "spec-fraction" not in page.figures()  # no datasheet entry for this CPU: no chart, the reason instead
    reason = cases[TORCH]["metrics"]["spec_fraction"]["reason"]
    assert reason == "no datasheet entry for AMD EPYC (harness/datasheet.py)"
    assert f"% of spec n/a: {reason} — 3 case(s)" in page.section("efficiency")


def test_roofline_chart_places_cases_with_labelled_intensity(page):
    cases = _cases(_stored())
    figure = page.figures()["roofline-0"]
    layout = figure["layout"]
    assert (layout["xaxis"]["type"], layout["yaxis"]["type"]) == ("log", "log")
    assert layout["xaxis"]["title"]["text"] == "arithmetic intensity (FLOP/byte)"
    assert layout["yaxis"]["title"]["text"] == "achieved FLOP/s"
    assert layout["title"]["text"].startswith("<b>Roofline of cpu (AMD EPYC)</b>")
    traces = {t["name"]: t for t in figure["data"]}
    env = _stored()["environment"]["peaks"]["entries"]
    bandwidth = max(e["bandwidth"]["value"] for e in env)
    peak = max(e["matmul"]["fp32"]["value"] for e in env)
    memory = traces["memory roof: 20.7 GB/s (measured copy)"]
    assert memory["y"][0] == pytest.approx(memory["x"][0] * bandwidth) and memory["y"][1] == pytest.approx(peak)
    compute = traces["compute roof fp32: 149 GFLOP/s (measured matmul)"]
    assert compute["y"] == [peak, peak] and compute["x"][0] == pytest.approx(peak / bandwidth)
    cost = cases[JAX]["metrics"]["profile"]["extra"]["xla_cost_analysis"]
    jax = traces["jax · XLA cost analysis"]
    assert jax["x"] == [pytest.approx(cost["flops"] / cost["bytes_accessed"])] and jax["marker"]["symbol"] == "diamond"
    assert jax["y"] == [cases[JAX]["metrics"]["achieved_flops_per_s"]["value"]]
    for backend, case_id in (("torch", TORCH), ("tensorflow", TF)):
        trace = traces[f"{backend} · analytic estimate"]
        assert trace["marker"]["symbol"] == "circle"
        assert trace["y"] == [cases[case_id]["metrics"]["achieved_flops_per_s"]["value"]]
    assert "arithmetic intensity: XLA cost analysis" in page.section("efficiency")
    assert "analytic estimate (harness/traffic.py)" in page.section("efficiency")
    assert "4.556 FLOP/B XLA cost analysis memory" in page.section("efficiency")


def test_without_peaks_mfu_and_roofline_say_why(tmp_path):
    run = _stored()
    del run["environment"]["peaks"]
    for case in run["cases"]:
        case["metrics"]["mfu"] = {"value": None, "unit": "fraction", "source": "x", "reason": NO_PEAKS}
    page = _page(run, tmp_path)
    section = page.section("efficiency")
    assert f"no MFU for any case: {NO_PEAKS}" in section
    assert f"MFU n/a: {NO_PEAKS} — 3 case(s)" in section
    assert ("no roofline for cpu: no measured fp32 matmul peak on cpu (no framework's peak was measured on cpu); "
            "no measured memory bandwidth on cpu") in section
    assert not [k for k in page.chart_keys() if k.startswith(("mfu", "roofline"))]
    assert "achieved-flops" in page.chart_keys()  # achieved FLOP/s needs no peak
    mfu_cells = [attrs for tag, attrs in page.tags if tag == "span" and attrs.get("title") == NO_PEAKS]
    assert len(mfu_cells) >= 6  # the efficiency table and the all-cases table: n/a with the reason on hover


def test_run_files_without_efficiency_or_profiles_say_so():
    page = Page(render(dataset.load([DATA / "run-sweep.json"])))
    assert page.section_ids() == SECTIONS
    assert "no efficiency figures in these run files: not computed for this case" in page.section("efficiency")
    assert "no run in this report was made with --profile" in page.section("profile")
    assert not [k for k in page.chart_keys() if k.startswith(("mfu", "achieved", "roofline", "profile"))]


def test_a_case_without_intensity_is_listed_with_the_reason(tmp_path):
    run = _stored()
    _cases(run)[TORCH]["spec"]["size"] = "colossal"  # a foreign file: no architecture to estimate traffic from
    path = tmp_path / "r.json"
    path.write_text(json.dumps(run))
    data = dataset.load([path])
    row = data.frame.set_index("case_id").loc[TORCH]
    assert row["roofline"] is None and row["roofline_reason"].startswith("no arithmetic intensity for this case")
    section = Page(render(data)).section("efficiency")
    assert f"not on the cpu roofline: {row['roofline_reason']} — 1 case(s)" in section
    assert len(Page(render(data)).figures()["roofline-0"]["data"]) == 2 + 2  # two roofs, jax and tensorflow


# ---------------------------------------------------------------- where the time goes


def test_operator_tables_hold_the_stored_rows(page):
    section = page.section("profile")
    for case_id, case in _cases(_stored()).items():
        profile = case["metrics"]["profile"]
        top = profile["operators"][0]
        assert f"{case_id} — top: {top['operator']} " in section
        assert f"{profile['steps']} step(s) profiled in" in section and profile["open_with"] in section
        assert f"trace {profile['trace_file']} — not found there now (moved or deleted?)" in section
    torch = _cases(_stored())[TORCH]["metrics"]["profile"]["operators"][2]
    assert torch["operator"] == "aten::convolution_backward"
    assert "aten::convolution_backward 9 11.3 ms 10.8 ms 15.08%" in section  # calls, total, self, share
    assert f"top 25 of {_cases(_stored())[TORCH]['metrics']['profile']['operators_total']} operators" in section
    assert "paths are relative to the run file's folder" in section and str(DATA) in section


def test_time_breakdown_is_top_operators_plus_other(page):
    figure = page.figures()["profile-0"]
    assert figure["layout"]["barmode"] == "stack"
    assert figure["layout"]["xaxis"]["title"]["text"] == "share of the profiled step time (%)"
    assert figure["layout"]["yaxis"]["categoryarray"] == ["jax", "tensorflow", "torch"]
    for case_id, case in _cases(_stored()).items():
        backend = case_id.split("/")[0]
        shown = [t for t in figure["data"] if t["y"] == [backend]]
        top = case["metrics"]["profile"]["operators"][:CHART_OPERATORS]
        assert [t["customdata"][0][0] for t in shown] == [op["operator"] for op in top]
        assert [t["x"][0] for t in shown] == [pytest.approx(100 * op["share"]) for op in top]
    other = figure["data"][-1]
    assert other["name"] == f"other (outside each top {CHART_OPERATORS})" and other["y"] == ["jax", "tensorflow",
                                                                                               "torch"]
    for backend, value in zip(other["y"], other["x"], strict=True):
        shares = sum(t["x"][0] for t in figure["data"][:-1] if t["y"] == [backend])
        assert value == pytest.approx(100 - shares) and value >= 0


def test_missing_or_unreadable_profiles_say_why_and_where_the_trace_is(tmp_path):
    run = _stored()
    cases = _cases(run)
    cases[TORCH]["metrics"]["profile"] = {"status": "unavailable", "steps": 3, "reason": "profiling failed: boom"}
    tf = cases[TF]["metrics"]["profile"]
    tf["operators"], tf["operators_reason"] = None, "this trace format cannot be read offline"
    del cases[JAX]["metrics"]["profile"]
    page = _page(run, tmp_path)
    section = page.section("profile")
    assert "no profile: profiling failed: boom" in section
    assert "trace captured, but no operator table: this trace format cannot be read offline" in section
    assert f"trace {tf['trace_file']} — not found there now (moved or deleted?)" in section
    assert f"open with: {tf['open_with']}" in section
    assert "no profile recorded for this case" in section  # jax, in a run made with --profile
    assert not [k for k in page.chart_keys() if k.startswith("profile")]


def test_a_trace_still_next_to_the_run_file_is_found(tmp_path):
    run = _stored()
    torch = _cases(run)[TORCH]["metrics"]["profile"]
    (tmp_path / torch["trace_file"]).parent.mkdir(parents=True)
    (tmp_path / torch["trace_file"]).write_text("{}")
    section = _page(run, tmp_path).section("profile")
    assert f"trace {torch['trace_file']}; paths are relative" in section
    assert section.count("not found there now") == 2  # jax and tensorflow


def _poisoned() -> dict:
    run = _stored()
    for case in run["cases"]:
        profile = case["metrics"]["profile"]
        profile["operators"][0]["operator"] = f"op{XSS}{BREAKOUT}"
        profile["trace_file"] = f"traces/{BREAKOUT}/trace.json"
        profile["open_with"] = f"open {XSS}"
        profile["tool"] = f"tool{BREAKOUT}"
        case["metrics"]["mfu"]["peak_backend"] = XSS
        case["metrics"]["spec_fraction"]["reason"] = BREAKOUT
    return run


def test_strings_from_the_run_file_are_escaped(tmp_path):
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(_poisoned()))
    html = render(dataset.load([path]))
    page = Page(html)
    assert not [attrs for tag, attrs in page.tags if tag in ("img", "iframe")]
    assert [tag for tag, _ in page.tags].count("script") == 4  # the report's own only
    assert html.count("<script>alert(1)") == 0 and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    section = page.section("profile")
    assert f"op{XSS}{BREAKOUT}" in section and f"open {XSS}" in section  # shown as text
    legend = [t["name"] for t in page.figures()["profile-0"]["data"]]
    assert "op&lt;script&gt;alert(1)&lt;/script&gt;\"&gt;&lt;img src=x…" in legend  # inert for plotly too


# ---------------------------------------------------------------- in a real browser


def test_profiled_report_renders_in_the_browser(tmp_path):
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(_poisoned()))
    report = render(dataset.load([RUN, path]))
    keys = _chart_keys(report)
    assert {"mfu", "achieved-flops", "roofline-0", "profile-0"} <= set(keys)
    done = browse(_write(tmp_path, "report.html", report), tmp_path / "profile", "--dump-dom")
    assert console_messages(done.stderr) == []
    rendered = RenderedCharts(done.stdout)
    assert list(rendered.charts) == keys and all(rendered.charts.values()), [
        k for k, ok in rendered.charts.items() if not ok]
    assert "img" not in rendered.tags and rendered.tags.count("script") == 4
    assert re.search(r"compute roof fp32: 149 GFLOP/s", done.stdout)  # the legend was drawn as SVG text


def test_a_profiled_run_beside_an_older_one():
    page = Page(render(dataset.load([RUN, DATA / "run-sweep.json"])))
    old = json.loads((DATA / "run-sweep.json").read_text())["run_id"]
    assert (f"no roofline for cpu (run {old}): no achieved FLOP/s in the run file (written before tribench computed "
            "efficiency)") in page.section("efficiency")
    assert f"run(s) {old} were made without --profile" in page.section("profile")
    assert page.figures()["roofline-0"]["layout"]["title"]["text"].startswith(
        f"<b>Roofline of cpu (AMD EPYC) · run {_stored()['run_id']}</b>")
