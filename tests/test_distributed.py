"""Data-parallel cases (issue 8): torch DDP over gloo with 2 real processes, and the launcher's failure paths."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from tests.helpers import ROOT, fake_env, pid_alive, tribench, wait_for
from tribench.core.spec import CaseSpec
from tribench.harness import worker
from tribench.harness.distributed import device_counts, rank_env
from tribench.harness.distributed_metrics import add_scaling
from tribench.harness.timing import TimingConfig

FAST = ("--size", "tiny", "--batch", "4", "--min-steps", "5", "--min-time", "0.1", "--max-time", "0.3",
        "--no-energy", "--idle-baseline", "0", "--processes", "1")


def _run(tmp_path, *args: str, env=None, timeout: float = 240) -> dict:
    output = tmp_path / "run.json"
    result = tribench("run", *args, "--output", str(output), env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(output.read_text())


def _case(run: dict, case_id: str) -> dict:
    return next(case for case in run["cases"] if case["id"] == case_id)


def test_spec_id_is_stable_for_one_device_and_suffixed_above():
    spec = CaseSpec("torch", "cnn", "tiny", "train", 4)
    assert spec.id == "torch/cnn-tiny/train/bs4/fp32/native/cpu"
    assert replace(spec, devices=2).id == "torch/cnn-tiny/train/bs4/fp32/native/cpu/x2"
    assert replace(spec, devices=2, env="A").id == "torch/cnn-tiny/train/bs4/fp32/native/cpu/x2@A"
    assert CaseSpec.from_dict(replace(spec, devices=4).to_dict()).devices == 4


def test_device_counts_and_rank_env():
    assert device_counts(8, scaling=True) == [1, 2, 4, 8]
    assert device_counts(6, scaling=True) == [1, 2, 4, 6]
    assert device_counts(2, scaling=False) == [2]
    env = rank_env({"OMP_NUM_THREADS": "3"}, 1, 2, 29500)
    assert {k: env[k] for k in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK",
                                "OMP_NUM_THREADS")} == {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500",
                                                        "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1",
                                                        "OMP_NUM_THREADS": "3"}


def test_backend_without_data_parallel_is_skipped_honestly(monkeypatch):
    from tribench import backends
    from tribench.backends.base import CaseSkipped

    class NoParallel:
        name = "plugin"

        def build(self, case):
            raise AssertionError("must not build")

    monkeypatch.setattr(backends, "get", lambda name: NoParallel())
    with pytest.raises(CaseSkipped, match=r"^backend plugin has no data-parallel path \(its adapter does not set "
                                          r"data_parallel = True\)$"):
        worker.run_case(CaseSpec("plugin", "cnn", "tiny", "train", 4, devices=2), TimingConfig())


def test_scaling_efficiency_absent_with_reason_without_the_one_device_case():
    spec = CaseSpec("torch", "cnn", "tiny", "train", 4, devices=2)
    cases = [{"id": spec.id, "spec": spec.to_dict(), "metrics": {"throughput": {"value": 10.0}}}]
    add_scaling(cases, scaling=False)
    assert cases[0]["metrics"]["scaling_efficiency"]["value"] is None
    assert cases[0]["metrics"]["scaling_efficiency"]["reason"] == \
        "no 1-device case of this point in the run (use --scaling)"


def test_torch_two_ranks_over_gloo_aggregate_into_one_case(tmp_path):
    run = _run(tmp_path, "--backend", "torch", "--workload", "cnn", "--mode", "train,infer", "--devices", "2",
               "--scaling", *FAST)
    assert [case["id"] for case in run["cases"]] == ["torch/cnn-tiny/train/bs4/fp32/native/cpu",
                                                     "torch/cnn-tiny/train/bs4/fp32/native/cpu/x2",
                                                     "torch/cnn-tiny/infer/bs4/fp32/native/cpu",
                                                     "torch/cnn-tiny/infer/bs4/fp32/native/cpu/x2"]
    infer = run["cases"][3]  # independent replicas: no DDP, still one aggregated case
    assert infer["status"] == "ok", infer["error"]
    assert infer["metrics"]["scaling_efficiency"]["value"] == infer["metrics"]["throughput"]["value"] / (
        2 * run["cases"][2]["metrics"]["throughput"]["value"])
    single, dp = run["cases"][:2]
    assert dp["status"] == "ok", dp["error"]
    repeat = dp["repeats"][0]
    ranks = repeat["ranks"]
    assert len(ranks) == 2 and repeat["world_size"] == 2 and len(repeat["rank_stderr_tails"]) == 2
    assert ranks[0]["pid"] != ranks[1]["pid"] and all(r["status"] == "ok" for r in ranks)
    # every rank ran the same counted steps (harness.distributed.lockstep), none stepped on alone
    assert [(r["timing"]["stop_reason"], len(r["timing"]["samples_s"]), len(r["timing"]["warmup_samples_s"]))
            for r in ranks] == [("fixed_steps", 100, 10)] * 2
    medians = [statistics.median(rank["timing"]["samples_s"]) for rank in ranks]
    metrics = dp["metrics"]
    assert metrics["throughput"]["value"] == sum(4 / median for median in medians)
    assert [r["throughput"]["value"] for r in metrics["ranks"]] == [4 / median for median in medians]
    assert [r["step_time"]["median"] for r in metrics["ranks"]] == medians
    slowest = medians.index(max(medians))
    assert metrics["slowest_rank"]["value"] == slowest and repeat["slowest_rank"] == slowest
    assert repeat["timing"] == ranks[slowest]["timing"]
    assert metrics["batch_size"] == {"per_device": 4, "global": 8, "unit": "samples",
                                     "source": "per-device batch x devices"}
    efficiency = metrics["scaling_efficiency"]
    assert efficiency["value"] == metrics["throughput"]["value"] / (2 * single["metrics"]["throughput"]["value"])
    assert efficiency["baseline_case"] == single["id"]
    assert metrics["energy"]["value"] is None


def _pids(folder) -> list[int]:
    return [int(path.read_text()) for path in sorted(folder.glob("*.pid"))]


def test_crashed_rank_fails_the_case_kills_every_rank_and_the_suite_goes_on(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    env = fake_env("cnn=rank1-crash", FAKE_PID_FOLDER=str(pids))
    started = time.monotonic()
    run = _run(tmp_path, "--backend", "fake", "--workload", "cnn,rnn", "--mode", "train", "--devices", "2",
               "--size", "tiny", "--batch", "4", "--min-steps", "40", "--min-time", "0.1", "--max-time", "30",
               "--no-energy", "--idle-baseline", "0", "--timeout", "60", env=env)
    crashed = _case(run, "fake/cnn-tiny/train/bs4/fp32/native/cpu/x2")
    assert crashed["status"] == "failed"
    assert crashed["error"] == "data-parallel case failed: rank 1 exited with code 3"
    tails = crashed["repeats"][0]["rank_stderr_tails"]
    assert tails == ["fake rank 0 built", "fake rank 1 built"]
    assert crashed["metrics"] is None
    assert time.monotonic() - started < 15  # rank 0 needed 40 x 0.5 s more: it was killed, not awaited
    assert _case(run, "fake/rnn-tiny/train/bs4/fp32/native/cpu/x2")["status"] == "ok"
    assert len(_pids(pids)) == 4 and not any(pid_alive(pid) for pid in _pids(pids))


def test_hung_rank_times_out_with_every_rank_tail_and_no_process_left(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    env = fake_env("cnn=rank1-hang", FAKE_PID_FOLDER=str(pids))
    started = time.monotonic()
    run = _run(tmp_path, "--backend", "fake", "--workload", "cnn", "--mode", "train", "--devices", "2",
               "--size", "tiny", "--batch", "4", "--min-time", "0.1", "--max-time", "0.3", "--no-energy",
               "--idle-baseline", "0", "--timeout", "4", env=env)
    case = _case(run, "fake/cnn-tiny/train/bs4/fp32/native/cpu/x2")
    assert case["status"] == "timeout" and case["error"] == "timed out after 4 s"
    assert case["repeats"][0]["rank_stderr_tails"] == ["fake rank 0 built", "fake rank 1 built"]
    assert time.monotonic() - started < 30
    assert len(_pids(pids)) == 2 and not any(pid_alive(pid) for pid in _pids(pids))


def test_rank_with_a_failed_result_stops_its_peers_at_once(tmp_path):
    env = fake_env("cnn=rank1-raise")
    started = time.monotonic()
    run = _run(tmp_path, "--backend", "fake", "--workload", "cnn", "--mode", "train", "--devices", "2",
               "--size", "tiny", "--batch", "4", "--min-steps", "40", "--min-time", "0.1", "--max-time", "30",
               "--no-energy", "--idle-baseline", "0", "--timeout", "60", env=env)
    case = _case(run, "fake/cnn-tiny/train/bs4/fp32/native/cpu/x2")
    assert case["status"] == "failed"
    assert case["error"] == ("data-parallel case failed: rank 1 finished with status failed: "
                             "RuntimeError: rank 1 exploded")
    assert "RuntimeError: rank 1 exploded" in case["repeats"][0]["rank_stderr_tails"][1]
    assert time.monotonic() - started < 15


def test_rank_killed_from_outside_mid_run_fails_the_case_and_the_suite_goes_on(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    output = tmp_path / "run.json"
    command = [sys.executable, "-m", "tribench", "run", "--backend", "fake", "--workload", "cnn,rnn", "--mode",
               "train", "--devices", "2", "--size", "tiny", "--batch", "4", "--steps", "30", "--warmup-steps", "2",
               "--no-energy", "--idle-baseline", "0", "--timeout", "60", "--output", str(output)]
    runner = subprocess.Popen(command, cwd=ROOT, env=fake_env(FAKE_PID_FOLDER=str(pids), FAKE_STEP_S="0.2"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: (pids / "cnn-rank1.pid").exists() and (pids / "cnn-rank0.pid").exists(), 60)
        time.sleep(1.0)  # both ranks are stepping (0.2 s a step, 32 steps each)
        started = time.monotonic()
        os.kill(int((pids / "cnn-rank1.pid").read_text()), signal.SIGKILL)
        assert runner.wait(timeout=120) == 0
    finally:
        runner.kill()
    run = json.loads(output.read_text())
    killed = _case(run, "fake/cnn-tiny/train/bs4/fp32/native/cpu/x2")
    assert killed["status"] == "failed"
    assert killed["error"] == "data-parallel case failed: rank 1 killed by signal SIGKILL"
    assert killed["repeats"][0]["rank_exit_codes"] == [-9, -9]  # rank 0 was stopped by the launcher, at once
    assert killed["repeats"][0]["wall_s"] < 10 and time.monotonic() - started < 60
    assert _case(run, "fake/rnn-tiny/train/bs4/fp32/native/cpu/x2")["status"] == "ok"
    assert len(_pids(pids)) == 4 and not any(pid_alive(pid) for pid in _pids(pids))


@pytest.mark.parametrize(("backend", "compile_mode"), [("jax", "compiled"), ("tensorflow", "native")])
def test_single_process_backends_drive_two_devices_as_one_aggregated_case(tmp_path, backend, compile_mode):
    """JAX on 2 forced host devices, TensorFlow on 2 logical CPUs: one process, two replicas, one case."""
    run = _run(tmp_path, "--backend", backend, "--workload", "cnn", "--mode", "train", "--compile", compile_mode,
               "--devices", "2", "--scaling", *FAST)
    single, dp = run["cases"]
    assert dp["id"] == f"{backend}/cnn-tiny/train/bs4/fp32/{compile_mode}/cpu/x2"
    assert single["status"] == "ok" and dp["status"] == "ok", (single["error"], dp["error"])
    repeat = dp["repeats"][0]
    assert "ranks" not in repeat and repeat["world_size"] == 2 and repeat["node_rank"] == 0
    assert len(repeat["replica_devices"]) == 2 and len(set(repeat["replica_devices"])) == 2
    median = statistics.median(repeat["timing"]["samples_s"])
    metrics = dp["metrics"]
    assert [(r["rank"], r["device"], r["process"], r["node_rank"]) for r in metrics["ranks"]] == [
        (0, repeat["replica_devices"][0], 0, 0), (1, repeat["replica_devices"][1], 0, 0)]
    assert [r["throughput"]["value"] for r in metrics["ranks"]] == [4 / median, 4 / median]
    assert "1 other(s) in one synchronous SPMD step" in metrics["ranks"][0]["throughput"]["source"]
    assert metrics["throughput"]["value"] == 4 / median + 4 / median
    assert metrics["batch_size"]["global"] == 8 and metrics["complete"]["value"] is True
    assert metrics["devices"]["launch"] == "single-process"
    assert metrics["params"]["value"] == single["metrics"]["params"]["value"]
    assert metrics["scaling_efficiency"]["value"] == metrics["throughput"]["value"] / (
        2 * single["metrics"]["throughput"]["value"])
    assert metrics["energy"]["value"] is None
