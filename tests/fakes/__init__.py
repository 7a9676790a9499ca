"""Fakes for unit tests: a clock that only moves when told, and sessions that advance it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class FakeClock:
    """A monotonic clock in seconds that moves only when ``advance`` is called."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSession:
    """Each step advances the fake clock by the next programmed duration.

    ``sync`` is counted and checked against the handle, so tests can prove every
    timed step ended with a sync of that very step.
    """

    def __init__(self, clock: FakeClock, durations: Iterable[float]) -> None:
        self.clock = clock
        self._durations: Iterator[float] = iter(durations)
        self.steps = 0
        self.synced: list[int] = []

    def step(self) -> int:
        self.clock.advance(next(self._durations))
        self.steps += 1
        return self.steps

    def sync(self, handle: object) -> None:
        assert handle == self.steps, "sync must receive the handle of the step just run"
        self.synced.append(handle)

    def memory(self):
        return ()

    def param_count(self) -> int:
        return 0
