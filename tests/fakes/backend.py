"""A fake backend run through REAL worker processes (registered via TRIBENCH_EXTRA_BACKENDS).

Its behaviour per workload comes from ``FAKE_BACKEND_BEHAVIOUR``, e.g.
``"cnn=crash,rnn=hang"``; a workload not named behaves ``ok``. Behaviours:
ok (steps sleep ``FAKE_STEP_S`` seconds), crash (``os._exit(3)`` in build),
segfault (SIGSEGV to itself), hang (sleeps forever in build), raise
(RuntimeError in build), skip (CaseSkipped), slow (steps of 0.2 s).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from backends.base import Availability, CaseSkipped
from harness.readings import Reading


def _behaviour(workload: str) -> str:
    pairs = (item.split("=", 1) for item in os.environ.get("FAKE_BACKEND_BEHAVIOUR", "").split(",") if "=" in item)
    return dict(pairs).get(workload, "ok")


class FakeSession:
    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self.steps = 0

    def step(self) -> int:
        time.sleep(self.step_s)
        self.steps += 1
        return self.steps

    def sync(self, handle: object) -> None:
        assert handle == self.steps

    def memory(self):
        return (Reading.unavailable("device_peak_allocated", "bytes", "fake", "device", "the fake has no device"),)

    def param_count(self) -> int:
        return 1234


class FakeBackend:
    name = "fake"

    def availability(self) -> Availability:
        return Availability(name="fake", installed=True, version="0.0", devices=("cpu",))

    def build(self, case) -> FakeSession:
        behaviour = _behaviour(case.workload)
        pid_file = os.environ.get("FAKE_PID_FOLDER")
        if pid_file:  # lets tests check that the runner left no worker behind
            with open(os.path.join(pid_file, f"{case.workload}.pid"), "w") as handle:
                handle.write(str(os.getpid()))
        if behaviour == "crash":
            os._exit(3)
        if behaviour == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        if behaviour == "hang":
            print("about to hang", flush=True, file=sys.stderr)
            time.sleep(3600)
        if behaviour == "raise":
            raise RuntimeError("the fake model exploded")
        if behaviour == "skip":
            raise CaseSkipped("the fake cannot do this")
        step_s = 0.2 if behaviour == "slow" else float(os.environ.get("FAKE_STEP_S", "0.001"))
        return FakeSession(step_s)


def backend() -> FakeBackend:
    return FakeBackend()
