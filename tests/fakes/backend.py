"""A fake backend run through REAL worker processes (registered via TRIBENCH_EXTRA_BACKENDS).

Its behaviour per workload comes from ``FAKE_BACKEND_BEHAVIOUR``, e.g.
``"cnn=crash,rnn=hang"``; a workload not named behaves ``ok``. Behaviours:
ok (steps sleep ``FAKE_STEP_S`` seconds), crash (``os._exit(3)`` in build),
segfault (SIGSEGV to itself), hang (sleeps forever in build), raise
(RuntimeError in build), skip (CaseSkipped), slow (steps of 0.2 s), kill-server (kills the fork
server it was forked from, if it was, then runs ok), leak (prints the secrets the audit plants to
stderr, then raises: the secrets audit checks what of that is stored).
Data-parallel ranks (``RANK`` set): rank1-crash (rank 1 calls ``os._exit(3)`` at its 5th step),
rank1-hang (rank 1 sleeps forever at its 5th step), rank1-raise (RuntimeError there), the other
ranks stepping 0.5 s meanwhile; the pid file then names the rank, and with FAKE_PID_FOLDER rank 1
fails only once rank 0 has written its own (so rank 0 is surely mid-run).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from tribench.backends.base import Availability, CaseSkipped
from tribench.core.readings import Reading


def _behaviour(workload: str) -> str:
    pairs = (item.split("=", 1) for item in os.environ.get("FAKE_BACKEND_BEHAVIOUR", "").split(",") if "=" in item)
    return dict(pairs).get(workload, "ok")


class FakeSession:
    def __init__(self, step_s: float, fail_at_step: str = "", wait_for: str = "") -> None:
        self.step_s = step_s
        self.steps = 0
        self.fail_at_step = fail_at_step  # "crash", "hang" or "raise" at the 5th step (data-parallel rank tests)
        self.wait_for = wait_for  # rank 0's pid file: fail only once rank 0 is surely mid-run

    def step(self) -> int:
        time.sleep(self.step_s)
        self.steps += 1
        if self.steps == 5 and self.fail_at_step and self.wait_for:
            deadline = time.monotonic() + 30
            while not os.path.exists(self.wait_for) and time.monotonic() < deadline:
                time.sleep(0.01)
        if self.steps == 5 and self.fail_at_step == "crash":
            os._exit(3)
        if self.steps == 5 and self.fail_at_step == "hang":
            time.sleep(3600)
        if self.steps == 5 and self.fail_at_step == "raise":
            raise RuntimeError("rank 1 exploded")
        return self.steps

    def sync(self, handle: object) -> None:
        assert handle == self.steps

    def memory(self):
        return (Reading.unavailable("device_peak_allocated", "bytes", "fake", "device", "the fake has no device"),)

    def param_count(self) -> int:
        return 1234


def _forked_from_server() -> bool:
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
        return b"tribench.harness.fork_server" in handle.read()


class FakeBackend:
    name = "fake"
    data_parallel = True  # runs its ranks side by side (no collectives): for the launcher's tests

    def availability(self) -> Availability:
        return Availability(name="fake", installed=True, version="0.0", devices=("cpu",))

    def build(self, case) -> FakeSession:
        behaviour = _behaviour(case.workload)
        if "RANK" in os.environ:  # a stderr line from every rank: the launcher must keep each rank's tail
            print(f"fake rank {os.environ['RANK']} built", flush=True, file=sys.stderr)
        pid_file = os.environ.get("FAKE_PID_FOLDER")
        if pid_file:  # lets tests check that the runner left no worker behind
            rank = f"-rank{os.environ['RANK']}" if "RANK" in os.environ else ""
            with open(os.path.join(pid_file, f"{case.workload}{rank}.pid"), "w") as handle:
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
        if behaviour == "leak":
            names = ("TF_TOKEN_app_terraform_io", "TF_VAR_db_password", "AWS_SECRET_ACCESS_KEY", "HF_TOKEN",
                     "GITHUB_TOKEN", "DATABASE_URL", "NCCL_IB_TOKEN")
            print("planted: " + " ".join(f"{name}={os.environ.get(name)}" for name in names), file=sys.stderr)
            raise RuntimeError(f"the fake failed with {os.environ.get('GITHUB_TOKEN', '')} in its message")
        if behaviour == "kill-server" and _forked_from_server():
            os.kill(os.getppid(), signal.SIGKILL)
        if behaviour == "skip":
            raise CaseSkipped("the fake cannot do this")
        step_s = 0.2 if behaviour == "slow" else float(os.environ.get("FAKE_STEP_S", "0.001"))
        if behaviour.startswith("rank1-"):  # the healthy ranks are still mid-run (0.5 s steps) when rank 1 fails
            failing = os.environ.get("RANK") == "1"
            rank0 = os.path.join(pid_file, f"{case.workload}-rank0.pid") if pid_file else ""
            return FakeSession(step_s if failing else 0.5, behaviour.removeprefix("rank1-") if failing else "",
                               rank0 if failing else "")
        return FakeSession(step_s)


def backend() -> FakeBackend:
    return FakeBackend()
