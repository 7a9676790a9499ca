"""A background thread that calls a function every ``interval_s`` until stopped, then is joined.

Probes use it to sample power and telemetry while the timed steps run. It never
runs anything inside the main thread's steps: it only wakes on its own timer
(an ``Event.wait``, so ``stop`` wakes it at once). An exception in the sampled
function stops the sampling and is kept in ``error`` for the probe to report;
it never reaches the case.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tribench.harness.threads import pin_probe_thread

JOIN_TIMEOUT_S = 5.0


class PeriodicSampler:
    def __init__(self, sample: Callable[[], None], interval_s: float, name: str = "tribench-sampler") -> None:
        if interval_s <= 0:
            raise ValueError(f"sampling interval must be above 0 s, got {interval_s}")
        self._sample = sample
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        pin_probe_thread()  # off the measured CPUs where the thread policy kept one (harness.threads)
        while not self._stop.wait(self.interval_s):
            try:
                self._sample()
            except BaseException as error:  # kept for the probe; a sampler never kills the worker
                self.error = error
                return

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> bool:
        """Stop and join; return True if the thread ended (a hung driver call leaves a daemon thread)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(JOIN_TIMEOUT_S)
        return not self._thread.is_alive()
