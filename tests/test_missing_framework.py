"""A machine without a framework: listed as missing, its cases skipped, the others still run."""

import pytest

from tests.helpers import ROOT, tribench
from tribench.harness.results import load_run

HIDE_FOLDER = ROOT / "tests" / "hide_frameworks"


@pytest.fixture
def without_tensorflow():
    import os

    return {**os.environ, "PYTHONPATH": f"{HIDE_FOLDER}{os.pathsep}{ROOT}", "TRIBENCH_TEST_HIDE": "tensorflow"}


def test_list_backends_shows_it_missing_with_the_install_command(without_tensorflow):
    done = tribench("list", "backends", env={**without_tensorflow, "COLUMNS": "250"})
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("│ tensorflow"))
    assert "missing" in row
    assert "not installed (missing: tensorflow); install with: pip install -e '.[tensorflow]'" in row
    assert next(line for line in done.stdout.splitlines() if line.startswith("│ torch")).count("yes") == 1


def test_its_cases_are_skipped_and_the_others_run(without_tensorflow, tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", "--backend", "torch,tensorflow", "--workload", "cnn", "--mode", "infer",
                    "--min-time", "0.05", "--max-time", "0.2", "--output", str(out), env=without_tensorflow)
    assert done.returncode == 0, done.stderr
    cases = {case["spec"]["backend"]: case for case in load_run(out)["cases"]}
    assert cases["torch"]["status"] == "ok"
    assert cases["tensorflow"]["status"] == "skipped"
    assert cases["tensorflow"]["error"] == (
        "tensorflow not installed (missing: tensorflow); install with: pip install -e '.[tensorflow]'")


def test_asking_only_for_it_is_a_usage_error(without_tensorflow, tmp_path):
    done = tribench("run", "--backend", "tensorflow", "--output", str(tmp_path / "r.json"), env=without_tensorflow)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: no requested backend is installed (tensorflow); install with "
                                   "tensorflow: pip install -e '.[tensorflow]'")
