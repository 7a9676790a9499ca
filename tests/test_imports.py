"""The CLI and the report side never import a framework (they must start fast and stay neutral)."""

import subprocess
import sys

from tests.helpers import ROOT
from tests.test_layering import MODULES

FRAMEWORKS = ("torch", "tensorflow", "jax", "jaxlib", "flax", "optax", "keras")


def imported_after(statement: str) -> list[str]:
    code = f"import sys\n{statement}\nprint(','.join(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return [name for name in done.stdout.strip().split(",") if name]


def test_import_the_cli_imports_no_framework():
    assert imported_after("import tribench.cli") == []


def test_every_reports_module_suites_and_the_backend_registry_import_no_framework():
    reports = sorted(module for module in MODULES if module.startswith("tribench.reports"))
    statement = ("import " + ", ".join(reports) + ", tribench.suites, tribench.suites.suite_file, "
                 "tribench.suites.workloads, tribench.backends, tribench.backends.base, tribench.backends.torch, "
                 "tribench.backends.tensorflow, tribench.backends.jax, tribench.harness.run")
    assert len(reports) > 20
    assert imported_after(statement) == []


def test_help_imports_no_framework():
    statement = ("from typer.testing import CliRunner\nfrom tribench.cli import app\n"
                 "assert CliRunner().invoke(app, ['--help']).exit_code == 0")
    assert imported_after(statement) == []
