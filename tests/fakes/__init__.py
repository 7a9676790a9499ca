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


class QueuedDeviceSession:
    """An asynchronous device behind a fake clock: ``step`` costs ``dispatch_s`` of host time and queues
    ``device_s`` of device work after the previous step's; ``sync`` waits until that step's work is done.

    A synced step therefore takes dispatch + device time, while steps dispatched back to back overlap
    the host's dispatch with the device's work, as on a GPU or with JAX's asynchronous dispatch.
    """

    def __init__(self, clock: FakeClock, dispatch_s: float, device_s: float) -> None:
        self.clock = clock
        self.dispatch_s, self.device_s = dispatch_s, device_s
        self.device_free_at = clock.now
        self.done_at: dict[int, float] = {}
        self.steps = 0
        self.synced: list[int] = []

    def step(self) -> int:
        self.clock.advance(self.dispatch_s)
        self.steps += 1
        self.device_free_at = max(self.device_free_at, self.clock.now) + self.device_s
        self.done_at[self.steps] = self.device_free_at
        return self.steps

    def sync(self, handle: int) -> None:
        self.synced.append(handle)
        self.clock.advance(max(0.0, self.done_at[handle] - self.clock.now))

    def memory(self):
        return ()

    def param_count(self) -> int:
        return 0
