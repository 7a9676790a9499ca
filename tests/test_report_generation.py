"""The reports know the generate mode (issue 16): the HTML "Generation" section, markdown, terminal and run summary.

tests/data/run-generate.json was written by a real run (tests/data/regenerate.py, ``generation``): the tiny
decoder in generate mode in PyTorch, JAX and TensorFlow at batch 1 and 4, prompt 16 and 8 new tokens, two
processes each, with measured peaks. Expected numbers are read from that file's ``metrics.generation`` and
its raw per-request records; variants with missing or hostile values are built from it in code.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
from rich.console import Console

from tests.test_report_html import BREAKOUT, SECTIONS, XSS, Page
from tests.test_report_markdown import _to_html
from tribench.harness import traffic
from tribench.harness.efficiency import roofline_point
from tribench.reports import dataset
from tribench.reports.generation_figures import GENERATION_COLUMNS, generation_cells, seconds_with_ci
from tribench.reports.html.generation_section import SECTION_ID
from tribench.reports.html.report import render
from tribench.reports.text import markdown, terminal
from tribench.reports.text.table import generation_summary
from tribench.suites import workloads
from tribench.suites.workloads import kv_cache_bytes

DATA = Path(__file__).resolve().parent / "data"
RUN = DATA / "run-generate.json"
BACKENDS = ("jax", "tensorflow", "torch")


def _stored() -> dict:
    return json.loads(RUN.read_text())


def _write(run: dict, tmp_path: Path, name: str = "run.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(run))
    return path


def _page(*paths: Path) -> Page:
    return Page(render(dataset.load(list(paths)), generated_at="2026-01-01T00:00:00+00:00"))


@pytest.fixture(scope="module")
def page() -> Page:
    return _page(RUN)


def _case(run: dict, backend: str, batch: int) -> dict:
    return next(c for c in run["cases"] if c["spec"]["backend"] == backend and c["spec"]["batch_size"] == batch)


def _pooled(case: dict) -> tuple[list[float], list[float]]:
    ttft = [t for r in case["repeats"] for t in r["generation"]["ttft_s"]]
    tpot = [s for r in case["repeats"] for request in r["generation"]["tpot_s"] for s in request]
    return ttft, tpot


def test_the_fixture_is_what_the_tests_assume():
    run = _stored()
    assert {(c["spec"]["backend"], c["spec"]["batch_size"]) for c in run["cases"]} == {
        (b, n) for b in BACKENDS for n in (1, 4)}
    assert all(c["status"] == "ok" and c["spec"]["prompt"] == 16 and c["spec"]["new_tokens"] == 8
               for c in run["cases"])
    assert all(c["metrics"]["generation"]["decode_mfu"]["value"] for c in run["cases"])  # peaks were measured


def test_the_frame_holds_every_generation_figure_of_a_generate_case_and_nan_elsewhere():
    run = _stored()
    frame = dataset.load([RUN, DATA / "run-sweep.json"]).frame
    for backend in BACKENDS:
        for batch in (1, 4):
            case = _case(run, backend, batch)
            generation = case["metrics"]["generation"]
            row = frame[frame["case_id"] == case["id"]].iloc[0]
            for name in ("ttft", "tpot"):
                assert row[f"{name}_s"] == generation[name]["value"]
                assert (row[f"{name}_ci_low_s"], row[f"{name}_ci_high_s"]) == (
                    generation[name]["ci_low"], generation[name]["ci_high"])
                assert [row[f"{name}_p{q}_s"] for q in (50, 90, 99)] == [generation[name][f"p{q}"]
                                                                         for q in (50, 90, 99)]
            assert row["decode_tokens_per_s"] == generation["decode_tokens_per_s"]["value"]
            assert row["prefill_tokens_per_s"] == generation["prefill_tokens_per_s"]["value"]
            assert row["kv_cache_bytes"] == kv_cache_bytes(workloads.get("decoder").architecture("tiny"), batch,
                                                           24, 4)
            assert row["decode_mfu"] == generation["decode_mfu"]["value"]
            assert (row["ttft_samples_s"], row["tpot_samples_s"]) == _pooled(case)
            assert row["variant"] == f"generate · bs{batch} · p16n8 · fp32 · native"
    others = frame[frame["mode"] != "generate"]
    assert len(others) and others[["ttft_s", "tpot_s", "decode_tokens_per_s", "kv_cache_bytes"]].isna().all().all()
    assert all(samples == [] for samples in others["ttft_samples_s"])


def test_the_generation_section_comes_after_throughput_only_when_some_case_generates(page):
    assert page.section_ids() == [*SECTIONS[:2], SECTION_ID, *SECTIONS[2:]]
    assert SECTION_ID not in _page(DATA / "run-sweep.json").section_ids()


def test_tokens_per_second_against_batch_with_the_ci_carried_from_tpot_and_ttft(page):
    run = _stored()
    figures = page.figures()
    assert [key for key in page.chart_keys() if key.startswith(SECTION_ID)] == [
        f"{SECTION_ID}-tokens-0", f"{SECTION_ID}-distributions-1"]
    figure = figures[f"{SECTION_ID}-tokens-0"]
    assert "Tokens per second against batch size: decoder-tiny · prompt 16 → 8 new tokens · fp32 · native" in \
        figure["layout"]["title"]["text"]
    assert [axis["title"]["text"] for axis in (figure["layout"]["yaxis"], figure["layout"]["yaxis2"])] == [
        "decode tokens/s (total)", "prefill tokens/s"]
    traces = {(trace["name"], trace["xaxis"]): trace for trace in figure["data"]}
    assert set(traces) == {(b, axis) for b in BACKENDS for axis in ("x", "x2")}
    for backend in BACKENDS:
        cases = [_case(run, backend, batch)["metrics"]["generation"] for batch in (1, 4)]
        for axis, rate, timed in (("x", "decode_tokens_per_s", "tpot"), ("x2", "prefill_tokens_per_s", "ttft")):
            trace = traces[(backend, axis)]
            assert trace["x"] == [1.0, 4.0]
            assert trace["y"] == [g[rate]["value"] for g in cases]
            for value, plus, minus, g in zip(trace["y"], trace["error_y"]["array"], trace["error_y"]["arrayminus"],
                                             cases, strict=True):   # the rate's CI is the timing's, inverted
                t = g[timed]
                assert value + plus == pytest.approx(value * t["value"] / t["ci_low"])
                assert value - minus == pytest.approx(value * t["value"] / t["ci_high"])


def test_ttft_and_tpot_distributions_hold_every_pooled_record_in_ms(page):
    run = _stored()
    figure = page.figures()[f"{SECTION_ID}-distributions-1"]
    boxes = {(trace["name"], trace["xaxis"]): trace for trace in figure["data"]}
    for backend in BACKENDS:
        expected_ttft, expected_tpot, labels = [], [], []
        for batch in (1, 4):
            ttft, tpot = _pooled(_case(run, backend, batch))
            expected_ttft += [t * 1e3 for t in ttft]
            expected_tpot += [t * 1e3 for t in tpot]
            labels += [f"bs{batch}"] * len(ttft)
        assert boxes[(backend, "x")]["y"] == pytest.approx(expected_ttft)
        assert boxes[(backend, "x")]["x"] == labels
        assert boxes[(backend, "x2")]["y"] == pytest.approx(expected_tpot)
    assert figure["layout"]["boxmode"] == "group"


def test_the_table_shows_each_case_s_figures_with_sortable_raw_values(page):
    run = _stored()
    text = page.section(SECTION_ID)
    for case in run["cases"]:
        cells = generation_cells(case["id"], case["metrics"]["generation"])
        row = " ".join([case["id"], case["spec"]["backend"], *(cells[c] for c in GENERATION_COLUMNS[1:])])
        assert row in text
    sorts = [attrs["data-sort"] for tag, attrs in page.tags if tag == "td" and "data-sort" in attrs]
    for case in run["cases"]:
        assert repr(case["metrics"]["generation"]["decode_tokens_per_s"]["value"]) in sorts
    assert "Definitions, from the run file:" in text
    assert case["metrics"]["generation"]["tpot"]["definition"] in text


def test_missing_peaks_say_why_and_a_failed_case_shows_its_reason(tmp_path):
    run = _stored()
    for case in run["cases"]:
        for name in ("prefill_mfu", "decode_mfu", "decode_bandwidth_fraction"):
            case["metrics"]["generation"][name] = {"value": None, "unit": "fraction", "reason": "no measured peaks"}
    failed = _case(run, "torch", 4)
    failed.update(status="failed", error="RuntimeError: out of memory\nsecond line", metrics=None)
    page = _page(_write(run, tmp_path))
    text = page.section(SECTION_ID)
    assert "MFU or bandwidth fraction n/a: no measured peaks" in text
    assert f"{failed['id']} torch failed RuntimeError: out of memory" in text and "second line" not in text
    assert "n/a / n/a" in text  # the MFU cell: never 0
    tokens = page.figures()[f"{SECTION_ID}-tokens-0"]
    assert [t["x"] for t in tokens["data"] if t["name"] == "torch"] == [[1.0], [1.0]]  # the failed point is left out

    for case in run["cases"]:
        case.update(status="failed", error="boom", metrics=None)
    none_ok = _page(_write(run, tmp_path, "failed.json"))
    assert "no case of this point finished, so there is nothing to chart" in none_ok.section(SECTION_ID)
    assert not [k for k in none_ok.chart_keys() if k.startswith(SECTION_ID)]


def test_hostile_strings_stay_text_in_the_section(tmp_path):
    run = _stored()
    for case in run["cases"]:
        case["id"] = f"{case['id']}/{XSS}"
        case["spec"]["backend"] = f"{case['spec']['backend']}{BREAKOUT}"
        case["metrics"]["generation"]["ttft"]["definition"] = XSS
    html_text = render(dataset.load([_write(run, tmp_path)]))
    page = Page(html_text)
    assert XSS not in html_text.split('id="tribench-figures"')[0] and "<img" not in html_text
    assert XSS in page.section(SECTION_ID)  # shown, as text


def test_markdown_has_a_generation_table_with_its_legend():
    run = _stored()
    text = markdown.render(dataset.load([RUN]))
    assert "### Generation" in text
    rendered = _to_html(text)
    for case in run["cases"]:
        cells = generation_cells(case["id"], case["metrics"]["generation"])
        assert "<td>" + "</td>\n<td>".join(cells[c].replace(">", "&gt;") for c in GENERATION_COLUMNS) in rendered
    assert "TTFT = prefill to the first token on the host" in rendered
    assert "### Generation" not in markdown.render(dataset.load([DATA / "run-sweep.json"]))


def _printed(renderable) -> str:
    console = Console(record=True, width=400, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def _table_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("│").split("│")] for line in text.splitlines()
            if line.strip().startswith("│")]


def test_terminal_report_and_run_summary_show_the_generation_figures():
    run = _stored()
    report = _printed(terminal.render(dataset.load([RUN])))
    summary = _printed(generation_summary(run))
    for text in (report, summary):
        rows = _table_rows(text)
        for case in run["cases"]:
            cells = generation_cells(case["id"], case["metrics"]["generation"])
            assert [cells[c] for c in GENERATION_COLUMNS] in rows
    assert "generation (ok generate cases)" in report
    assert generation_summary(json.loads((DATA / "run-sweep.json").read_text())) is None


def test_seconds_with_ci_keeps_one_unit():
    assert seconds_with_ci(0.000881, 0.000744, 0.00104) == "0.881 ms (0.744 – 1.04)"
    assert seconds_with_ci(0.0005, 0.0004, 0.0006) == "500 µs (400 – 600)"
    assert seconds_with_ci(0.002, None, None) == "2 ms (no CI)"
    assert seconds_with_ci(None, 0.1, 0.2) == "n/a"


def test_a_generate_request_has_its_own_traffic_and_roofline_point():
    run = _stored()
    spec = workloads.get("decoder").architecture("tiny")
    params = workloads.param_count(spec)
    per_position = 2 * spec.layers * 4 * spec.kv_dim * 4          # keys and values, every layer, batch 4, fp32
    step = traffic.decode_bytes_per_step(spec, 4, 16, 8, "fp32")
    assert step == params * 4 + per_position * (16 + 8 / 2)       # decode steps attend over 17 .. 23 positions
    prompt_spec = dataclasses.replace(spec, seq_len=16)
    head_on_last_only = traffic.activation_elements_per_sample(prompt_spec) - 15 * spec.vocab
    prefill = head_on_last_only * 4 * 4 * 2 + params * 4
    assert traffic.request_bytes(spec, 4, 16, 8, "fp32") == prefill + 7 * step
    assert traffic.bytes_per_step("decoder", "tiny", "generate", 4, "fp32", 16, 8) == prefill + 7 * step
    case = _case(run, "jax", 4)
    assert case["metrics"]["generation"]["decode_bytes_per_step"]["value"] == step
    point = roofline_point(case, run)
    assert point["bytes_per_step"] == prefill + 7 * step
    assert point["arithmetic_intensity"] == case["workload"]["flops_per_step"]["value"] / (prefill + 7 * step)
    assert point["bound"] in ("memory", "compute")


def test_each_cell_says_what_its_heading_says():
    """Literal cells of a made-up case: a swapped or mislabelled column fails here."""
    figure = {"value": 0.002, "ci_low": 0.0015, "ci_high": 0.0025, "p50": 0.0019, "p90": 0.0021, "p99": 0.0031}
    generation = {"prompt_tokens": 128, "new_tokens": 64,
                  "ttft": {**figure, "value": 0.05, "ci_low": 0.04, "ci_high": 0.06},
                  "tpot": figure, "request_latency": {"value": 0.18},
                  "decode_tokens_per_s": {"value": 8000.0}, "decode_tokens_per_s_per_sequence": {"value": 500.0},
                  "prefill_tokens_per_s": {"value": 40960.0}, "kv_cache": {"value": 3 * 2**20},
                  "prefill_mfu": {"value": 0.25}, "decode_mfu": {"value": None, "reason": "no measured peaks"},
                  "decode_bandwidth": {"value": 2.5e9}, "decode_bandwidth_fraction": {"value": 0.125}}
    assert generation_cells("c", generation) == {
        "case": "c", "prompt → new": "128 → 64", "TTFT (95% CI)": "50 ms (40 – 60)",
        "TPOT (95% CI)": "2 ms (1.5 – 2.5)", "TPOT p50 / p90 / p99": "1.9 / 2.1 / 3.1 ms",
        "decode tokens/s (total)": "8,000", "decode tokens/s per sequence": "500.0", "prefill tokens/s": "40,960",
        "request": "180 ms", "KV cache": "3 MiB", "MFU prefill / decode": "25.0% / n/a",
        "decode bandwidth": "2.5 GB/s (12.5% of peak)"}
    assert seconds_with_ci(0.0009996, 0.0009, 0.0009998) == "1 ms (0.9 – 1)"  # never "1e+03 µs"


def test_same_job_ab_interpreters_stay_separate_lines_and_boxes(tmp_path):
    run = _stored()
    twin = copy.deepcopy(run["cases"])
    for label, cases in (("A", run["cases"]), ("B", twin)):
        for case in cases:
            case["spec"]["env"] = label
            case["id"] = f"{case['id']}@{label}"
    run["cases"] += twin
    figures = _page(_write(run, tmp_path)).figures()
    tokens = figures[f"{SECTION_ID}-tokens-0"]["data"]
    assert sorted({t["name"] for t in tokens}) == sorted(f"{b} · {e}" for b in BACKENDS for e in "AB")
    assert all(t["x"] == [1.0, 4.0] for t in tokens)
    boxes = figures[f"{SECTION_ID}-distributions-1"]["data"]
    ttft_torch_a = next(b for b in boxes if b["name"] == "torch · A" and b["xaxis"] == "x")
    assert len(ttft_torch_a["y"]) == sum(len(_pooled(_case(_stored(), "torch", n))[0]) for n in (1, 4))
