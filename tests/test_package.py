"""One package, ``tribench``: every module under that name, nothing of the user's can stand in for it,
``python -m tribench`` and ``tribench --version``, and an install that ships every package folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.helpers import ROOT
from tests.test_layering import SOURCE_ROOTS
from tribench.harness.results import load_run
from tribench.version import __version__

QUICK_RUN = ("run", "--backend", "torch", "--workload", "cnn", "--size", "tiny", "--mode", "infer", "--processes",
             "1", "--min-time", "0.05", "--max-time", "0.2", "--sustained-time", "0.05", "--no-energy")


def run_tribench(cwd: Path, *args: str, console_script: bool = False) -> subprocess.CompletedProcess:
    """``python -m tribench ARGS`` in ``cwd`` (tribench found on PYTHONPATH). ``console_script``: started as the
    ``tribench`` script is, which does not put the working directory on ``sys.path`` (``python -P``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, *(["-P"] if console_script else []), "-m", "tribench", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def someone_elses_project(folder: Path) -> Path:
    """A working directory with its own tribench/, harness/, reports/, backends/ and suites/ packages, which
    fail on import (tribench's workers and probes must never search the working directory)."""
    (folder / "tribench" / "harness").mkdir(parents=True)
    (folder / "tribench" / "harness" / "worker.py").write_text("raise SystemExit('the user\'s worker ran')\n")
    (folder / "tribench" / "__init__.py").write_text("raise ImportError('this is the user\'s own tribench')\n")
    for name in ("harness", "reports", "backends", "suites"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(f"raise ImportError('this is the user\\'s own {name}')\n")
        (folder / name / "worker.py").write_text("raise SystemExit('the user\\'s worker ran')\n")
    return folder


def statuses(path: Path) -> list[tuple[str, str]]:
    return [(case["id"], case["status"]) for case in load_run(path)["cases"]]


def test_a_users_own_harness_reports_and_backends_folders_change_nothing(tmp_path):
    shadowed = someone_elses_project(tmp_path / "project")
    plain = tmp_path / "plain"
    plain.mkdir()
    for folder in (shadowed, plain):
        done = run_tribench(folder, *QUICK_RUN, "-o", "run.json", console_script=True)
        assert done.returncode == 0, done.stderr
        report = run_tribench(folder, "report", "run.json", "--format", "markdown", console_script=True)
        assert report.returncode == 0, report.stderr
        assert "torch" in report.stdout and "error" not in report.stderr
    assert statuses(shadowed / "run.json") == statuses(plain / "run.json")
    assert [status for _, status in statuses(plain / "run.json")] == ["ok"]


def test_version_and_python_dash_m():
    done = run_tribench(ROOT, "--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"tribench {__version__}")
    listed = run_tribench(ROOT, "list", "workloads")
    assert listed.returncode == 0 and "transformer" in listed.stdout


def test_the_install_ships_every_package_folder():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    assert {name: (ROOT / folder).resolve() for name, folder in mapping.items()} == {
        name: folder.resolve() for name, folder in SOURCE_ROOTS.items()}
    folders = set()
    for prefix, folder in SOURCE_ROOTS.items():
        for init in folder.rglob("__init__.py"):
            parts = init.parent.relative_to(folder).parts
            folders.add(".".join([prefix, *parts]))
    assert set(config["packages"]) == folders


def test_the_version_is_one_number_everywhere():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "tribench.version.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_no_code_imports_the_old_top_level_names():
    """``import harness``/``from reports import`` would load a user's folder, or fail on an install: every
    import, also those in code strings run by subprocesses, names tribench."""
    old = re.compile(r"(^|[\s\"';(])(?<!tribench )(from|import) (harness|backends|suites|reports)\b(?!/)")
    folders = [*SOURCE_ROOTS.values(), ROOT / "tests", ROOT / "benchmarks"]
    found = [f"{path.relative_to(ROOT)}:{number}" for folder in folders for path in folder.rglob("*.py")
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if old.search(line) and not line.lstrip().startswith("#")]
    assert found == []
