"""The framework-upgrade A/B recipe of examples/github-actions.yml installs: its two pip commands, run as
written in two fresh virtual environments, resolve (pip's own resolver, ``--dry-run``: the candidate torch's
multi-GB CUDA wheels are resolved from the registry's metadata, not downloaded)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

from tests.helpers import ROOT

RECIPE = (ROOT / "examples" / "github-actions.yml").read_text()


def recipe_installs() -> dict[str, list[str]]:
    """environment folder -> the pip arguments the recipe gives it."""
    found = re.findall(r"python -m venv (\.venv-\w+) && \1/bin/pip install (.+)", RECIPE)
    return {folder: shlex.split(arguments) for folder, arguments in found}


def resolve(tmp_path, folder: str, arguments: list[str]) -> dict[str, str]:
    """package -> version pip would install in a fresh venv for ``arguments`` (run in the checkout)."""
    venv = tmp_path / folder
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    report = tmp_path / f"{folder}.json"
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "--dry-run", "--quiet", "--report", str(report),
                           *arguments], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {item["metadata"]["name"].lower(): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]}


def test_the_recipe_names_an_old_and_a_new_environment():
    assert recipe_installs() == {".venv-old": ["-e", ".[torch]", "-c", "constraints.txt"],
                                 ".venv-new": ["-e", ".[torch]", "torch==2.14.1"]}


def test_both_environments_of_the_recipe_install(tmp_path):
    installs = recipe_installs()
    old = resolve(tmp_path, ".venv-old", installs[".venv-old"])
    new = resolve(tmp_path, ".venv-new", installs[".venv-new"])
    assert old["torch"].split("+")[0] == "2.13.0"
    assert new["torch"] == "2.14.1"
    assert old["tribench"] == new["tribench"]
