"""The CLI and the report side never import a framework (they must start fast and stay neutral)."""

import subprocess
import sys

from tests.helpers import ROOT

FRAMEWORKS = ("torch", "tensorflow", "jax", "jaxlib", "flax", "optax", "keras")


def imported_after(statement: str) -> list[str]:
    code = f"import sys\n{statement}\nprint(','.join(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return [name for name in done.stdout.strip().split(",") if name]


def test_import_harness_cli_imports_no_framework():
    assert imported_after("import harness.cli") == []


def test_reports_suites_and_the_backend_registry_import_no_framework():
    statement = ("import reports, reports.table, reports.frame, suites, suites.suite_file, suites.workloads, "
                 "backends, backends.base, backends.torch, backends.tensorflow, backends.jax, harness.run")
    assert imported_after(statement) == []


def test_help_imports_no_framework():
    statement = ("from typer.testing import CliRunner\nfrom harness.cli import app\n"
                 "assert CliRunner().invoke(app, ['--help']).exit_code == 0")
    assert imported_after(statement) == []
