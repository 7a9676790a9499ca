"""tribench history: E-divisive change points, commit-time ordering, the CLI and the HTML view."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from tests import runfile_builder as rb
from tests.helpers import tribench
from tribench.cli import app
from tribench.reports.regression.changepoint import e_divisive, segment_scores
from tribench.reports.regression.history import history, load_runs, matches
from tribench.reports.regression.history_html import render


def _noisy(seed: int, n: int, sigma: float = 0.03) -> np.ndarray:
    return 0.02 * np.exp(np.random.default_rng(seed).normal(0.0, sigma, n))


def test_a_planted_change_point_is_found_at_its_index():
    series = _noisy(0, 40)
    series[20:] *= 1.10
    points = e_divisive(series)
    assert [point.index for point in points] == [20]
    assert points[0].p_value == pytest.approx(1 / 200)  # no permutation came close: the smallest p


def test_two_planted_change_points_are_found_at_their_indices():
    series = _noisy(1, 60)
    series[20:] *= 1.10
    series[45:] /= 1.20
    assert [point.index for point in e_divisive(series)] == [20, 45]


def test_planted_change_points_over_many_seeds():
    exact = clean = 0
    for seed in range(20):
        series = _noisy(100 + seed, 60)
        series[20:] *= 1.15
        series[40:] /= 1.15
        found = [point.index for point in e_divisive(series, seed=seed)]
        for planted in (20, 40):  # each planted step is found, at its index or (noise) one beside it
            assert min(abs(index - planted) for index in found) <= 1, (seed, found)
            exact += planted in found
        clean += len(found) == 2
    assert exact >= 36 and clean >= 18  # of 40 planted points / 20 series


@pytest.mark.parametrize("where", [5, 15, 30, 39])
def test_a_single_outlier_is_not_a_change_point(where):
    series = _noisy(2, 40)
    series[where] *= 1.5
    assert e_divisive(series) == []


def test_no_change_points_in_flat_constant_or_short_series():
    assert e_divisive(_noisy(3, 40)) == []
    assert e_divisive([1.0] * 30) == []
    assert e_divisive([1.0, 2.0, 3.0, 4.0, 5.0]) == []  # too short for two segments of 3


def test_segment_scores_match_the_e_statistic_written_out():
    values = np.array([1.0, 1.2, 0.9, 3.0, 3.1, 2.8, 3.3])
    distances = np.abs(values[:, None] - values[None, :])
    prefix = np.zeros((8, 8))
    prefix[1:, 1:] = distances.cumsum(0).cumsum(1)
    taus, scores = segment_scores(prefix, 0, 7, 2)
    x, y = values[:3], values[3:]
    between = np.abs(x[:, None] - y[None, :]).mean()
    within_x = np.abs(x[:, None] - x[None, :]).sum() / (3 * 2)
    within_y = np.abs(y[:, None] - y[None, :]).sum() / (4 * 3)
    assert list(taus) == [2, 3, 4, 5]
    assert scores[1] == pytest.approx(3 * 4 / 7 * (2 * between - within_x - within_y))
    assert scores.argmax() == 1


# ---- histories of run files ---------------------------------------------------------------------

START = datetime(2026, 1, 1, tzinfo=UTC)


def write_history(folder, runs=16, step_at=8, factor=1.10, crafted_id=None, torch_upgrade_at=None):
    """``runs`` run files whose commit times run forwards while their file names and start times run backwards."""
    rng = np.random.default_rng(42)
    for position in range(runs):
        median = 0.02 * (factor if position >= step_at else 1.0)
        cases = [rb.simple_case(rng, median, n=30), rb.simple_case(rng, 0.01, n=30, mode="infer")]
        if crafted_id:
            cases[1]["id"] = crafted_id
        frameworks = {"torch": "2.14"} if torch_upgrade_at is not None and position >= torch_upgrade_at else {}
        commit_time = (START + timedelta(hours=position)).isoformat()
        env = rb.environment(commit=f"{position:02d}" + "c" * 38, commit_time=commit_time,
                             **({"frameworks": frameworks} if frameworks else {}))
        started = (START + timedelta(days=30) - timedelta(hours=position)).isoformat()
        rb.write(folder / f"run-{runs - position:02d}.json", rb.run(cases, f"run-{position:02d}", env, started))


def test_runs_are_ordered_by_commit_time_then_run_start(tmp_path):
    write_history(tmp_path, runs=4)
    late = rb.run([], "no-commit-time", rb.environment(commit_time=None),
                  started_at=(START + timedelta(hours=2, minutes=30)).isoformat())
    rb.write(tmp_path / "zz.json", late)
    rb.write(tmp_path / "notes.json", {"something": "else"})
    runs, notes = load_runs([tmp_path, tmp_path / "zz.json"])  # named twice: loaded once
    assert [info.run_id for info, _ in runs] == ["run-00", "run-01", "run-02", "no-commit-time", "run-03"]
    assert [info.when_source for info, _ in runs][2:4] == ["commit time", "run start"]
    assert notes == [f"skipped {tmp_path / 'notes.json'}: not a tribench run file"]


def test_history_finds_the_step_with_its_run_commit_and_magnitude(tmp_path):
    write_history(tmp_path, torch_upgrade_at=8)
    series, runs, _ = history([tmp_path], ["throughput", "latency_p50"], pattern="cnn-tiny/train")
    assert [(entry.case_id, entry.metric) for entry in series] == [
        ("torch/cnn-tiny/train/bs32/fp32/native/cpu", "throughput"),
        ("torch/cnn-tiny/train/bs32/fp32/native/cpu", "latency_p50")]
    throughput, p50 = series
    assert len(p50.values) == 16 and len(runs) == 16
    [point] = p50.change_points
    assert (point.index, point.run_id, point.commit, point.direction) == (8, "run-08", "08" + "c" * 38,
                                                                         "regression")
    assert point.magnitude == pytest.approx(0.10, abs=0.02)
    assert point.p_value <= 0.05
    assert point.environment_change == ["frameworks.torch: '2.13.0+cpu' -> '2.14'"]
    assert [(p.index, p.direction) for p in throughput.change_points] == [(8, "regression")]
    assert throughput.change_points[0].magnitude == pytest.approx(1 / 1.10 - 1, abs=0.02)


def test_case_patterns():
    assert matches("torch/cnn-tiny/train/bs32", "cnn-tiny")
    assert matches("torch/cnn-tiny/train/bs32", "torch/*/train/*")
    assert not matches("torch/cnn-tiny/infer/bs32", "torch/*/train/*")
    assert matches("anything", None)


def test_cli_history_json_and_html(tmp_path):
    write_history(tmp_path / "runs", crafted_id="torch/<script>alert(1)</script>")
    page = tmp_path / "history.html"
    result = CliRunner().invoke(app, ["history", str(tmp_path / "runs"), "--metric", "p50", "--format", "json",
                                      "--html", str(page), "--permutations", "99"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "tribench-history" and len(data["runs"]) == 16
    by_case = {entry["case_id"]: entry for entry in data["series"]}
    assert [p["index"] for p in by_case["torch/cnn-tiny/train/bs32/fp32/native/cpu"]["change_points"]] == [8]
    assert by_case["torch/<script>alert(1)</script>"]["change_points"] == []
    text = page.read_text()
    assert text.count("Plotly.newPlot") == 2 and "plotly.js" in text.lower()
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "regression at run #8 (run-08, commit 08cccccc): +" in text


def test_cli_history_table_and_markdown(tmp_path):
    write_history(tmp_path)
    table = CliRunner().invoke(app, ["history", str(tmp_path), "--case", "train", "--metric", "p50",
                                     "--permutations", "99"])
    assert table.exit_code == 0, table.output
    assert "regression at run #8 (run-08, commit 08cccccc)" in table.output
    markdown = CliRunner().invoke(app, ["history", str(tmp_path), "--case", "infer", "--metric", "p50",
                                        "--format", "markdown", "--permutations", "99"])
    assert "| torch/cnn\\-tiny/infer/bs32/fp32/native/cpu | latency_p50 | 16 |" not in markdown.output
    assert "| torch/cnn-tiny/infer/bs32/fp32/native/cpu | latency_p50 | 16 |" in markdown.output
    assert markdown.output.rstrip().endswith("| none |")


def test_render_without_change_points(tmp_path):
    write_history(tmp_path, runs=6, step_at=99)
    series, runs, notes = history([tmp_path], ["throughput"])
    assert all(entry.change_points == [] for entry in series)
    assert "no change point" in render(series, runs, notes)


@pytest.mark.parametrize("problem", ["missing path", "no match"])
def test_history_bad_inputs_get_one_line_and_exit_2(tmp_path, problem):
    write_history(tmp_path, runs=3)
    args = [str(tmp_path / "nowhere")] if problem == "missing path" else [str(tmp_path), "--case", "resnet"]
    done = tribench("history", *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert ("no such run file or folder" if problem == "missing path" else "no successful case matches 'resnet'") \
        in lines[0]


def test_a_change_of_throughput_definition_is_named_at_the_change_point(tmp_path):
    """Run files from before the sustained phase hold batch / median synced step; a level change where the
    definition changed is said to be (at least partly) the definition (harness.sustained)."""
    write_history(tmp_path)  # a 10% slowdown planted from the 9th run on
    for path in tmp_path.glob("run-*.json"):
        run = json.loads(path.read_text())
        if int(run["run_id"].split("-")[1]) >= 8:
            for case in run["cases"]:
                case["metrics"]["throughput"]["basis"] = "sustained"
            path.write_text(json.dumps(run))
    series, _, _ = history([tmp_path], ["throughput", "latency_p50"], pattern="cnn-tiny/train")
    throughput, p50 = series
    assert throughput.bases == ["synced-steps"] * 8 + ["sustained"] * 8
    assert throughput.change_points[0].environment_change == ["throughput basis: synced-steps -> sustained"]
    assert p50.change_points[0].environment_change == []  # latency kept its definition
