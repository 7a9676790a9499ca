"""``tribench report`` and the report hooks of ``tribench run``, through the real CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, fake_env, tribench

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def run_copy(tmp_path) -> Path:
    path = tmp_path / "runs" / "run-a.json"
    path.parent.mkdir()
    shutil.copy(DATA / "run-fingerprint-a.json", path)
    return path


def test_html_next_to_the_first_run_file(run_copy):
    done = tribench("report", str(run_copy), "--cdn")
    assert done.returncode == 0, done.stderr
    report = run_copy.parent / "report.html"
    assert done.stdout.strip() == f"report: {report}"
    assert report.read_text().startswith("<!DOCTYPE html>")


def test_html_to_a_chosen_file_offline(run_copy, tmp_path):
    target = tmp_path / "out" / "r.html"
    done = tribench("report", str(run_copy), str(DATA / "run-fingerprint-b.json"), "-o", str(target))
    assert done.returncode == 0, done.stderr
    html = target.read_text()
    assert "<script src=" not in html and len(html) > 4_000_000  # plotly.js inlined
    assert "Fingerprints differ" in html


def test_markdown_to_stdout_and_the_job_summary(run_copy, tmp_path):
    summary = tmp_path / "summary.md"
    env = fake_env(GITHUB_STEP_SUMMARY=str(summary))
    done = tribench("report", str(run_copy), "--format", "markdown", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("## tribench report\n")
    assert summary.read_text() == done.stdout
    assert not (run_copy.parent / "report.html").exists()


def test_table_format(run_copy):
    done = tribench("report", str(run_copy), "--format", "table")
    assert done.returncode == 0, done.stderr
    assert "torch/cnn-tiny/train/bs32/fp32/eager/cpu" in done.stdout and "results (ok cases)" in done.stdout


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such run file"),
    ("TRUNCATED", "not valid JSON"),
    ('{"hello": "world"}', 'not a tribench run file (expected "kind": "tribench-run")'),
    ('{"kind": "tribench-run", "schema_version": 99, "cases": []}', "schema version 99 is newer"),
])
def test_bad_run_files_get_one_line_and_exit_2(tmp_path, content, message):
    path = tmp_path / "bad.json"
    if content == "TRUNCATED":
        path.write_text((DATA / "run-fingerprint-a.json").read_text()[:500])
    elif content is not None:
        path.write_text(content)
    done = tribench("report", str(DATA / "run-fingerprint-a.json"), str(path), "-o", str(tmp_path / "r.html"))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "r.html").exists()


def test_bad_format_and_output(run_copy, tmp_path):
    done = tribench("report", str(run_copy), "--format", "pdf")
    assert done.returncode == 2 and "valid choices: html, markdown, table" in done.stderr
    done = tribench("report", str(run_copy), "--format", "table", "-o", str(tmp_path / "t.txt"))
    assert done.returncode == 2 and "--output is not used with --format table" in done.stderr


def _fake_run(tmp_path: Path, *extra: str):
    output = tmp_path / "fake run.json"  # a space: the printed command must quote it
    done = tribench("run", "--backend", "fake", "--workload", "cnn", "--mode", "infer", "--min-time", "0.05",
                    "--max-time", "0.1", "--output", str(output), *extra, env=fake_env())
    assert done.returncode == 0, done.stderr
    return output, done.stdout.strip().splitlines()


def test_run_prints_the_report_command(tmp_path):
    output, lines = _fake_run(tmp_path)
    html = tmp_path / "fake run.html"
    assert lines[-2] == f"HTML report: tribench report '{output}' -o '{html}'"
    assert lines[-1] == f"run file: {output}"
    assert not html.exists()


def test_run_with_report_writes_it_next_to_the_run_file(tmp_path):
    output, lines = _fake_run(tmp_path, "--report")
    html = tmp_path / "fake run.html"
    assert lines[-2] == f"report: {html}" and lines[-1] == f"run file: {output}"
    case_id = json.loads(output.read_text())["cases"][0]["id"]
    assert case_id in html.read_text()


def test_building_reports_imports_no_framework(tmp_path):
    code = ("import sys\nfrom tribench.reports import dataset\nfrom tribench.reports.html import report as html\n"
            "from tribench.reports.text import markdown, terminal\n"
            f"data = dataset.load([{str(DATA / 'run-sweep.json')!r}, {str(DATA / 'run-problems.json')!r}])\n"
            "html.render(data); markdown.render(data); terminal.render(data)\n"
            "print(','.join(m for m in ('torch', 'tensorflow', 'jax', 'jaxlib', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
