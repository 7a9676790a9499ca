"""The reports' data-parallel scaling figures (issue 8): HTML "Scaling with devices" section and markdown table.

tests/data/run-scaling.json was written by a real run (tests/data/regenerate.py, ``scaling``):
``tribench run --workload cnn,transformer --mode train,infer --batch 4 --devices 2 --scaling ...``,
so each point has a 1-device and a 2-device case. Expected numbers are the ones that file holds (it
is regenerated as more backends gain data-parallel; nothing here names a backend or a number);
variants with missing or hostile values are built from it in code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_report_html import BREAKOUT, MARKDOWN, SECTIONS, XSS, Page
from tests.test_report_markdown import _to_html
from tribench.harness.distributed_metrics import add_scaling
from tribench.reports import dataset
from tribench.reports.html.report import render
from tribench.reports.html.scaling_section import BASELINE_TEXT, SECTION_ID
from tribench.reports.report_format import number
from tribench.reports.text import markdown

DATA = Path(__file__).resolve().parent / "data"
RUN = DATA / "run-scaling.json"
NO_BASELINE = "no 1-device case of this point in the run (use --scaling)"


def _stored() -> dict:
    return json.loads(RUN.read_text())


def _page(run: dict, tmp_path: Path) -> Page:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    return Page(render(dataset.load([path]), generated_at="2026-01-01T00:00:00+00:00"))


@pytest.fixture(scope="module")
def page() -> Page:
    return Page(render(dataset.load([RUN]), generated_at="2026-01-01T00:00:00+00:00"))


def _point(spec: dict) -> tuple:
    return (spec["workload"], spec["size"], spec["mode"], spec["batch_size"], spec["precision"], spec["compile"])


def _title(point: tuple) -> str:
    workload, size, mode, batch, precision, compile_ = point
    return f"<b>Scaling with devices: {workload}-{size} · {mode} · bs{batch} · {precision} · {compile_}</b>"


def _points(run: dict) -> dict[tuple, dict[str, dict[int, dict]]]:
    """point -> backend -> total devices -> case, in file order."""
    points: dict[tuple, dict[str, dict[int, dict]]] = {}
    for case in run["cases"]:
        spec = case["spec"]
        total = spec.get("nodes", 1) * spec.get("devices", 1)
        points.setdefault(_point(spec), {}).setdefault(spec["backend"], {})[total] = case
    return points


def _chart_of(page: Page, point: tuple) -> dict:
    return next(f for k, f in page.figures().items() if k.startswith(SECTION_ID)
                and f["layout"]["title"]["text"].startswith(_title(point)))


def _traces(figure: dict, panel: str) -> dict[str, dict]:
    return {t["name"]: t for t in figure["data"] if t["xaxis"] == panel}


def test_the_run_file_holds_what_the_tests_need():
    points = _points(_stored())
    assert len(points) == 2  # cnn train and cnn infer
    for backends in points.values():
        assert sorted(backends) == ["jax", "tensorflow", "torch"]
        for cases in backends.values():
            assert sorted(cases) == [1, 2]
            assert all(case["status"] == "ok" for case in cases.values())
            efficiency = cases[2]["metrics"]["scaling_efficiency"]
            assert efficiency["value"] > 0 and efficiency["baseline_case"] == cases[1]["id"]
            assert "scaling_efficiency" not in cases[1]["metrics"]


def test_section_and_one_chart_per_point(page):
    points = _points(_stored())
    assert page.section_ids() == [*SECTIONS[:SECTIONS.index("scaling") + 1], SECTION_ID,
                                  *SECTIONS[SECTIONS.index("scaling") + 1:]]
    keys = [k for k in page.chart_keys() if k.startswith(SECTION_ID)]
    assert keys == [f"{SECTION_ID}-{i}" for i in range(len(points))]
    assert [page.figures()[k]["layout"]["title"]["text"].split("<br>")[0] for k in keys] == [
        _title(point) for point in points]
    section = page.section(SECTION_ID)
    assert section.startswith("Scaling with devices (data-parallel) Data-parallel cases: torch runs one process per "
                              "device; JAX and TensorFlow run one process per host driving all its devices.")
    assert "so it is drawn at 100% by definition" in section
    for key in keys:
        layout = page.figures()[key]["layout"]
        assert layout["xaxis"]["title"]["text"] == layout["xaxis2"]["title"]["text"] == (
            "devices (hosts × devices per host)")
        assert layout["xaxis"]["tickvals"] == [1, 2] and layout["xaxis2"]["type"] == "log"
        assert layout["yaxis"]["title"]["text"] == "global throughput (samples/s)"
        assert layout["yaxis2"]["title"]["text"] == "scaling efficiency (% of ideal)"


def test_traces_hold_the_run_files_throughput_and_efficiency(page):
    for point, backends in _points(_stored()).items():
        figure = _chart_of(page, point)
        throughput, efficiency = _traces(figure, "x"), _traces(figure, "x2")
        assert set(throughput) == {name for b in backends for name in (b, f"{b}: ideal (N × its 1-device throughput)")}
        assert set(efficiency) == {*backends, "ideal: 100% efficiency"}
        for backend, cases in backends.items():
            one, two = (cases[n]["metrics"] for n in (1, 2))
            line = throughput[backend]
            assert line["x"] == [1.0, 2.0]
            assert line["y"] == [one["throughput"]["value"], two["throughput"]["value"]]  # exactly as stored
            assert line["marker"]["color"] == {"torch": "#EE4C2C", "tensorflow": "#F2A900", "jax": "#5E35B1"}[backend]
            ideal = throughput[f"{backend}: ideal (N × its 1-device throughput)"]
            assert ideal["y"] == [one["throughput"]["value"], 2 * one["throughput"]["value"]]
            assert efficiency[backend]["x"] == [1.0, 2.0]
            assert efficiency[backend]["y"] == [100.0, pytest.approx(100 * two["scaling_efficiency"]["value"],
                                                                     rel=1e-12)]
        assert efficiency["ideal: 100% efficiency"]["y"] == [100.0, 100.0]


def test_table_rows_hold_the_stored_figures(page):
    section = page.section(SECTION_ID)
    for backends in _points(_stored()).values():
        for backend, cases in backends.items():
            one, two = cases[1], cases[2]
            ranks = [r["throughput"]["value"] for r in two["metrics"]["ranks"]]
            slowest = two["metrics"]["slowest_rank"]["value"]
            assert ranks[0] + ranks[1] == pytest.approx(two["metrics"]["throughput"]["value"], rel=1e-12)
            assert (f"{one['id']} {backend} 1 ok {number(one['metrics']['throughput']['value'])} "
                    f"{number(one['metrics']['throughput']['value'])} {BASELINE_TEXT} – –") in section
            value = two["metrics"]["throughput"]["value"]
            assert (f"{two['id']} {backend} 2 ok {number(value)} {number(value / 2)} "
                    f"{number(100 * two['metrics']['scaling_efficiency']['value'])}% rank {slowest}: ") in section
            assert f"median step {number(min(ranks))} – {number(max(ranks))}" in section


def test_data_parallel_cases_get_their_own_setting_in_other_charts(page):
    case = next(c for c in _stored()["cases"] if c["spec"]["devices"] == 2)
    spec = case["spec"]
    labels = {y for trace in page.figures()["throughput-0"]["data"] for y in trace["y"]}
    setting = f"{spec['mode']} · bs{spec['batch_size']} · {spec['precision']} · {spec['compile']}"
    assert {setting, f"{setting} · x2"} <= labels  # side by side, not one bar drawn over the other


def test_missing_efficiency_is_shown_with_its_reason_never_as_zero(tmp_path):
    run = _stored()
    points = _points(run)
    first, second = list(points)[:2]
    backend = next(iter(points[first]))
    without_baseline = points[first][backend][1]
    run["cases"].remove(without_baseline)  # as a run made with --devices 2 and no --scaling
    add_scaling(run["cases"], scaling=False)
    failed = points[second][backend][2]
    failed.update(status="failed", error="data-parallel case failed: rank 1 was killed by SIGKILL", metrics=None)
    page = _page(run, tmp_path)
    section = page.section(SECTION_ID)
    assert f"{points[first][backend][2]['id']} {backend} 2 ok " in section
    assert f"n/a: {NO_BASELINE}" in section
    assert f"{failed['id']} {backend} 2 failed n/a n/a n/a: the case did not finish (failed)" in section
    chart = _chart_of(page, first)
    assert backend not in _traces(chart, "x2")  # no efficiency known for this line: none drawn
    assert f"{backend}: ideal (N × its 1-device throughput)" not in _traces(chart, "x")
    assert _traces(chart, "x")[backend]["x"] == [2.0]
    assert _traces(chart, "x2")["ideal: 100% efficiency"]["y"] == [100.0, 100.0]
    other = _chart_of(page, second)
    assert _traces(other, "x")[backend]["x"] == [1.0] and _traces(other, "x2")[backend]["y"] == [100.0]
    text = markdown.render(dataset.load([tmp_path / "run.json"]))
    assert "n/a\\: no 1\\-device case of this point in the run \\(use \\-\\-scaling\\)" in text


def test_total_devices_are_hosts_times_devices(tmp_path):
    run = _stored()
    case = next(c for c in run["cases"] if c["spec"]["devices"] == 2)
    case["spec"]["nodes"] = 2  # 2 hosts of 2: 4 devices in all
    page = _page(run, tmp_path)
    figure = _chart_of(page, _point(case["spec"]))
    assert _traces(figure, "x")[case["spec"]["backend"]]["x"] == [1.0, 4.0]
    assert figure["layout"]["xaxis"]["tickvals"] == [1, 2, 4]  # the point's other backends are still at 2
    assert f"{case['id']} {case['spec']['backend']} 4 (2 hosts × 2) ok" in page.section(SECTION_ID)


def test_no_section_without_data_parallel_cases(tmp_path):
    sweep = Page(render(dataset.load([DATA / "run-sweep.json"])))  # written before specs had devices and nodes
    assert sweep.section_ids() == SECTIONS
    assert not [k for k in sweep.chart_keys() if k.startswith(SECTION_ID)]
    run = _stored()
    run["cases"] = [c for c in run["cases"] if c["spec"]["devices"] == 1]
    for case in run["cases"]:
        del case["spec"]["devices"], case["spec"]["nodes"]
    assert _page(run, tmp_path).section_ids() == SECTIONS
    assert "Data-parallel" not in markdown.render(dataset.load([tmp_path / "run.json"]))


def test_markdown_table_holds_the_stored_figures():
    text = markdown.render(dataset.load([RUN]))
    assert "### Data-parallel scaling" in text
    assert ("| backend | workload | setting | devices | global throughput (samples/s) | scaling efficiency |"
            in text)
    for (workload, size, mode, batch, precision, compile_), backends in _points(_stored()).items():
        setting = f"{mode} · bs{batch} · {precision} · {compile_}"
        for backend, cases in backends.items():
            for total, case in cases.items():
                metrics = case["metrics"]
                efficiency = ("100% \\(the 1\\-device baseline\\)" if total == 1
                              else f"{number(100 * metrics['scaling_efficiency']['value'])}%".replace(".", "\\."))
                row = (f"| {backend} | {workload}\\-{size} | {setting} | {total} | "
                       f"{number(metrics['throughput']['value']).replace('.', chr(92) + '.')} | {efficiency} |")
                assert row in text, row


def _poisoned() -> dict:
    run = _stored()
    for index, case in enumerate(run["cases"]):
        case["spec"]["backend"] = f"evil{XSS}"
        case["spec"]["precision"] = f"fp32{BREAKOUT}"
        case["id"] = f"{case['id']}/{MARKDOWN}/{index}"
        efficiency = case["metrics"].get("scaling_efficiency")
        if efficiency:
            efficiency.update(value=None, reason=f"{XSS} {BREAKOUT}")
    return run


def test_hostile_strings_are_escaped(tmp_path):
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(_poisoned()))
    html = render(dataset.load([path]))
    page = Page(html)
    assert SECTION_ID in page.section_ids()
    assert not [tag for tag, _ in page.tags if tag in ("img", "iframe", "svg")]
    assert [tag for tag, _ in page.tags].count("script") == 4  # the report's own only
    section = page.section(SECTION_ID)
    assert f"evil{XSS}" in section and f"fp32{BREAKOUT}" in section and f"n/a: {XSS} {BREAKOUT}" in section
    figures = [v for k, v in page.figures().items() if k.startswith(SECTION_ID)]
    assert figures
    for figure in figures:
        title = figure["layout"]["title"]["text"]
        assert "&lt;img" in title and "<img" not in title  # the hostile precision, inert for plotly
        for trace in figure["data"]:
            assert "<" not in trace["name"] and "<" not in json.dumps(trace.get("customdata"))
    script = next(text for attrs, text in page.scripts if attrs.get("id") == "tribench-figures")
    assert "<" not in script
    rendered = _to_html(markdown.render(dataset.load([path])))
    assert "<script>" not in rendered and "<img" not in rendered and "&lt;script&gt;alert(1)" in rendered
