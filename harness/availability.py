"""Ask each backend whether it can run here, in a process of its own.

Finding devices and build details means importing the framework, and no
process of ours imports two frameworks (nor does the CLI import any), so the
question goes to ``python -m tribench.harness.availability NAME``, which prints the
backend's ``Availability`` as JSON. Whether the packages are installed at all
is answered without any import, from the import system's finder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache

from tribench import backends
from tribench.backends.base import Availability
from tribench.harness.subprocesses import module_command

QUERY_TIMEOUT_S = 180


def _not_installed(name: str) -> Availability:
    entry = backends.entry(name)
    missing = backends.missing_packages(name)
    return Availability(
        name=name,
        installed=False,
        reason=f"not installed (missing: {', '.join(missing)})",
        install_hint=entry.install_hint,
    )


def _failed(name: str, reason: str) -> Availability:
    return Availability(name=name, installed=True, reason=reason, install_hint=backends.entry(name).install_hint)


@cache
def query(name: str, python: str = sys.executable) -> Availability:
    """The availability of backend ``name``, asked of a fresh interpreter (cached per process)."""
    if not backends.is_installed(name):
        return _not_installed(name)
    try:
        done = subprocess.run(
            module_command(python, "tribench.harness.availability", name),
            capture_output=True, text=True, timeout=QUERY_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return _failed(name, f"probing the framework took over {QUERY_TIMEOUT_S} s")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return _failed(name, f"the framework failed to load: {tail}")
    return Availability.from_dict(json.loads(lines[-1]))


def main(argv: list[str]) -> int:
    (name,) = argv
    from tribench.harness.import_guard import block_other_frameworks

    block_other_frameworks(name)
    print(json.dumps(backends.get(name).availability().to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
