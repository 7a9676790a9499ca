"""Energy end to end: real `tribench run` and real worker processes (fake backend, fake or absent sources)."""

import json

import pytest
from typer.testing import CliRunner

from tests.helpers import FAKE_BACKEND, fake_env, tribench
from tribench import cli
from tribench.backends.base import Availability
from tribench.core.spec import CaseSpec
from tribench.harness import availability as availability_module
from tribench.harness.probes import nvml, rapl
from tribench.harness.probes.energy import EnergySettings
from tribench.harness.results import load_run
from tribench.harness.runner import RunOptions, run_process
from tribench.harness.timing import TimingConfig
from tribench.reports import load

FAST = ["--backend", "fake", "--mode", "infer", "--min-time", "0.05", "--max-time", "0.2"]
QUICK = TimingConfig(min_steps=10, min_time_s=0.05, max_time_s=0.2)


def this_machines_rapl():
    """What the real RAPL reader finds here (nothing, on a CI container) and its table text."""
    probe = rapl.RaplProbe()
    probe.open()
    return probe.close()[0]


def test_a_run_on_this_machine_reports_energy_for_every_case_or_says_why(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", *FAST, "--workload", "cnn,rnn,transformer", "--output", str(out), env=fake_env())
    assert done.returncode == 0, done.stderr
    run = load_run(out)
    expected = this_machines_rapl()
    assert run["settings"]["energy"]["enabled"] is True
    assert run["settings"]["energy"]["idle_baseline_s"] == 2.0
    assert len(run["cases"]) == 3
    for case in run["cases"]:
        energy = case["metrics"]["energy"]
        assert energy["source"].startswith("rapl") and energy["scope"] == "package"
        if expected.measured:  # a machine with readable RAPL
            assert energy["method"] == "counter" and energy["value"] > 0
        else:
            assert (energy["method"], energy["value"]) == ("unavailable", None)
            assert energy["reason"] == expected.reason
            assert energy["short_reason"] == expected.short_reason
            assert case["repeats"][0]["energy"]["window"]["extra_steps"] == 0  # nothing to lengthen it for
    if not expected.measured:
        assert run["idle_baseline"]["seconds"] == 0.0
        assert run["idle_baseline"]["readings"]["cpu_packages"]["reason"] == expected.reason
        rows = [line for line in done.stdout.splitlines() if line.startswith("│ fake/")]
        assert len(rows) == 3 and all(f"n/a: {expected.short_reason}" in row for row in rows)
        frame = load([out])
        assert frame["energy_per_sample_j"].isna().all()
        assert list(frame["energy_method"]) == ["unavailable"] * 3
        assert list(frame["energy_reason"]) == [expected.reason] * 3


def test_no_energy_says_so_in_every_case(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", *FAST, "--workload", "cnn", "--no-energy", "--output", str(out), env=fake_env())
    assert done.returncode == 0, done.stderr
    run = load_run(out)
    (case,) = run["cases"]
    assert case["metrics"]["energy"]["reason"] == "energy measurement switched off (--no-energy)"
    assert run["idle_baseline"]["reason"] == "no idle baseline: energy measurement is off"
    assert "n/a: --no-energy" in done.stdout


def test_a_negative_idle_baseline_is_a_usage_error(tmp_path):
    done = tribench("run", *FAST, "--idle-baseline", "-1", "--output", str(tmp_path / "r.json"), env=fake_env())
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --idle-baseline must be 0 (off) or more seconds, got -1.0"


@pytest.fixture
def fake_workers(monkeypatch):
    monkeypatch.setenv("TRIBENCH_EXTRA_BACKENDS", FAKE_BACKEND)
    monkeypatch.setenv("FAKE_BACKEND_BEHAVIOUR", "")

    def launch(mode, baselines=None, **env):
        monkeypatch.setenv("FAKE_NVML", mode)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = EnergySettings(nvml_module="tests.fakes.pynvml", baselines=baselines or {})
        spec = CaseSpec("fake", "transformer", "tiny", "infer", 4, device="gpu")
        return run_process(spec, RunOptions(timing=QUICK, energy=settings, timeout_s=120))

    return launch


def test_a_gpu_worker_reads_the_counter_and_telemetry(fake_workers):
    result = fake_workers("counter", baselines={"gpu": {"power_w": 50.0}}, FAKE_NVML_THROTTLE="0x4")
    assert result["status"] == "ok", result.get("stderr_tail")
    record = result["energy"]
    gpu, host = record["readings"]
    assert (gpu["name"], gpu["method"], gpu["source"]) == ("gpu", "counter", nvml.COUNTER_SOURCE)
    assert gpu["value"] == pytest.approx(250.0 * gpu["window_s"], abs=250.0 * 0.011)  # 250 W, 10 ms updates
    assert gpu["details"]["net_value"] == pytest.approx(gpu["value"] - 50.0 * gpu["window_s"])
    window = record["window"]
    assert window["min_window_s"] == pytest.approx(1.0)  # 10 x the assumed 0.1 s update period
    assert window["extended"] is True and window["wall_s"] >= 1.0
    assert window["steps"] == window["timed_steps"] + window["extra_steps"]
    assert window["timed_steps"] == len(result["timing"]["samples_s"])
    assert record["per_sample"]["value"] == pytest.approx(gpu["value"] / (window["steps"] * 4))
    assert host["name"] == "cpu_packages"  # the host CPU is measured next to the GPU (or says why not)
    (telemetry,) = record["telemetry"]
    assert telemetry["throttle"]["throttle_reasons"] == ["sw_power_cap"]
    assert telemetry["fields"]["process_memory_used_bytes"]["max"] == 512 * 2**20  # found by the worker's pid


def test_a_gpu_without_a_counter_is_measured_by_power_sampling(fake_workers):
    result = fake_workers("no_counter")
    gpu = result["energy"]["readings"][0]
    assert gpu["method"] == "power_sampling"
    assert gpu["value"] == pytest.approx(250.0 * gpu["window_s"], rel=1e-6)
    assert gpu["details"]["samples"] >= 10  # the thread sampled every 0.1 s through a window of >= 1 s


def test_a_gpu_machine_without_the_nvml_library(fake_workers):
    result = fake_workers("missing")
    assert result["status"] == "ok"
    gpu = result["energy"]["readings"][0]
    assert (gpu["method"], gpu["value"]) == ("unavailable", None)
    assert gpu["reason"] == "NVML library not found (libnvidia-ml.so.1): no NVIDIA driver on this machine"
    assert result["energy"]["per_sample"]["value"] is None


def fake_availability(name, python=None):
    return Availability(name=name, installed=True, version="9.9", devices=("cpu",))


def test_env_lists_the_energy_sources_and_why_not(monkeypatch):
    monkeypatch.setattr(availability_module, "query", fake_availability)
    runner = CliRunner()
    result = runner.invoke(cli.app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    sources = {entry["source"]: entry for entry in json.loads(result.stdout)["energy_sources"]}
    assert sorted(sources) == ["mps", "nvml", "rapl", "tpu"]
    assert sources["rapl"]["available"] == rapl.describe()["available"]
    assert sources["rapl"]["reason"] == rapl.describe()["reason"]
    assert sources["nvml"]["reason"] == nvml.describe()["reason"]
    assert sources["tpu"]["reason"] == "TPUs expose no energy or power counter to the processes that use them"
    table = runner.invoke(cli.app, ["env"], terminal_width=300).stdout
    assert "energy sources" in table
    rapl_row = next(line for line in table.splitlines() if line.startswith("│ rapl"))
    assert ("yes" if sources["rapl"]["available"] else "no") in rapl_row
