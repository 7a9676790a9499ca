"""The timed loop, exactly, with a fake clock."""

import itertools

import pytest

from tests.fakes import FakeClock, FakeSession
from tribench.core.errors import InvalidValue
from tribench.harness.timing import TimingConfig, is_steady, measure

T = 1 / 1024  # a dyadic step time: sums of it are exact in binary floating point


def run(durations, **config):
    clock = FakeClock(start=0.0)
    session = FakeSession(clock, durations)
    return measure(session, TimingConfig(**config), clock), session


def test_compile_step_is_recorded_apart_from_samples():
    durations = [5.0] + [0.1] * 10_000
    result, _ = run(durations, warmup_window=2, min_steps=10, min_time_s=0.5)
    assert result.compile_time_s == 5.0
    assert 5.0 not in result.samples_s
    assert 5.0 not in result.warmup_samples_s


def test_warmup_runs_until_two_windows_agree():
    # step times are dyadic (k/1024 s) so the fake clock's arithmetic is exact
    warm = [4 * T, 3 * T, 2 * T, T, T, T, T, T]
    result, _ = run([1.0] + warm + [T] * 1000, warmup_window=3, warmup_tolerance=0.05,
                    min_steps=10, min_time_s=0.0)
    # after 7 steps the windows [3T,2T,T] and [T,T,T] have medians 2T vs T: not steady;
    # after 8, [2T,T,T] and [T,T,T] both have median T: steady
    assert result.warmup_samples_s == warm
    assert result.warmup_steady is True


def test_warmup_lasts_at_least_its_floor_even_when_steady_at_once():
    # steady after 6 steps of T (two agreeing windows of 3), but the floor asks for 16 T of warm-up
    result, _ = run([1.0] + [T] * 1000, warmup_window=3, min_warmup_time_s=16 * T, min_steps=10, min_time_s=0.0)
    assert result.warmup_samples_s == [T] * 16
    assert result.warmup_steady is True
    without_floor, _ = run([1.0] + [T] * 1000, warmup_window=3, min_steps=10, min_time_s=0.0)
    assert without_floor.warmup_samples_s == [T] * 6


def test_a_floor_above_the_warmup_cap_is_refused():
    with pytest.raises(InvalidValue, match="the minimum warm-up must be between 0 and 5 s"):
        TimingConfig(min_warmup_time_s=6.0)


def test_warmup_gives_up_after_max_steps_and_says_so():
    alternating = itertools.cycle([0.1, 0.3])  # window medians never agree with window=1
    result, _ = run(itertools.chain([1.0], alternating), warmup_window=1, max_warmup_steps=7,
                    max_time_s=1.0, min_time_s=0.0)
    assert len(result.warmup_samples_s) == 7
    assert result.warmup_steady is False


def test_warmup_gives_up_after_max_time():
    result, _ = run(itertools.chain([1.0], itertools.cycle([1.0, 3.0])), warmup_window=1,
                    max_warmup_time_s=10.0, max_warmup_steps=1000, max_time_s=1.0, min_time_s=0.0)
    # cumulative 1,4,5,8,9,12 -> stops after the 6th step (12 >= 10)
    assert result.warmup_samples_s == [1.0, 3.0, 1.0, 3.0, 1.0, 3.0]
    assert result.warmup_steady is False


def test_constant_steps_converge_at_min_steps_and_min_time():
    result, session = run([0.5] + [0.01] * 10_000, warmup_window=2, min_steps=10, min_time_s=0.3)
    assert result.stop_reason == "converged"
    assert result.final_ci_rel_halfwidth == 0.0
    # 0.3 s at 0.01 s/step = 30 steps; checks happen at 10, then the first count >= 10 after 0.3 s
    assert len(result.samples_s) == 30
    assert result.measure_wall_s == pytest.approx(0.30)
    # every timed step ended with a sync of that step
    assert session.synced == list(range(1, session.steps + 1))


