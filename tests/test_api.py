"""The Python API: the README's example runs as written, the CLI and the API write the same run file for
the same request, compare's verdicts come back as objects and a DataFrame, and mistakes are one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tribench
from tests import runfile_builder as rb
from tests.helpers import FAKE_BACKEND, ROOT, fake_env
from tests.helpers import tribench as tribench_cli
from tribench.core.errors import InvalidChoice, InvalidValue
from tribench.harness.results import load_run

QUICK = {"processes": 2, "min_time": 0.05, "max_time": 0.2, "sustained_time": 0.0, "energy": False,
         "idle_baseline": 0.0, "min_steps": 3}
QUICK_FLAGS = ("--processes", "2", "--min-time", "0.05", "--max-time", "0.2", "--sustained-time", "0",
               "--no-energy", "--idle-baseline", "0", "--min-steps", "3")


def readme_block(heading: str) -> str:
    """The first python code block under ``heading`` in the README."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_api_example_runs_as_written(tmp_path):
    done = subprocess.run([sys.executable, "-c", readme_block("## Python API")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "torch/cnn-tiny/infer/bs32/fp32/native/cpu" in done.stdout and "exit code:" in done.stdout
    for name in ("api-base.json", "api-head.json", "api-report.html"):
        assert (tmp_path / "results" / name).is_file()
    run = load_run(tmp_path / "results" / "api-head.json")
    assert run["command"][0].startswith("tribench.run(backend='torch', workload='cnn', size='tiny'")
    assert [case["status"] for case in run["cases"]] == ["ok"]


def _comparable(run: dict) -> dict:
    """What the same request must give either way: everything but the run's identity, times, the recorded
    command and the measurements."""
    return {
        "kind": run["kind"], "schema_version": run["schema_version"], "state": run["state"], "tags": run["tags"],
        "settings": run["settings"], "environment_keys": sorted(run["environment"]),
        "frameworks": run["environment"].get("frameworks"),
        "cases": [{key: case.get(key) for key in ("id", "spec", "workload", "status", "error", "execution")}
                  | {"processes": len(case["repeats"]), "metric_keys": sorted(case.get("metrics") or {})}
                  for case in run["cases"]],
    }


def test_the_cli_and_the_api_write_the_same_run_file_for_the_same_request(tmp_path):
    env = fake_env()
    cli_out, api_out = tmp_path / "cli.json", tmp_path / "api.json"
    done = tribench_cli("run", "--backend", "fake", "--workload", "cnn,rnn", "--mode", "train", "--batch", "8,16",
                        *QUICK_FLAGS, "--tag", "who=me", "-o", str(cli_out), env=env)
    assert done.returncode == 0, done.stderr
    code = ("import tribench; tribench.run(backend='fake', workload=['cnn', 'rnn'], mode='train', batch=[8, 16], "
            f"tags={{'who': 'me'}}, output={str(api_out)!r}, progress=False, **{QUICK!r})")
    api = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                         cwd=ROOT)
    assert api.returncode == 0, api.stderr
    cli_run, api_run = load_run(cli_out), load_run(api_out)
    assert _comparable(api_run) == _comparable(cli_run)
    assert len(api_run["cases"]) == 4
    assert cli_run["command"][1:3] == ["run", "--backend"]
    assert api_run["command"] == [
        f"tribench.run(backend='fake', workload=['cnn', 'rnn'], mode='train', batch=[8, 16], processes=2, "
        f"min_time=0.05, max_time=0.2, min_steps=3, sustained_time=0.0, output={str(api_out)!r}, "
        f"tags={{'who': 'me'}}, "
        "energy=False, idle_baseline=0.0)"]


def test_run_returns_the_run_with_its_cases_and_a_frame(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIBENCH_EXTRA_BACKENDS", FAKE_BACKEND)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    run = tribench.run(backend="fake", workload="cnn", mode="infer", output=tmp_path / "run.json", progress=False,
                       **QUICK)
    assert run.path == tmp_path / "run.json"
    assert [case["id"] for case in run.cases] == ["fake/cnn-tiny/infer/bs32/fp32/native/cpu"]
    assert run.case("fake/cnn-tiny/infer/bs32/fp32/native/cpu")["status"] == "ok"
    frame = run.frame
    assert list(frame["case_id"]) == ["fake/cnn-tiny/infer/bs32/fp32/native/cpu"]
    assert frame["throughput_samples_per_s"].iloc[0] == pytest.approx(run.cases[0]["metrics"]["throughput"]["value"])
    assert tribench.load([run.path])["case_id"].tolist() == frame["case_id"].tolist()
    with pytest.raises(KeyError, match="no case 'nope'"):
        run.case("nope")


def test_mistakes_raise_the_one_line_the_cli_prints():
    with pytest.raises(InvalidChoice, match="unknown backend 'nope'; valid choices: torch, tensorflow, jax"):
        tribench.run(backend="nope", progress=False)
    with pytest.raises(InvalidValue, match="--max-processes 2 is below --processes 3"):
        tribench.run(backend="torch", max_processes=2, progress=False)
    with pytest.raises(InvalidChoice, match="unknown tribench.run argument 'procs'; valid choices: suite, backend"):
        tribench.run(procs=3)
    with pytest.raises(InvalidValue, match="processes must be a whole number of at least 1, got 0"):
        tribench.run(backend="torch", processes=0, progress=False)
    with pytest.raises(InvalidValue, match="max_time must be a number of seconds, 0 or more, got -1"):
        tribench.run(backend="torch", max_time=-1, progress=False)


def test_the_recorded_call_names_only_what_differs_from_the_defaults():
    request = tribench.RunRequest(backend="torch", output=Path("r.json"), tags=[], python=[])
    assert request.call_text() == ["tribench.run(backend='torch', output='r.json')"]


def test_compare_gives_verdicts_as_objects_a_frame_and_the_cli_s_exit_code(tmp_path):
    rng = np.random.default_rng(4)
    base = rb.write(tmp_path / "base.json", rb.run([rb.simple_case(rng, 0.010), rb.simple_case(rng, 0.010,
                                                                                                 workload="rnn")],
                                                   "base"))
    head = rb.write(tmp_path / "head.json", rb.run([rb.simple_case(rng, 0.013), rb.simple_case(rng, 0.010,
                                                                                                 workload="rnn")],
                                                   "head"))
    verdicts = tribench.compare(base, head, threshold="5%")
    assert [(case.id, case.verdict) for case in verdicts.cases] == [
        ("torch/cnn-tiny/train/bs32/fp32/native/cpu", "regressed"),
        ("torch/rnn-tiny/train/bs32/fp32/native/cpu", "unchanged")]
    assert [case.id for case in verdicts.regressions] == ["torch/cnn-tiny/train/bs32/fp32/native/cpu"]
    frame = verdicts.frame
    throughput = frame[(frame["metric"] == "throughput") & (frame["case_id"].str.contains("cnn"))].iloc[0]
    assert (throughput["verdict"], throughput["change"]) == ("regressed", pytest.approx(1 / 1.3 - 1, abs=0.05))
    done = tribench_cli("compare", str(base), str(head), "--threshold", "5%", "--format", "json")
    assert done.returncode == verdicts.exit_code == 1
    assert json.loads(done.stdout)["summary"] == verdicts.to_dict()["summary"]
    with pytest.raises(InvalidChoice, match="unknown --fail-on category 'sometimes'"):
        tribench.compare(base, head, fail_on=["sometimes"])


def test_report_writes_html_or_returns_markdown(tmp_path):
    path = rb.write(tmp_path / "run.json", rb.run([rb.simple_case(np.random.default_rng(1), 0.01)]))
    html = tribench.report(path, tmp_path / "report.html")
    assert html == tmp_path / "report.html" and "<html" in html.read_text()[:2000].lower()
    text = tribench.report([path], format="markdown")
    assert r"torch/cnn\-tiny/train/bs32/fp32/native/cpu" in text  # markdown-escaped
    with pytest.raises(InvalidChoice, match="unknown report format 'pdf'"):
        tribench.report(path, format="pdf")


def test_importing_tribench_imports_no_framework_and_no_pandas():
    code = ("import sys, tribench; tribench.run; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"
