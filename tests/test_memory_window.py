"""Memory that compares like with like (issue 13 item 6, second half): every peak restarts right after the
compile step, host and device alike, and the growth over that start is reported beside the lifetime peak."""

import pytest

from tests.fakes import FakeClock, FakeSession
from tests.helpers import tribench
from tribench.harness.probes import memory
from tribench.harness.results import load_run
from tribench.harness.timing import TimingConfig, measure


def test_the_mark_runs_once_right_after_the_compile_step():
    clock = FakeClock(start=0.0)
    session = FakeSession(clock, [1.0] + [0.01] * 10_000)
    seen = []
    measure(session, TimingConfig(min_steps=10, min_time_s=0.0, warmup_window=2), clock,
            after_compile=lambda: seen.append(session.steps))
    assert seen == [1]  # after the compile step, before any warm-up step


def _proc(tmp_path, rss_kib, hwm_kib):
    (tmp_path / "status").write_text(f"Name:\tpython\nVmHWM:\t{hwm_kib} kB\nVmRSS:\t{rss_kib} kB\n")
    return tmp_path


def test_the_host_window_starts_from_the_resident_set_after_the_compile_step(tmp_path):
    proc = _proc(tmp_path, rss_kib=500_000, hwm_kib=900_000)
    mark = memory.mark_window(proc)
    assert (proc / "clear_refs").read_text() == "5"  # the kernel's peak mark was reset
    assert mark == memory.WindowMark(500_000 * 1024)
    _proc(tmp_path, rss_kib=510_000, hwm_kib=530_000)  # the measured steps grew the process by 30 MiB at most
    window, growth = memory.window_peak_rss(mark, proc), memory.window_growth_rss(mark, proc)
    assert (window.value, window.span) == (530_000 * 1024, memory.AFTER_COMPILE)
    assert (growth.name, growth.value, growth.span) == ("host_rss_growth_window", 30_000 * 1024, memory.AFTER_COMPILE)
    assert memory.process_peak_rss().span == memory.LIFETIME


def test_a_refused_reset_makes_both_window_readings_unavailable_with_the_reason(tmp_path):
    mark = memory.mark_window(tmp_path / "absent")
    assert mark.baseline_bytes is None and mark.error.startswith("cannot reset the peak RSS mark")
    for reading in (memory.window_peak_rss(mark, tmp_path), memory.window_growth_rss(mark, tmp_path)):
        assert reading.value is None and reading.reason == mark.error


def test_jax_cannot_reset_its_peak_and_says_which_span_its_peak_covers():
    from tribench.backends.jax.adapter import growth_reading, peak_memory_reading

    start = {"bytes_in_use": 100, "peak_bytes_in_use": 400}
    rose = {"bytes_in_use": 120, "peak_bytes_in_use": 700}
    peak, growth = peak_memory_reading(rose, "gpu", start), growth_reading(start, rose)
    assert (peak.value, peak.span) == (700, memory.AFTER_COMPILE)
    assert (growth.value, growth.span) == (600, memory.AFTER_COMPILE)
    stayed = {"bytes_in_use": 120, "peak_bytes_in_use": 400}  # the compile step's peak was never passed
    peak, growth = peak_memory_reading(stayed, "gpu", start), growth_reading(start, stayed)
    assert peak.value == 400
    assert peak.span == memory.LIFETIME + "; JAX cannot reset its allocator peak, and it was reached by the end " \
                                          "of the compile step"
    assert growth.value is None and growth.reason.startswith("JAX cannot reset its allocator peak")
    assert growth_reading(None, None).reason == "the device keeps no allocator statistics"


def test_torch_restarts_the_cuda_peaks_at_the_mark_and_reports_the_growth(monkeypatch):
    torch = pytest.importorskip("torch")
    from tribench.backends.torch.adapter import TorchSession

    state = {"allocated": 300, "peak": 900, "reserved": 1000, "calls": []}
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: state["calls"].append("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats",
                        lambda device=None: state.update(peak=state["allocated"]) or state["calls"].append("reset"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: state["allocated"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: state["peak"])
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: state["reserved"])
    session = object.__new__(TorchSession)
    session._device = torch.device("cuda")
    session.mark_window()
    assert state["calls"] == ["sync", "reset"]
    state["peak"] = 650  # warm-up and measurement peaked 350 bytes above the start
    peak, reserved, growth = session.memory()
    assert (peak.value, peak.span) == (650, memory.AFTER_COMPILE)
    assert (growth.name, growth.value) == ("peak_allocated_growth", 350)


def test_tensorflow_growth_is_the_peak_over_what_was_in_use_at_the_mark():
    pytest.importorskip("tensorflow")
    from tribench.backends.tensorflow.devices import growth_reading

    assert growth_reading("gpu", 900, 300).value == 600
    assert growth_reading("gpu", 900, None).reason == "the window was never marked"
    assert growth_reading("cpu", None, None, "Allocator stats not available").reason == \
        "Allocator stats not available"


def test_every_framework_reports_the_lifetime_peak_and_the_growth_after_compile(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", "--backend", "torch,tensorflow,jax", "--workload", "cnn", "--mode", "train",
                    "--processes", "1", "--min-time", "0.1", "--max-time", "0.5", "--sustained-time", "0.1",
                    "--no-energy", "--output", str(out))
    assert done.returncode == 0, done.stderr
    for case in load_run(out)["cases"]:
        readings = {reading["name"]: reading for reading in case["metrics"]["memory"]}
        lifetime, growth = readings["host_peak_rss"], readings["host_rss_growth_window"]
        assert lifetime["span"] == memory.LIFETIME and growth["span"] == memory.AFTER_COMPILE, case["id"]
        assert 0 <= growth["value"] < lifetime["value"], case["id"]
        assert growth["value"] <= readings["host_peak_rss_window"]["value"], case["id"]
    assert "after compile" in done.stdout


def test_tensorflow_data_parallel_restarts_every_replica_devices_peak_at_the_mark(monkeypatch):
    tf = pytest.importorskip("tensorflow")
    from tribench.backends.tensorflow.parallel import DataParallelSession

    reset = []
    monkeypatch.setattr(tf.config.experimental, "reset_memory_stats", reset.append)
    session = object.__new__(DataParallelSession)
    session._devices = ["/job:localhost/replica:0/task:0/device:GPU:0", "/job:localhost/replica:0/task:0/device:GPU:1"]
    session.mark_window()
    assert reset == ["GPU:0", "GPU:1"]  # not only the first device, as a one-device session's mark would
