"""A pytest plugin: the ``tribench_run`` fixture times a model from a user's own test suite with tribench's
measurement rules (fresh worker processes, warm-up until steady, adaptive stopping, a CI across processes)
and gives the run file back as a ``tribench.Run``.

Installed with tribench (the ``pytest11`` entry point), so any test can ask for it::

    from tribench.plugins import Parts, Workload

    def build(request):                       # framework imports inside the builder, as in any plugin
        import torch
        ...
        return Parts(model, inputs, targets, loss=torch.nn.functional.cross_entropy)

    MY_MODEL = Workload("my-model", "what it is", {"tiny": {}}, {"torch": build})

    def test_my_model_is_fast_enough(tribench_run):
        run = tribench_run(MY_MODEL, backend="torch", mode="train")
        assert run.cases[0]["status"] == "ok"
        assert run.cases[0]["metrics"]["throughput"]["value"] > 1000

The workload is given as an object defined at the top level of the test module (the worker processes
load it from the module's file), as ``"path/model.py:NAME"``, or by name (built in, installed plugin,
``hf:<model>``). Keyword arguments are ``tribench.run``'s. The workers see the test suite's root folder
and the test module's folder on ``PYTHONPATH``, so the module's own imports resolve there as under
pytest. Run files go to ``--tribench-output DIR`` (one per test, named after it) or else the test's
temporary folder; ``--tribench-processes N`` sets every run's process count.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tribench", "tribench measurements (the tribench_run fixture)")
    group.addoption("--tribench-output", default=None, metavar="DIR",
                    help="Folder for the run files of tribench_run (default: each test's temporary folder).")
    group.addoption("--tribench-processes", type=int, default=None, metavar="N",
                    help="Processes per case in every tribench_run (default: tribench's own, 3).")


def workload_reference(workload: Any, module: Any) -> str:
    """A workload as ``tribench.run`` takes it: a name or file reference as given; a Workload object as
    ``<its test module's file>:<the top-level name that holds it>``."""
    if isinstance(workload, str):
        return workload
    from tribench.suites.plugins import Workload

    if not isinstance(workload, Workload):
        raise TypeError(f"tribench_run takes a tribench.plugins.Workload or a workload name, not "
                        f"{type(workload).__name__}")
    for name, value in vars(module).items():
        if value is workload:
            return f"{module.__file__}:{name}"
    raise ValueError(f"workload {workload.name} is not a top-level name of {module.__name__}: define it at the "
                     "top level of the test module, so tribench's worker processes can load it from the file")


def _file_name(node_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", node_id).strip("_") + ".json"


@pytest.fixture
def tribench_run(request: pytest.FixtureRequest, tmp_path: Path):
    """``tribench_run(workload, **flags) -> tribench.Run``: measure ``workload`` and return its run."""
    from tribench import api

    folder = request.config.getoption("tribench_output")
    processes = request.config.getoption("tribench_processes")
    count = 0

    def measure(workload: Any, **flags: Any) -> api.Run:
        nonlocal count
        count += 1
        name = _file_name(request.node.nodeid)
        name = name if count == 1 else name.replace(".json", f"-{count}.json")
        output = Path(folder) / name if folder else tmp_path / name
        if processes is not None:
            flags.setdefault("processes", processes)
        flags.setdefault("progress", False)
        flags.setdefault("tags", {"pytest": request.node.nodeid})
        with pytest.MonkeyPatch.context() as patch:  # the test suite's own imports work in the workers too
            paths = [str(request.config.rootpath), str(Path(request.module.__file__).parent)]
            patch.setenv("PYTHONPATH", os.pathsep.join(paths + [p for p in os.environ.get("PYTHONPATH", "")
                                                                .split(os.pathsep) if p]))
            return api.run(workload=workload_reference(workload, request.module), output=output, **flags)

    return measure
