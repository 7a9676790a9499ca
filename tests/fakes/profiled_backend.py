"""A fake backend whose sessions support ``profile`` (registered via TRIBENCH_EXTRA_BACKENDS).

``FAKE_PROFILE`` picks what ``profile`` does: ``ok`` (writes ``trace.json`` and a one-row operator
table), ``raise`` (RuntimeError), ``crash`` (the process exits at once, as a native profiler crash
would). Each session remembers how many steps it had run when ``profile`` was called, so tests can
prove the profile came after the timed measurement.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.fakes.backend import FakeSession
from tribench.backends.base import Availability


class ProfiledSession(FakeSession):
    def __init__(self, step_s: float) -> None:
        super().__init__(step_s)
        self.steps_before_profile: int | None = None

    def profile(self, steps: int, folder: Path) -> dict:
        self.steps_before_profile = self.steps
        behaviour = os.environ.get("FAKE_PROFILE", "ok")
        if behaviour == "raise":
            raise RuntimeError("the fake profiler broke")
        if behaviour == "crash":
            os._exit(5)
        for _ in range(steps):
            self.sync(self.step())
        trace = folder / "trace.json"
        trace.write_text(json.dumps({"traceEvents": [], "steps_before_profile": self.steps_before_profile}))
        window = steps * self.step_s
        return {"tool": "fake profiler", "trace_file": str(trace), "open_with": "a text editor",
                "window_s": window, "time_basis": "fake",
                "operators": [{"operator": "sleep", "calls": steps, "total_s": window * 0.5,
                               "self_s": window * 0.5, "share": 0.5}]}


class ProfiledBackend:
    name = "fakeprof"

    def availability(self) -> Availability:
        return Availability(name="fakeprof", installed=True, version="0.0", devices=("cpu",))

    def build(self, case) -> ProfiledSession:
        return ProfiledSession(float(os.environ.get("FAKE_STEP_S", "0.001")))


def backend() -> ProfiledBackend:
    return ProfiledBackend()
