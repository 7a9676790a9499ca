"""The HTML report, golden: built from the checked-in run files, read back with an HTML parser.

The run files under tests/data were written by ``tribench run`` (see tests/data/regenerate.py);
expected numbers below are the ones those files hold.
"""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tribench.reports import dataset
from tribench.reports.energy_reading import NO_ENERGY
from tribench.reports.html.blocks import Section
from tribench.reports.html.charts import Chart
from tribench.reports.html.report import default_output, figures_json, render, script_safe_json, write_report

DATA = Path(__file__).resolve().parent / "data"
XSS = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
MARKDOWN = "| *bold* `tick` [x](javascript:alert(1)) _u_ # !"


BLOCKS = {"p", "div", "td", "th", "tr", "li", "ul", "br", "h1", "h2", "h3", "pre", "table", "section", "summary",
          "nav", "a", "header", "figure", "details", "title", "style"}


class Page(HTMLParser):
    """Every start tag with its attributes, every script's text, and the visible text (per section too)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self.sections: dict[str, list[str]] = {}
        self._section: str | None = None
        self._script: dict[str, str | None] | None = None
        self._style = False
        self.feed(text)
        self.close()

    def _add(self, text: str) -> None:
        self.text.append(text)
        if self._section:
            self.sections[self._section].append(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = dict(attrs)
            self.scripts.append((self._script, ""))
        if tag == "section":
            self._section = dict(attrs)["id"]
            self.sections[self._section] = []
        self._style = self._style or tag == "style"
        if tag in BLOCKS:
            self._add(" ")

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None
        if tag == "style":
            self._style = False
        if tag in BLOCKS:
            self._add(" ")
        if tag == "section":
            self._section = None

    def handle_data(self, data):
        if self._script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        elif not self._style:
            self._add(data)

    @property
    def visible(self) -> str:
        return " ".join("".join(self.text).split())

    def section(self, name: str) -> str:
        return " ".join("".join(self.sections[name]).split())

    def chart_keys(self) -> list[str]:
        return [attrs["data-chart"] for tag, attrs in self.tags if tag == "div" and "data-chart" in attrs]

    def figures(self) -> dict:
        script = next(text for attrs, text in self.scripts if attrs.get("id") == "tribench-figures")
        return json.loads(script)

    def section_ids(self) -> list[str]:
        return [attrs["id"] for tag, attrs in self.tags if tag == "section"]


def _report(*names: str, plotly_js: str = "inline") -> str:
    return render(dataset.load([DATA / name for name in names]), plotly_js, generated_at="2026-01-01T00:00:00+00:00")


@pytest.fixture(scope="module")
def sweep() -> Page:
    return Page(_report("run-sweep.json"))


@pytest.fixture(scope="module")
def problems() -> Page:
    return Page(_report("run-problems.json"))


@pytest.fixture(scope="module")
def malicious_html() -> str:
    return _report("run-malicious.json")


SECTIONS = ["runs", "throughput", "efficiency", "profile", "latency", "memory", "compile", "energy", "noise", "scaling",
            "cases", "problems"]


def test_every_section_and_chart(sweep):
    assert sweep.section_ids() == SECTIONS
    keys = sweep.chart_keys()
    assert keys == ["throughput-0", "throughput-1", "relative", "latency-0", "latency-1", "memory-host", "compile",
                    "noise", "scaling-0", "scaling-1", "scaling-2", "scaling-3"]
    assert sorted(sweep.figures()) == sorted(keys)  # one figure per chart div, none without a div


def test_every_chart_has_a_title_and_axis_titles_with_units(sweep):
    for key, figure in sweep.figures().items():
        layout = figure["layout"]
        assert layout["title"]["text"], key
        axes = [name for name in layout if re.fullmatch(r"[xy]axis\d*", name)]
        assert {"xaxis", "yaxis"} <= set(axes), key
        for axis in axes:
            assert layout[axis]["title"]["text"], f"{key} {axis}"
    value_axes = {key: figure["layout"]["xaxis"]["title"]["text"] for key, figure in sweep.figures().items()
                  if not key.startswith(("latency", "scaling"))}
    assert value_axes == {"throughput-0": "throughput (samples/s)", "throughput-1": "throughput (samples/s)",
                          "relative": "throughput relative to the fastest (%)", "memory-host": "peak memory (MiB)",
                          "compile": "first-step time (s)", "noise": "noise: IQR / median (%)"}
    assert sweep.figures()["latency-0"]["layout"]["yaxis"]["title"]["text"] == "step time (ms)"
    scaling = sweep.figures()["scaling-0"]["layout"]
    assert scaling["xaxis"]["title"]["text"] == scaling["xaxis2"]["title"]["text"] == "batch size (samples per step)"
    assert (scaling["yaxis"]["title"]["text"], scaling["yaxis2"]["title"]["text"]) == (
        "throughput (samples/s)", "median step time (ms)")
    titles = [figure["layout"]["title"]["text"] for figure in sweep.figures().values()]
    assert titles[0].startswith("<b>Throughput of cnn-tiny: backends side by side</b>")
    assert titles[-1].startswith("<b>Scaling with batch size: transformer-tiny · infer · fp32 · eager</b>")


def test_one_colour_per_backend_in_every_chart(sweep):
    colours = {"torch": "#EE4C2C", "jax": "#5E35B1"}
    seen = 0
    for figure in sweep.figures().values():
        for trace in figure["data"]:
            colour = (trace.get("marker") or {}).get("color") or (trace.get("line") or {}).get("color")
            assert colour == colours[trace["name"]]
            seen += 1
    assert seen == 2 * 8 + 2 * 4 * 2  # 8 one-trace-per-backend charts, 4 scaling charts with 2 panels each


def test_throughput_error_bars_are_the_ci(sweep):
    run = json.loads((DATA / "run-sweep.json").read_text())
    cases = {case["id"]: case for case in run["cases"]}
    bars = 0
    for index, workload in enumerate(("cnn", "transformer")):
        for trace in sweep.figures()[f"throughput-{index}"]["data"]:
            assert trace["y"] == ["train · bs8 · fp32 · eager", "train · bs32 · fp32 · eager",
                                  "infer · bs8 · fp32 · eager", "infer · bs32 · fp32 · eager"]
            for row, (mode, batch) in enumerate([("train", 8), ("train", 32), ("infer", 8), ("infer", 32)]):
                step = cases[f"{trace['name']}/{workload}-tiny/{mode}/bs{batch}/fp32/eager/cpu"]["metrics"][
                    "step_time"]
                value = batch / step["median"]
                assert trace["x"][row] == pytest.approx(value, rel=1e-12)
                plus, minus = trace["error_x"]["array"][row], trace["error_x"]["arrayminus"][row]
                if step["ci_low"] is None:  # too few steps for a CI: no error bar rather than a made-up one
                    assert plus is None and minus is None
                    continue
                assert plus == pytest.approx(batch / step["ci_low"] - value, rel=1e-9)
                assert minus == pytest.approx(value - batch / step["ci_high"], rel=1e-9)
                bars += 1
    assert bars >= 8


def test_latency_boxes_hold_the_raw_samples_in_ms(sweep):
    run = json.loads((DATA / "run-sweep.json").read_text())
    samples = next(c for c in run["cases"] if c["id"] == "jax/cnn-tiny/infer/bs8/fp32/eager/cpu")["repeats"][0][
        "timing"]["samples_s"]
    jax = next(t for t in sweep.figures()["latency-0"]["data"] if t["name"] == "jax")
    assert jax["type"] == "box"
    picked = [y for x, y in zip(jax["x"], jax["y"], strict=True) if x == "infer · bs8 · fp32 · eager"]
    assert picked == pytest.approx([s * 1e3 for s in samples], rel=1e-12)


def _row(page: Page, case_id: str) -> str:
    text = page.section("cases")
    start = text.index(case_id)
    return text[start:start + 260]


def test_case_table_numbers(sweep):
    run = json.loads((DATA / "run-sweep.json").read_text())
    case = next(c for c in run["cases"] if c["id"] == "torch/cnn-tiny/infer/bs8/fp32/eager/cpu")
    step = case["metrics"]["step_time"]
    assert f"{8 / step['median']:,.0f}" == GOLDEN_TORCH_CNN_INFER_BS8["throughput"]
    row = _row(sweep, "torch/cnn-tiny/infer/bs8/fp32/eager/cpu")
    expected = " ".join(GOLDEN_TORCH_CNN_INFER_BS8.values())
    assert row.startswith(f"torch/cnn-tiny/infer/bs8/fp32/eager/cpu torch cnn-tiny 8 ok {expected}"), row


def test_table_is_sortable_with_raw_values(sweep):
    tables = [attrs for tag, attrs in sweep.tags if tag == "table" and "sortable" in (attrs.get("class") or "")]
    assert len(tables) == 2  # percentiles and all cases
    sorts = [attrs["data-sort"] for tag, attrs in sweep.tags if tag == "td" and "data-sort" in attrs]
    assert str(8 / json.loads((DATA / "run-sweep.json").read_text())["cases"][4]["metrics"]["step_time"]["median"]) \
        in sorts  # full precision, not the rounded text


def test_noise_warning_marks_high_noise(sweep):
    assert "case(s) are noisy (IQR / median above 10%)" in sweep.visible
    run = json.loads((DATA / "run-sweep.json").read_text())
    noisy = [c["id"] for c in run["cases"] if c["metrics"]["step_time"]["noise"] > 0.10]
    quiet = [c["id"] for c in run["cases"] if c["metrics"]["step_time"]["noise"] <= 0.10]
    assert noisy and quiet
    assert f"{len(noisy)} case(s) are noisy" in sweep.visible
    for case_id in noisy:
        assert "⚠" in _row(sweep, case_id).split(" ok ")[1].split(" MiB ")[0]
    for case_id in quiet:
        assert "⚠" not in _row(sweep, case_id).split(" ok ")[1].split(" MiB ")[0]


def test_energy_not_measured_is_visible_with_the_reason(sweep):
    energy = sweep.section("energy")
    assert "not measured:" in energy and "16 case(s)" in energy
    assert NO_ENERGY in energy  # run-sweep.json was written before tribench measured energy


def test_energy_unavailable_reason_from_a_newer_run_file(problems):
    run = json.loads((DATA / "run-problems.json").read_text())
    reasons = {c["metrics"]["energy"]["reason"] for c in run["cases"] if c["status"] == "ok"}
    assert len(reasons) == 1 and "powercap" in next(iter(reasons))  # this machine has no RAPL
    assert f"not measured: {next(iter(reasons))} — 3 case(s)" in problems.section("energy")


def test_energy_chart_when_measured(tmp_path):
    run = json.loads((DATA / "run-fingerprint-a.json").read_text())
    run["cases"][0]["metrics"]["energy"] = {"value": 0.5, "unit": "J/sample", "method": "counter",
                                            "source": "rapl:package-0", "reason": None}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    page = Page(render(dataset.load([path])))
    energy = page.figures()["energy"]
    assert energy["data"][0]["x"] == [0.5]
    assert energy["layout"]["xaxis"]["title"]["text"] == "energy per sample (J/sample)"
    assert "source: rapl:package-0" in page.visible
    assert "0.5 J/sample" in page.visible
    assert "not measured:" in page.visible  # the other case says why not


def test_device_memory_chart_names_its_source(tmp_path):
    run = json.loads((DATA / "run-fingerprint-a.json").read_text())
    case = run["cases"][0]
    case["spec"]["device"] = "gpu"
    case["metrics"]["memory"].insert(0, {"name": "peak_allocated", "unit": "bytes", "scope": "device",
                                         "source": "torch.cuda.max_memory_allocated", "value": 3 * 2**20,
                                         "reason": None, "status": "measured"})
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    data = dataset.load([path])
    page = Page(render(data))
    device = page.figures()["memory-device"]
    assert device["data"][0]["x"] == [3.0] and device["layout"]["xaxis"]["title"]["text"] == "peak memory (MiB)"
    assert "source: torch.cuda.max_memory_allocated" in page.section("memory")
    host_source = next(r["source"] for r in case["metrics"]["memory"] if r["name"] == "host_peak_rss")
    assert f"source: {host_source}" in page.section("memory")
    assert data.series_title == "backend · device"  # a gpu and a cpu case: the device joins the legend


def test_scaling_section_only_for_sweeps(problems, sweep):
    assert "no run sweeps batch sizes" in problems.visible
    assert not [k for k in problems.chart_keys() if k.startswith("scaling")]
    batches = [t["x"] for t in sweep.figures()["scaling-0"]["data"]]
    assert batches == [[8.0, 32.0]] * 4


def test_header_says_what_when_where(sweep):
    run = json.loads((DATA / "run-sweep.json").read_text())
    text = sweep.visible
    assert "1 run(s), 16 case(s): 16 ok" in text
    assert "backends jax, torch · workloads cnn-tiny, transformer-tiny · modes train, infer · batch sizes 8, 32" in text
    for fact in (run["run_id"], run["started_at"], run["environment"]["machine"]["hostname"],
                 run["environment"]["machine"]["cpu_model"], run["environment"]["fingerprint"],
                 f"torch {run['environment']['frameworks']['torch']['version']}",
                 f"jax {run['environment']['frameworks']['jax']['version']}", "no NVIDIA GPU: NVML unavailable"):
        assert fact in text
    assert "Fingerprints differ" not in text


def test_fingerprint_warning_when_runs_differ():
    page = Page(_report("run-fingerprint-a.json", "run-fingerprint-b.json"))
    a, b = (json.loads((DATA / n).read_text())["environment"]["fingerprint"]
            for n in ("run-fingerprint-a.json", "run-fingerprint-b.json"))
    assert a != b
    text = page.visible
    assert "⚠ Fingerprints differ:" in text and a in text and b in text
    assert 'differs in run 1 run 2 env_vars {} {"OMP_NUM_THREADS": "1"}' in text
    assert [attrs.get("class") for tag, attrs in page.tags if tag == "div" and "notice" in (attrs.get("class") or "")
            ][0] == "notice warning"


def test_interrupted_run_is_flagged(tmp_path):
    run = json.loads((DATA / "run-fingerprint-a.json").read_text())
    run["state"] = "interrupted"
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    assert f"run {run['run_id']} is interrupted: it holds only the cases that finished" in Page(
        render(dataset.load([path]))).visible


def test_failed_timeout_and_skipped_cases_with_reasons(problems):
    text = problems.visible
    assert "1 run(s), 12 case(s): 3 ok, 2 failed, 5 skipped, 2 timeout" in text
    section = problems.section("problems")
    assert section.startswith("Failed, timed-out and skipped cases 2 failed, 5 skipped, 2 timeout.")
    expected = [
        ("fake/cnn-tiny/infer/bs32/fp16/eager/cpu", "failed", "RuntimeError: the fake model exploded"),
        ("torch/cnn-tiny/infer/bs32/fp16/eager/cpu", "skipped", "this CPU has no fp16 instructions"),
        ("fake/rnn-tiny/infer/bs32/fp32/eager/cpu", "timeout", "timed out after 20 s"),
        ("fake/transformer-tiny/infer/bs32/fp32/eager/cpu", "skipped", "the fake cannot do this"),
    ]
    for case_id, status, reason in expected:
        assert f"{case_id} {status} {reason}" in section
    assert "stderr (last lines) Traceback" in section  # the failed worker's stderr tail, folded away
    assert problems.chart_keys()[:3] == ["throughput-0", "throughput-1", "throughput-2"]  # ok cases still charted


def test_empty_run_renders(tmp_path):
    run = json.loads((DATA / "run-fingerprint-a.json").read_text())
    run["cases"] = []
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    page = Page(render(dataset.load([path])))
    assert page.section_ids() == SECTIONS and page.chart_keys() == [] and page.figures() == {}
    assert "1 run(s), 0 case(s)" in page.visible


# ---------------------------------------------------------------- offline / CDN


def test_offline_by_default_with_plotly_inlined(sweep):
    from plotly.offline import get_plotlyjs

    inline = [text for attrs, text in sweep.scripts if not attrs.get("src") and len(text) > 1_000_000]
    assert len(inline) == 1 and inline[0] == get_plotlyjs()
    for _, attrs in sweep.tags:  # nothing to fetch: no external script, style, image or link
        for name in ("src", "href"):
            assert not (attrs.get(name) or "").startswith(("http:", "https:", "//")), attrs


def test_cdn_links_plotly_instead():
    from plotly.offline import get_plotlyjs_version

    html = _report("run-fingerprint-a.json", plotly_js="cdn")
    page = Page(html)
    sources = [attrs.get("src") for attrs, _ in page.scripts if attrs.get("src")]
    assert sources == [f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"]
    assert len(html) < 300_000


def test_default_output_and_atomic_write(tmp_path):
    shutil.copy(DATA / "run-fingerprint-a.json", tmp_path / "a.json")
    assert default_output(tmp_path / "a.json") == tmp_path / "report.html"
    path = write_report([tmp_path / "a.json"], plotly_js="cdn")
    assert path == tmp_path / "report.html" and path.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "report.html"]


# ---------------------------------------------------------------- safety


def test_script_safe_json_cannot_close_the_script_element():
    raw = json.dumps({"name": f"</script>{XSS}\u2028&amp;"})
    safe = script_safe_json(raw)
    assert "<" not in safe and ">" not in safe and "&" not in safe and "\u2028" not in safe
    assert json.loads(safe) == json.loads(raw)


class _RawFigure:
    """A figure whose JSON is NOT escaped by plotly: the report must escape it itself."""

    def __init__(self, text: str) -> None:
        self.text = text

    def to_json(self) -> str:
        return json.dumps({"data": [{"name": self.text}], "layout": {}})


def test_figures_json_escapes_even_unescaped_figure_json():
    text = figures_json([Section("s", "S", "", [Chart("k", _RawFigure(f"</script>{XSS}"))])])
    assert "</script" not in text.lower() and "<" not in text
    assert json.loads(text)["k"]["data"][0]["name"] == f"</script>{XSS}"


def test_malicious_run_file_has_nothing_live(malicious_html):
    page = Page(malicious_html)
    # exactly the report's own four scripts: plotly.js, the figures (JSON), chart drawing, table sorting
    assert [attrs.get("type") for attrs, _ in page.scripts] == ["text/javascript", "application/json", None, None]
    assert malicious_html.count("<script") == 4
    assert not [tag for tag, _ in page.tags if tag in ("img", "iframe", "object", "embed", "svg", "form")]
    assert [attrs["href"] for tag, attrs in page.tags if tag == "a"] == [f"#{s}" for s in SECTIONS]
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, attrs)
            if name in ("href", "src", "action", "formaction", "style"):  # where a URL or CSS would be live
                assert "javascript:" not in (value or "").lower() and "alert" not in (value or ""), (tag, attrs)
    # the hostile strings are shown, as text
    for hostile in (XSS, BREAKOUT, MARKDOWN, "</pre></td></table>"):
        assert hostile in page.visible
    # and inside the figures they are inert: HTML-escaped for plotly's text renderer
    figures = json.dumps(page.figures())
    assert "alert(1)" in figures
    for string in re.findall(r'"((?:[^"\\]|\\.)*alert\(1\)(?:[^"\\]|\\.)*)"', figures):
        assert "<" not in json.loads(f'"{string}"'), string
    figure_script = next(text for attrs, text in page.scripts if attrs.get("id") == "tribench-figures")
    assert "<" not in figure_script


def test_titles_attribute_with_hostile_reason_is_quoted(tmp_path):
    run = json.loads((DATA / "run-fingerprint-a.json").read_text())
    run["cases"][0]["metrics"]["energy"] = {"value": None, "unit": "J/sample", "method": "unavailable",
                                            "reason": BREAKOUT}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    page = Page(render(dataset.load([path]), "cdn"))
    titles = [attrs["title"] for tag, attrs in page.tags if tag == "span" and attrs.get("class") == "na"]
    assert BREAKOUT in titles  # the whole reason stayed inside the attribute
    assert not [tag for tag, _ in page.tags if tag == "img"]


# The all-cases row of torch/cnn-tiny/infer/bs8 in run-sweep.json, as its numbers read: 8 / median step time
# 0.0015019 s = 5,326.6 samples/s; CI 8 / 0.0015215 .. 8 / 0.0014848; p50 1.502 ms; p99 1.919 ms; IQR/median
# 6.75%; first step 7.755 ms; host peak RSS 249,655,296 B = 238.1 MiB; no device reading on the CPU; no energy.
GOLDEN_TORCH_CNN_INFER_BS8 = {
    "throughput": "5,327", "ci": "5,258 – 5,388", "ci_from": "pooled steps (old file)", "tokens": "–",
    "p50": "1.5 ms", "p99": "1.92 ms", "noise": "6.7%",
    "compile": "7.75 ms", "host": "238 MiB", "device": "n/a", "energy": "not measured", "repeats": "1",
    "steps": "120",
}