def test_noisy_steps_stop_at_max_time_with_the_ci_reported():
    noisy = itertools.cycle([T, 3 * T])  # a bimodal mix whose median CI never tightens
    result, _ = run(itertools.chain([0.5], [2 * T] * 4, noisy), warmup_window=2, min_steps=10,
                    min_time_s=0.0, max_time_s=1.0, target_ci=0.02)
    assert result.stop_reason == "max_time"
    assert len(result.samples_s) == 512          # 256 pairs of (T + 3T) fill 1.0 s exactly
    assert result.measure_wall_s == 1.0
    assert result.final_ci_rel_halfwidth == 0.5  # CI [T, 3T] around the median 2T


def test_max_steps_bounds_the_measurement():
    result, _ = run(itertools.chain([0.5], [0.02] * 4, itertools.cycle([0.01, 0.03])),
                    warmup_window=2, min_steps=10, max_steps=25, min_time_s=0.0, max_time_s=100.0)
    assert result.stop_reason == "max_steps"
    assert len(result.samples_s) == 25


def test_stopping_rule_tightens_with_more_samples():
    # 1 in 10 steps is an outlier: the CI of the median is tight once n is large enough
    pattern = [T] * 9 + [5 * T]
    result, _ = run(itertools.chain([0.5], [T] * 4, itertools.cycle(pattern)), warmup_window=2,
                    min_steps=10, min_time_s=0.0, max_time_s=100.0, target_ci=0.02)
    assert result.stop_reason == "converged"
    assert result.final_ci_rel_halfwidth == 0.0
    assert sorted(result.samples_s)[len(result.samples_s) // 2] == T


def test_is_steady_needs_two_full_windows():
    assert not is_steady([1.0, 1.0, 1.0], window=2, tolerance=0.1)
    assert is_steady([1.0, 1.0, 1.0625, 1.0625], window=2, tolerance=0.0625)
    assert not is_steady([1.0, 1.0, 1.125, 1.125], window=2, tolerance=0.0625)


@pytest.mark.parametrize("bad", [dict(min_steps=0), dict(target_ci=0), dict(max_time_s=0),
                                 dict(min_time_s=20.0, max_time_s=10.0), dict(check_growth=1.0)])
def test_bad_timing_config_is_a_user_error(bad):
    with pytest.raises(InvalidValue):
        TimingConfig(**bad)


class RecordingWindow:
    def __init__(self, clock, session):
        self.clock, self.session, self.events = clock, session, []

    def open(self):
        self.events.append(("open", self.session.steps, self.clock.now))

    def close(self, session):
        assert session is self.session
        self.events.append(("close", self.session.steps, self.clock.now))


def test_a_window_spans_exactly_the_measured_steps():
    clock = FakeClock(start=0.0)
    session = FakeSession(clock, [0.5] + [T] * 10_000)
    window = RecordingWindow(clock, session)
    result = measure(session, TimingConfig(warmup_window=2, min_steps=10, min_time_s=0.0), clock, window)
    warmup, measured = len(result.warmup_samples_s), len(result.samples_s)
    assert window.events == [
        ("open", 1 + warmup, 0.5 + warmup * T),
        ("close", 1 + warmup + measured, 0.5 + (warmup + measured) * T),
    ]


def test_fixed_steps_count_warmup_and_measurement_exactly_whatever_the_clock_says():
    clock = FakeClock()
    durations = [5.0, 0.125, 0.25, 0.5, 1.0, 2.0, 0.5, 0.25]  # exact in binary: the samples compare exactly
    session = FakeSession(clock, durations)
    config = TimingConfig(min_time_s=100.0, max_time_s=200.0).with_fixed_steps(4, 3)
    result = measure(session, config, clock)
    assert result.compile_time_s == 5.0
    assert result.warmup_samples_s == durations[1:4] and result.warmup_steady is False
    assert result.samples_s == durations[4:] and result.stop_reason == "fixed_steps"
    assert session.steps == 8 and session.synced == list(range(1, 9))
    assert (config.min_steps, config.max_steps, config.max_warmup_steps, config.fixed_steps) == (4, 4, 3, True)
