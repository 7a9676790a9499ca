"""Installs that work everywhere: ranges in the extras, the tested versions in constraints.txt (inside
those ranges, and what this environment really has), make and CI installing with them, and the
framework-upgrade A/B recipe asking only for versions the extras allow."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.version import Version

from tests.helpers import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]


def constraints() -> list[Requirement]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def extra_requirements() -> dict[str, list[Requirement]]:
    """Package name -> every requirement on it in the project's dependencies and framework extras."""
    found: dict[str, list[Requirement]] = {}
    for text in [*PYPROJECT["project"]["dependencies"], *(r for name, rs in EXTRAS.items() for r in rs
                                                           if not name.startswith("all"))]:
        requirement = Requirement(text)
        found.setdefault(requirement.name.lower(), []).append(requirement)
    return found


def test_the_extras_give_ranges_not_pins():
    for name in ("torch", "tensorflow", "jax"):
        for text in EXTRAS[name]:
            assert not any(spec.operator in ("==", "===") for spec in Requirement(text).specifier), text


def test_every_tested_version_is_inside_the_ranges_the_extras_allow():
    ranges = extra_requirements()
    pinned = constraints()
    assert {r.name for r in pinned} >= {"torch", "tensorflow-cpu", "jax", "jaxlib", "flax", "optax", "keras"}
    for pin in pinned:
        (version,) = [Version(spec.version) for spec in pin.specifier]
        for requirement in ranges.get(pin.name.lower(), []):
            assert requirement.specifier.contains(version, prereleases=True), (pin, requirement)


def test_this_environment_runs_the_tested_versions():
    for pin in constraints():
        if pin.marker is not None and not pin.marker.evaluate():
            continue
        try:
            installed = Version(metadata.version(pin.name))
        except metadata.PackageNotFoundError:
            continue  # a framework left out of this environment: its cases are skipped, not mis-versioned
        (version,) = [Version(spec.version) for spec in pin.specifier]
        assert Version(installed.base_version) == version, (pin.name, str(installed))


def test_make_and_ci_install_with_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -e '.[all,dev]' -c constraints.txt" in makefile
    assert re.search(r"^\$\(STAMP\): pyproject.toml constraints.txt$", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_upgrade_recipe_asks_only_for_versions_the_extras_allow():
    recipe = (ROOT / "examples" / "github-actions.yml").read_text()
    asked = re.findall(r"pip install -e '\.\[torch\]' '([^']+)'", recipe)
    assert asked == ["torch==2.14.1"]
    (torch_range,) = [Requirement(text) for text in EXTRAS["torch"]]
    for text in asked:
        (version,) = [Version(spec.version) for spec in Requirement(text).specifier]
        assert torch_range.specifier.contains(version)
    old_side = re.search(r"\.venv-old/bin/pip install (.+)", recipe).group(1)
    assert old_side.strip() == "-e '.[torch]' -c constraints.txt"
