"""tribench: benchmark and profile the same CNN, RNN and Transformer workloads through PyTorch,
TensorFlow and JAX.

Everything is importable under this one name, so nothing of a user's own (a ``harness/`` or
``reports/`` folder in the working directory) can stand in for it:

* ``tribench.core``: the shared vocabulary (case spec, errors, readings) that every layer may import;
* ``tribench.suites``: the workloads and suite files, framework-neutral; they import only ``core``;
* ``tribench.backends``: the backend registry and one package per framework;
* ``tribench.harness``: the engine (planning, worker processes, timing, probes, run files); it never
  imports ``reports`` or ``cli``;
* ``tribench.reports``: everything that reads run files (HTML, regression tracking, text formats);
* ``tribench.cli``: the ``tribench`` command, one module per command group;
* ``tribench.run``, ``load``, ``compare``, ``report``: the Python API (``tribench.api``), which the command
  line is a thin layer over; ``tribench.plugins``: what a workload plugin imports.

In a source checkout the four engine packages sit at the repository root, beside this folder;
``pyproject.toml`` maps them under ``tribench`` for an install, and the lines below do the same for
a checkout run without one (``PYTHONPATH=<checkout>``), e.g. a worker under another interpreter.
"""

from __future__ import annotations

from pathlib import Path

from tribench.version import __version__  # noqa: F401 - tribench.__version__

_CHECKOUT = Path(__file__).resolve().parent.parent
if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "harness" / "worker.py").is_file():
    __path__.append(str(_CHECKOUT))  # noqa: F821 - a package's __path__: tribench.harness -> <checkout>/harness

_API = ("run", "load", "compare", "report", "Run", "RunRequest", "Verdicts", "Progress")


def __getattr__(name: str):
    """The Python API (``tribench.api``), imported on first use so ``import tribench`` stays light."""
    if name in _API:
        from tribench import api

        return getattr(api, name)
    raise AttributeError(f"module 'tribench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
