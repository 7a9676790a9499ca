"""The ``tribench_run`` pytest fixture in a user's own test suite: the README's example test, run by pytest
in a fresh folder, measures its workload through tribench's worker processes and keeps the run file."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT
from tribench.harness.results import load_run
from tribench.pytest_plugin import workload_reference
from tribench.suites.plugins import Workload


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### In your own test suite"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_fixture_example_passes_and_keeps_its_run_file(tmp_path):
    (tmp_path / "test_user_model.py").write_text(readme_example())
    out = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user_model.py",
                           "--tribench-output", str(out), "--tribench-processes", "2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    (path,) = out.iterdir()
    assert path.name == "test_user_model.py_test_linear_trains_fast_enough.json"
    run = load_run(path)
    (case,) = run["cases"]
    assert (case["id"], case["status"], len(case["repeats"])) == ("torch/linear-tiny/train/bs32/fp32/native/cpu",
                                                                  "ok", 2)
    assert case["workload"]["origin"] == f"file {tmp_path / 'test_user_model.py'}:LINEAR"
    assert run["tags"] == {"pytest": "test_user_model.py::test_linear_trains_fast_enough"}


LOCAL = Workload("local", "", {"tiny": {}}, {})


def test_a_workload_object_must_be_a_top_level_name_of_the_test_module():
    module = sys.modules[__name__]
    assert workload_reference(LOCAL, module) == f"{__file__}:LOCAL"
    assert workload_reference("hf:gpt2", module) == "hf:gpt2"
    with pytest.raises(ValueError, match="workload inner is not a top-level name of tests.test_pytest_plugin"):
        workload_reference(Workload("inner", "", {"tiny": {}}, {}), module)
    with pytest.raises(TypeError, match="takes a tribench.plugins.Workload or a workload name, not int"):
        workload_reference(3, module)
