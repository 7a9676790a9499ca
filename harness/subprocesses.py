"""How tribench starts its own Python processes (workers, fork servers, probes, peak measurements).

Every one is ``python -P -m tribench.harness.<module>``: ``-P`` (Python 3.11+) keeps the working
directory off ``sys.path``, and every module lives under the one name ``tribench``, so a user's own
``harness/``, ``reports/`` or even ``tribench/`` folder where they run the command can never be
imported in tribench's place. The environment puts the folder that holds the ``tribench`` package
first on ``PYTHONPATH``, so a worker under another interpreter (a same-job A/B ``--python``) finds
the same code.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import tribench.version

# The folder holding the tribench package: a source checkout's root, or site-packages of an install.
PACKAGE_PARENT = Path(tribench.version.__file__).resolve().parent.parent
STDERR_TAIL_LINES = 25
STDERR_TAIL_CHARS = 4000


def module_command(python: str, module: str, *args: str) -> list[str]:
    """``python -P -m <module> <args>``: the command line of one of tribench's own processes."""
    return [python, "-P", "-m", module, *args]


def worker_environment() -> dict[str, str]:
    """This process's environment with tribench's own folder first on ``PYTHONPATH``."""
    env = dict(os.environ)
    paths = [str(PACKAGE_PARENT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def tail(text: str, lines: int = STDERR_TAIL_LINES, chars: int = STDERR_TAIL_CHARS) -> str:
    """The last ``lines`` lines of a process's output, at most ``chars`` characters (for error messages)."""
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept[-chars:]


def describe_exit(code: int) -> str:
    """'exited with code N' or 'killed by signal NAME' (a negative return code)."""
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"
