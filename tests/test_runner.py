"""Worker processes that crash, hang or get interrupted never cost the suite its run file."""

import json
import signal
import subprocess
import sys

import pytest

from tests.helpers import ROOT, fake_env, pid_alive, tribench, wait_for
from tribench.harness.results import load_run

FAST = ["--backend", "fake", "--mode", "train", "--min-time", "0.05", "--max-time", "0.2"]


def cases_by_workload(run):
    return {case["spec"]["workload"]: case for case in run["cases"]}


def test_crash_and_segfault_fail_their_case_and_the_suite_goes_on(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", *FAST, "--output", str(out), env=fake_env("cnn=crash,rnn=segfault"))
    assert done.returncode == 0, done.stderr
    run = load_run(out)
    cases = cases_by_workload(run)
    assert run["state"] == "complete"
    assert cases["cnn"]["status"] == "failed"
    assert cases["cnn"]["error"].startswith("worker exited with code 3")
    assert cases["rnn"]["status"] == "failed"
    assert cases["rnn"]["error"].startswith("worker killed by signal SIGSEGV")
    assert cases["transformer"]["status"] == "ok"
    assert cases["transformer"]["metrics"]["params"]["value"] == 1234


def test_exception_in_build_keeps_the_traceback_in_the_case(tmp_path):
    out = tmp_path / "run.json"
    tribench("run", *FAST, "--workload", "cnn", "--output", str(out), env=fake_env("cnn=raise"))
    (case,) = load_run(out)["cases"]
    assert case["status"] == "failed"
    assert case["error"] == "RuntimeError: the fake model exploded"
    assert "Traceback" in case["repeats"][0]["stderr_tail"]


def test_a_hanging_worker_times_out_is_killed_and_the_suite_goes_on(tmp_path):
    out, pids = tmp_path / "run.json", tmp_path / "pids"
    pids.mkdir()
    done = tribench("run", *FAST, "--workload", "cnn,rnn", "--timeout", "3", "--output", str(out),
                    env=fake_env("cnn=hang", FAKE_PID_FOLDER=str(pids)))
    assert done.returncode == 0, done.stderr
    cases = cases_by_workload(load_run(out))
    assert cases["cnn"]["status"] == "timeout"
    assert cases["cnn"]["error"] == "timed out after 3 s"
    assert cases["cnn"]["repeats"][0]["stderr_tail"] == "about to hang"
    assert cases["rnn"]["status"] == "ok"
    assert not pid_alive(int((pids / "cnn.pid").read_text()))


def test_a_backend_skip_is_recorded_with_its_reason_and_not_retried(tmp_path):
    out = tmp_path / "run.json"
    tribench("run", *FAST, "--workload", "cnn", "--repeats", "3", "--output", str(out), env=fake_env("cnn=skip"))
    (case,) = load_run(out)["cases"]
    assert (case["status"], case["error"], len(case["repeats"])) == ("skipped", "the fake cannot do this", 1)


def test_repeats_are_fresh_processes_and_their_medians_are_kept(tmp_path):
    out = tmp_path / "run.json"
    tribench("run", *FAST, "--workload", "cnn", "--repeats", "2", "--output", str(out), env=fake_env())
    (case,) = load_run(out)["cases"]
    pids = {repeat["pid"] for repeat in case["repeats"]}
    assert len(pids) == 2
    assert len(case["metrics"]["step_time"]["per_repeat_median"]) == 2
    pooled = sum(len(repeat["timing"]["samples_s"]) for repeat in case["repeats"])
    assert case["metrics"]["step_time"]["n"] == pooled


def test_ctrl_c_mid_suite_keeps_finished_cases_and_kills_the_worker(tmp_path):
    out, pids = tmp_path / "run.json", tmp_path / "pids"
    pids.mkdir()
    command = [sys.executable, "-m", "tribench", "run", "--backend", "fake", "--mode", "train",
               "--min-time", "0.05", "--max-time", "30", "--target-ci", "0.000001", "--output", str(out)]
    env = fake_env("rnn=slow", FAKE_PID_FOLDER=str(pids))
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (pids / "rnn.pid").exists(), timeout=120), "the slow case never started"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    run = json.loads(out.read_text())  # plain JSON parse: the file is complete, not torn
    assert run["state"] == "interrupted"
    cases = cases_by_workload(load_run(out))
    assert cases["cnn"]["status"] == "ok"
    assert "rnn" not in cases and "transformer" not in cases
    assert not pid_alive(int((pids / "rnn.pid").read_text()))


def test_sigterm_ends_a_run_like_ctrl_c(tmp_path):
    out, pids = tmp_path / "run.json", tmp_path / "pids"
    pids.mkdir()
    command = [sys.executable, "-m", "tribench", "run", "--backend", "fake", "--workload", "cnn",
               "--mode", "train", "--max-time", "30", "--target-ci", "0.000001", "--output", str(out)]
    process = subprocess.Popen(command, cwd=ROOT, env=fake_env("cnn=slow", FAKE_PID_FOLDER=str(pids)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (pids / "cnn.pid").exists(), timeout=120)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert load_run(out)["state"] == "interrupted"
    assert not pid_alive(int((pids / "cnn.pid").read_text()))


@pytest.mark.parametrize("args, message", [
    (["--backend", "nope"], "error: unknown backend 'nope'; valid choices: torch, tensorflow, jax, paddle, fake"),
    (["--workload", "gan"], "error: unknown workload 'gan'; valid choices: cnn, rnn, transformer, decoder, "
                               "hf:<model type or config.json>, path/to/model.py:NAME"),
    (["--size", "huge"], "error: unknown size 'huge'; valid choices: tiny, small, standard"),
    (["--mode", "eval"], "error: unknown mode 'eval'; valid choices: train, infer, generate"),
    (["--precision", "int8"], "error: unknown precision 'int8'; valid choices: fp32, tf32, bf16, fp16"),
    (["--compile", "jit"], "error: unknown compile mode 'jit'; valid choices: native, compiled, op-by-op"),
    (["--device", "npu"], "error: unknown device 'npu'; valid choices: cpu, gpu, tpu, mps, auto"),
    (["--batch", "0"], "error: batch size must be a whole number above 0, got '0'"),
    (["--batch", "-3"], "error: batch size must be a whole number above 0, got '-3'"),
    (["--batch", "2.5"], "error: batch size must be a whole number above 0, got '2.5'"),
    (["--tag", "novalue"], "error: --tag takes KEY=VALUE, got 'novalue'"),
    (["--min-warmup", "9"], "error: the minimum warm-up must be between 0 and 5 s (the warm-up's cap), got 9"),
    (["--suite", "nightly"], "error: unknown suite 'nightly'; built-in suites: smoke, standard, or give a path "
                             "to a .toml file"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    done = tribench("run", *args, "--output", str(tmp_path / "r.json"), env=fake_env())
    assert done.returncode == 2
    assert done.stderr.strip() == message
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "r.json").exists()


def test_unwritable_output_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = tribench("run", "--backend", "fake", "--output", str(blocker / "run.json"), env=fake_env())
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: cannot create output folder {blocker}")
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_warmup_floor_reaches_every_process(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", *FAST, "--workload", "cnn", "--processes", "2", "--min-warmup", "0.1", "--output", str(out),
                    env=fake_env(FAKE_STEP_S="0.001"))
    assert done.returncode == 0, done.stderr
    run = load_run(out)
    assert run["settings"]["timing"]["min_warmup_time_s"] == 0.1
    (case,) = run["cases"]
    assert all(sum(process["timing"]["warmup_samples_s"]) >= 0.1 * 0.95 for process in case["repeats"])
