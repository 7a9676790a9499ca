"""Helpers shared by tests that run the real CLI or real worker processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAKE_BACKEND = "fake=tests.fakes.backend"


@contextlib.contextmanager
def paddle_import() -> Iterator[None]:
    """Import Paddle in this test process without its side effects on the rest of the session: importing paddle
    sets ``OMP_NUM_THREADS=1`` and ``CUSTOM_DEVICE_ROOT`` in ``os.environ`` (which every later CLI run and worker
    would inherit) and warns "No ccache found" (its C++-extension builder)."""
    saved = dict(os.environ)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
        yield
    os.environ.clear()
    os.environ.update(saved)


def fake_env(behaviour: str = "", **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"TRIBENCH_EXTRA_BACKENDS": FAKE_BACKEND, "FAKE_BACKEND_BEHAVIOUR": behaviour,
                "PYTHONPATH": str(ROOT), **extra})
    return env


def tribench(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real CLI in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "tribench", *args], cwd=ROOT, env=env or dict(os.environ),
                          capture_output=True, text=True, timeout=timeout)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); treat it as gone
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
