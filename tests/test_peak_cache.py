"""Peaks: the timing discipline (fake clock), the cache (a counting fake measurer), the run lookup, the datasheet.

No framework is imported here; tests/test_peak_and_profile_cpu.py measures the real ones.
"""

from __future__ import annotations

import json

import pytest

from tribench.harness import datasheet, environment, peak
from tribench.harness import peak_measure as pm
from tribench.harness.peak_measure import PeakOptions


class FakeClock:
    """Every call of the timed operation advances the clock by a fixed step."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_time_op_warms_up_calibrates_and_reports_the_best_repeat_with_the_median():
    clock = FakeClock()
    durations = iter([9.0, 9.0] + [0.03] + [0.03] * 4 + [0.02] * 4 + [0.05] * 4)   # warm-up, calibrate, 3 repeats
    synced: list[int] = []

    def run():
        clock.now += next(durations)
        return len(synced)

    timed = pm.time_op(run, synced.append, work=6.0, options=PeakOptions(repeats=3, warmup=2, min_repeat_s=0.1),
                       clock=clock)
    assert timed.calls_per_repeat == 4                     # ceil(0.1 / 0.03)
    assert timed.rates == pytest.approx((6 * 4 / 0.12, 6 * 4 / 0.08, 6 * 4 / 0.20))
    assert timed.best == pytest.approx(300.0) and timed.median == pytest.approx(200.0)
    assert len(synced) == 2 + 1 + 3 * 4                    # every result waited for


def test_at_most_a_few_results_are_in_flight_before_one_is_synced():
    outstanding, worst = [], [0]

    def run():
        outstanding.append(1)
        worst[0] = max(worst[0], len(outstanding))
        return None

    pm._timed_calls(run, lambda _: outstanding.pop(), calls=50, clock=FakeClock())
    assert worst[0] == pm.MAX_IN_FLIGHT + 1 and not outstanding


def test_measured_and_unavailable_records():
    timed = pm.Timed((2.0, 4.0, 3.0), 7)
    record = pm.measured(timed, pm.FLOPS_UNIT, "matmul")
    assert (record["value"], record["median"], record["status"]) == (4.0, 3.0, "measured")
    assert record["source"] == "matmul; best of 3 repeats x 7 calls, each synced, after warm-up"
    skipped = pm.unavailable(pm.FLOPS_UNIT, "no fp16 here")
    assert skipped["value"] is None and skipped["reason"] == "no fp16 here"


@pytest.mark.parametrize(("kind", "capability", "rocm", "applies"), [
    ("gpu", (8, 0), False, True), ("gpu", (9, 0), False, True), ("gpu", (7, 5), False, False),
    ("gpu", None, False, False), ("gpu", (9, 4), True, False), ("cpu", None, False, False),
    ("tpu", None, False, False),
])
def test_tf32_applies_only_to_nvidia_ampere_and_newer(kind, capability, rocm, applies):
    assert (pm.tf32_skip_reason(kind, capability, rocm) is None) is applies


def test_sizes_default_by_device_and_can_be_overridden():
    assert PeakOptions().size_for("cpu") == 2048 and PeakOptions().size_for("gpu") == 8192
    assert PeakOptions().copy_bytes_for("cpu") == 128 * 2**20
    assert PeakOptions(matmul_size=256, copy_bytes=2**20).size_for("gpu") == 256


# ---------------------------------------------------------------- the cache


def fake_record(backend: str, device: str, version: str, fp32: float, options: PeakOptions,
                bf16: float | None = None, math: str = "fp32") -> dict:
    matmul = {p: pm.unavailable(pm.FLOPS_UNIT, f"no {p} here") for p in pm.PRECISIONS}
    matmul["fp32"] = pm.measured(pm.Timed((fp32,), 1), pm.FLOPS_UNIT, "fake matmul")
    if bf16:
        matmul["bf16"] = pm.measured(pm.Timed((bf16,), 1), pm.FLOPS_UNIT, "fake bf16 matmul")
    bandwidth = pm.measured(pm.Timed((1e10,), 1), pm.BANDWIDTH_UNIT, "fake copy")
    return pm.record(backend, version, device, "Fake CPU", options, matmul, bandwidth, math)


class CountingMeasurer:
    def __init__(self, fp32: float = 5e10) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.fp32 = fp32
        self.versions = dict(VERSIONS)      # what the "installed" frameworks report

    def __call__(self, backend, devices, options):
        self.calls.append((backend, tuple(devices)))
        return {device: fake_record(backend, device, self.versions[backend], self.fp32, options) for device in devices}


VERSIONS = {"torch": "2.13.0", "jax": "0.10.2"}


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv(peak.CACHE_ENV, str(tmp_path / "cache"))
    return environment.capture({})


def test_a_cached_second_call_does_not_measure_again(env, tmp_path):
    measure = CountingMeasurer()
    first = peak.get_peaks({"torch": ["cpu"], "jax": ["cpu"]}, VERSIONS, env, measure=measure)
    second = peak.get_peaks({"torch": ["cpu"], "jax": ["cpu"]}, VERSIONS, env, measure=measure)
    assert measure.calls == [("torch", ("cpu",)), ("jax", ("cpu",))]
    assert [row.origin for row in first.rows] == ["measured", "measured"]
    assert [row.origin for row in second.rows] == ["cached", "cached"]
    assert second.entries() == first.entries()
    assert first.cache_file == tmp_path / "cache" / f"peaks-{peak.machine_fingerprint(env)}.json"
    assert json.loads(first.cache_file.read_text())["kind"] == peak.CACHE_KIND


def test_refresh_a_new_framework_version_or_other_sizes_measure_again(env):
    measure = CountingMeasurer()
    peak.get_peaks({"torch": ["cpu"]}, VERSIONS, env, measure=measure)
    peak.get_peaks({"torch": ["cpu"]}, VERSIONS, env, refresh=True, measure=measure)
    measure.versions["torch"] = "2.14.0"    # an upgrade
    peak.get_peaks({"torch": ["cpu"]}, {"torch": "2.14.0"}, env, measure=measure)
    peak.get_peaks({"torch": ["cpu"]}, {"torch": "2.14.0"}, env, PeakOptions(matmul_size=512), measure=measure)
    peak.get_peaks({"torch": ["cpu"]}, {"torch": "2.14.0"}, env, PeakOptions(matmul_size=512), measure=measure)
    assert len(measure.calls) == 4


def test_a_failed_measurement_is_reported_and_not_cached(env):
    def failing(backend, devices, options):
        return {device: {"error": "the peak worker failed: boom"} for device in devices}

    report = peak.get_peaks({"torch": ["cpu"]}, VERSIONS, env, measure=failing)
    assert report.rows[0].entry is None and report.rows[0].reason == "the peak worker failed: boom"
    assert not report.cache_file.exists()


def test_a_corrupt_cache_counts_as_empty(env):
    measure = CountingMeasurer()
    path = peak.cache_path(peak.machine_fingerprint(env))
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    peak.get_peaks({"torch": ["cpu"]}, VERSIONS, env, measure=measure)
    assert len(measure.calls) == 1
    assert json.loads(path.read_text())["entries"]["torch/cpu"]["backend"] == "torch"


def test_the_machine_fingerprint_ignores_which_frameworks_a_run_used(env):
    with_frameworks = {**env, "fingerprint_inputs": {**env["fingerprint_inputs"], "frameworks": {"torch": "2.13"}}}
    assert peak.machine_fingerprint(with_frameworks) == peak.machine_fingerprint(env)


def test_peak_module_lives_beside_the_adapter():
    assert peak.peak_module("torch") == "tribench.backends.torch.peak"
    assert peak.peak_module("tensorflow") == "tribench.backends.tensorflow.peak"


# ---------------------------------------------------------------- what a run stores


def test_a_run_stores_every_frameworks_cached_peaks_for_its_devices(env, monkeypatch):
    monkeypatch.setattr(peak, "installed_versions", lambda: dict(VERSIONS))
    peak.get_peaks({"torch": ["cpu"], "jax": ["cpu", "gpu"]}, VERSIONS, env, PeakOptions(matmul_size=256),
                   measure=CountingMeasurer())
    stored = peak.peaks_for_run(env, {"torch": ["cpu"]}, {"torch": "2.13.0"})
    assert sorted((e["backend"], e["device"]) for e in stored["entries"]) == [("jax", "cpu"), ("torch", "cpu")]
    assert stored["machine_fingerprint"] == peak.machine_fingerprint(env)


def test_a_run_without_cached_peaks_stores_none_unless_asked_to_measure(env, monkeypatch):
    monkeypatch.setattr(peak, "installed_versions", lambda: dict(VERSIONS))
    measure = CountingMeasurer()
    assert peak.peaks_for_run(env, {"torch": ["cpu"]}, {"torch": "2.13.0"}, runner=measure) is None
    assert measure.calls == []
    stored = peak.peaks_for_run(env, {"torch": ["cpu"]}, {"torch": "2.13.0"}, measure=True, runner=measure)
    assert measure.calls == [("torch", ("cpu",))]
    assert [e["backend"] for e in stored["entries"]] == ["torch"]


# ---------------------------------------------------------------- the datasheet


@pytest.mark.parametrize(("reported", "expected"), [
    ("NVIDIA H200", "NVIDIA H200 SXM"), ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM"),
    ("NVIDIA A100-SXM4-40GB", "NVIDIA A100 40GB SXM"), ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB SXM"),
    ("Tesla V100-SXM2-16GB", "NVIDIA V100 SXM2"), ("Tesla T4", "NVIDIA T4"), ("NVIDIA L4", "NVIDIA L4"),
    ("TPU v4", "Google TPU v4"), ("TPU v5 lite", "Google TPU v5e"), ("TPU v5e", "Google TPU v5e"),
    ("NVIDIA H100 PCIe", None), ("NVIDIA H200 NVL", None), ("NVIDIA L40S", None), ("TPU v5p", None),
    ("AMD EPYC", None), (None, None),
])
def test_datasheet_lookup_by_reported_name(reported, expected):
    found = datasheet.lookup(reported)
    assert (found.name if found else None) == expected


def test_datasheet_figures_are_dense_and_absent_ones_say_why():
    assert datasheet.spec_flops("NVIDIA H200", "bf16")[0] == 989.4e12
    assert datasheet.spec_flops("NVIDIA H100 80GB HBM3", "tf32")[0] == 494.7e12
    assert datasheet.spec_flops("NVIDIA A100-SXM4-80GB", "fp32")[0] == 19.5e12
    assert datasheet.spec_bandwidth("NVIDIA H200")[0] == 4.8e12
    assert datasheet.spec_bandwidth("TPU v5 lite")[0] == 819e9
    value, why = datasheet.spec_flops("Tesla T4", "bf16")
    assert value is None and "no bf16 on Turing" in why
    value, why = datasheet.spec_flops("AMD EPYC", "fp32")
    assert value is None and why.startswith("no datasheet entry for AMD EPYC")

