"""Processes forked from a per-framework fork server: what they share, what they do not, and failures."""

import sys

import pytest

from tests.helpers import fake_env, pid_alive, tribench
from tribench.harness.fork_pool import FRESH, SHARED, ForkServerPool, accelerator_present
from tribench.harness.results import load_run

FAST = ["--backend", "fake", "--mode", "train", "--min-time", "0.05", "--max-time", "0.2"]


def test_processes_are_forked_children_of_one_server_and_say_so(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", *FAST, "--workload", "cnn,rnn", "--processes", "2", "--output", str(out), env=fake_env())
    assert done.returncode == 0, done.stderr
    run = load_run(out)
    processes = [process for case in run["cases"] for process in case["repeats"]]
    assert len(processes) == 4
    assert {process["launch"]["method"] for process in processes} == {"fork-server"}
    servers = {process["launch"]["server_pid"] for process in processes}
    assert len(servers) == 1  # one server for the backend, for the whole run
    assert len({process["pid"] for process in processes} | servers) == 5  # every process a child of its own
    assert all(process["launch"]["shared"] == SHARED for process in processes)
    assert all(process["launch"]["framework_import_s"] > 0 for process in processes)
    assert all(process["launch"]["preloaded"] == [] for process in processes)  # the fake names none
    assert run["settings"]["processes"]["shared_between_processes"].startswith(f"single-device CPU processes: {SHARED}")
    assert not pid_alive(servers.pop())  # the server ends with the run


def test_fresh_interpreters_share_nothing_and_say_so(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", *FAST, "--workload", "cnn", "--processes", "2", "--fresh-interpreters", "--output",
                    str(out), env=fake_env())
    assert done.returncode == 0, done.stderr
    run = load_run(out)
    (case,) = run["cases"]
    assert [process["launch"] for process in case["repeats"]] == [{"method": "fresh-interpreter", "shared": FRESH}] * 2
    assert run["settings"]["processes"]["shared_between_processes"] == FRESH


@pytest.mark.parametrize("start", ["--fork-server", "--fresh-interpreters"])
def test_crashes_and_timeouts_end_the_same_way_however_the_process_started(start, tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", *FAST, start, "--workload", "cnn,rnn,transformer", "--timeout", "3", "--output", str(out),
                    env=fake_env("cnn=crash,rnn=segfault,transformer=hang"))
    assert done.returncode == 0, done.stderr
    cases = {case["spec"]["workload"]: case for case in load_run(out)["cases"]}
    assert cases["cnn"]["error"].startswith("worker exited with code 3")
    assert cases["rnn"]["error"].startswith("worker killed by signal SIGSEGV")
    assert (cases["transformer"]["status"], cases["transformer"]["error"]) == ("timeout", "timed out after 3 s")
    assert cases["transformer"]["repeats"][0]["stderr_tail"] == "about to hang"


def test_a_server_that_dies_hands_its_cases_to_fresh_interpreters(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", *FAST, "--workload", "cnn,rnn", "--processes", "2", "--output", str(out),
                    env=fake_env("cnn=kill-server"))
    assert done.returncode == 0, done.stderr
    run = load_run(out)
    cases = {case["spec"]["workload"]: case for case in run["cases"]}
    assert [case["status"] for case in cases.values()] == ["ok", "ok"]
    launches = [process["launch"]["method"] for case in run["cases"] for process in case["repeats"]]
    assert launches == ["fresh-interpreter"] * 4  # the killed one ran again fresh, and so did all after it
    (reason,) = run["settings"]["fork_server_failures"].values()
    assert "fork server" in reason


def test_availability_is_answered_by_a_forked_child(tmp_path):
    with ForkServerPool(fake_env()) as pool:
        answer = pool.availability(sys.executable, "fake")
        server = pool.server(sys.executable, "fake")
        assert server is not None
        assert answer == {"name": "fake", "installed": True, "version": "0.0", "devices": ["cpu"], "device_names": {},
                          "reason": None, "install_hint": None, "details": {}, "notes": []}
        server_pid = server.ready["pid"]
        assert pid_alive(server_pid)
    assert not pid_alive(server_pid)


def test_a_server_that_cannot_start_is_reported_and_not_retried(tmp_path):
    with ForkServerPool(fake_env()) as pool:
        assert pool.server(sys.executable, "no-such-backend") is None
        assert pool.server(sys.executable, "no-such-backend") is None
        assert "the no-such-backend fork server did not start" in pool.failures["no-such-backend"]


def test_an_accelerator_device_node_keeps_availability_in_fresh_interpreters(tmp_path):
    node = tmp_path / "nvidiactl"
    assert not accelerator_present((str(node),))
    node.write_text("")
    assert accelerator_present((str(node),))
