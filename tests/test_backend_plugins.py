"""Backend plugins: a distribution registers a backend under the ``tribench.backends`` entry-point group.
The distributions here are real metadata folders (``*.dist-info``) on PYTHONPATH, read by Python's own
``importlib.metadata``; the backend is the test suite's fake, run through real worker processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.helpers import ROOT, tribench
from tribench.harness.results import load_run

QUICK = ("--workload", "cnn", "--size", "tiny", "--mode", "train", "--processes", "1", "--min-time", "0.05",
         "--max-time", "0.2", "--sustained-time", "0", "--no-energy")


def distribution(folder: Path, name: str, points: dict[str, str]) -> dict[str, str]:
    """An installed distribution ``name`` 1.0 registering ``points`` (backend name -> module); its environment."""
    info = folder / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[tribench.backends]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
    env = {key: value for key, value in os.environ.items() if key != "TRIBENCH_EXTRA_BACKENDS"}
    return {**env, "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}", "FAKE_BACKEND_BEHAVIOUR": "", "COLUMNS": "300"}


def list_backends(env: dict[str, str], backend: str) -> tuple[str, str]:
    """(the table row of ``backend`` in ``tribench list backends``, its stderr with whitespace collapsed)."""
    listed = tribench("list", "backends", env=env)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.strip("│ ").startswith(backend + " "))
    return row, " ".join(listed.stderr.split())


def test_an_installed_plugin_is_listed_with_its_origin_and_runs(tmp_path):
    env = distribution(tmp_path / "site", "tribench-fake-plugin", {"fake": "tests.fakes.backend"})
    row, _ = list_backends(env, "fake")
    assert "entry point of tribench-fake-plugin 1.0" in row
    out = tmp_path / "run.json"
    done = tribench("run", "--backend", "fake", *QUICK, "-o", str(out), env=env)
    assert done.returncode == 0, done.stderr
    (case,) = load_run(out)["cases"]
    assert (case["spec"]["backend"], case["status"]) == ("fake", "ok")


def test_a_plugin_cannot_replace_a_built_in_backend(tmp_path):
    env = distribution(tmp_path / "site", "evil-torch", {"torch": "tests.fakes.backend"})
    torch_row, stderr = list_backends(env, "torch")
    assert "built in" in torch_row
    assert ("plugin refused: torch from entry point of evil-torch 1.0 (tests.fakes.backend) is not registered: "
            "'torch' is the built-in backend's name") in stderr


def test_a_plugin_without_a_backend_function_is_one_clear_line(tmp_path):
    env = distribution(tmp_path / "site", "half-plugin", {"half": "tests.fakes"})
    out = tmp_path / "run.json"
    done = tribench("run", "--backend", "half", *QUICK, "-o", str(out), env=env)
    assert done.returncode in (0, 1, 2), done.stderr
    text = json.dumps(load_run(out)["cases"]) if out.exists() else done.stderr
    assert "backend half (entry point of half-plugin 1.0): module tests.fakes has no backend() function" in text
