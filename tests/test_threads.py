"""One CPU threading policy for every framework (issue 13 item 4): the rule, the cgroup reading, the pinning,
and real workers of all three frameworks given the same counts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, fake_env, tribench, wait_for
from tribench.core.errors import InvalidValue
from tribench.harness.probes.sampler import PeriodicSampler
from tribench.harness.results import load_run
from tribench.harness.threads import (
    CpuQuota,
    ThreadPolicy,
    cpu_list,
    decide,
    parse_cpu_list,
    parse_threads_option,
    read_quota,
    set_probe_cpus,
)

# --------------------------------------------------------------------------- the rule


def test_two_cpus_and_no_quota_give_both_cpus_to_the_measured_process_and_keep_none():
    policy = decide((0, 1), None)
    assert (policy.worker_cpus, policy.intra_op, policy.inter_op, policy.reserved_cpus) == ((0, 1), 2, 2, ())
    assert policy.source == "affinity: CPUs 0-1 (2); no cgroup CPU quota"
    assert policy.notes == ("no CPU kept for the parent and the probe threads: 2 CPUs (one is kept from 4)",)


def test_from_four_cpus_one_is_kept_for_the_parent_and_the_probes():
    policy = decide((0, 1, 2, 3, 4, 5, 6, 7), None)
    assert (policy.worker_cpus, policy.intra_op, policy.inter_op, policy.reserved_cpus) == (
        (0, 1, 2, 3, 4, 5, 6), 7, 7, (7,))
    assert policy.notes == ("CPU 7 kept for the parent process and the probe threads",)


def test_a_cgroup_quota_cuts_the_budget_to_its_whole_cpus():
    policy = decide(tuple(range(16)), CpuQuota(2.5, "cgroup v2 / cpu.max '250000 100000'"))
    assert (policy.worker_cpus, policy.intra_op, policy.reserved_cpus) == ((0, 1), 2, ())
    assert "CPU quota 2.5 CPUs (cgroup v2 / cpu.max '250000 100000')" in policy.source
    assert decide((0, 1, 2, 3), CpuQuota(0.5, "q")).worker_cpus == (0,)  # never below one thread


def test_threads_below_the_budget_shrink_the_cpu_set_so_xla_sizes_its_pool_alike():
    policy = decide((0, 1, 2, 3, 4, 5), None, threads=2)
    assert (policy.worker_cpus, policy.intra_op, policy.reserved_cpus) == ((0, 1), 2, (5,))
    assert policy.notes[-1] == "2 threads from --threads"
    assert decide((0, 1), None, threads=1, from_environment=True).notes[-1] == "1 thread from OMP_NUM_THREADS"


def test_threads_above_the_budget_keep_the_set_and_say_oversubscribed():
    policy = decide((0, 1), None, threads=4)
    assert (policy.worker_cpus, policy.intra_op, policy.inter_op) == ((0, 1), 4, 4)
    assert policy.notes[-1] == ("4 threads from --threads on 2 CPUs: oversubscribed (XLA:CPU still sizes its pool "
                                "from the 2 CPUs)")


def test_data_parallel_ranks_on_one_host_share_the_set_out():
    policy = decide((0, 1, 2, 3, 4, 5, 6, 7, 8), None)  # 8 measured CPUs, CPU 8 kept
    assert [policy.for_rank(rank, 2).worker_cpus for rank in (0, 1)] == [(0, 1, 2, 3), (4, 5, 6, 7)]
    assert (policy.for_rank(1, 2).intra_op, policy.for_rank(1, 2).inter_op) == (4, 4)
    crowded = decide((0, 1), None).for_rank(2, 3)
    assert (crowded.worker_cpus, crowded.intra_op, crowded.inter_op) == ((0,), 1, 1)
    assert crowded.notes[-1] == "3 ranks on 2 CPUs: each rank 1 thread, CPUs shared (oversubscribed)"
    assert policy.for_rank(0, 1) is policy


def test_the_policy_survives_the_request_file():
    policy = decide((0, 2, 3, 4, 9), CpuQuota(4.0, "q"), threads=3)
    assert ThreadPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy


def test_cpu_lists_use_the_kernels_notation():
    assert cpu_list((0, 1, 2, 5, 7, 8)) == "0-2,5,7-8"
    assert cpu_list(()) == ""
    assert parse_cpu_list("0-2,5,7-8") == (0, 1, 2, 5, 7, 8)


def test_the_threads_option():
    assert parse_threads_option("framework") == "framework"
    assert parse_threads_option("3") == 3
    assert parse_threads_option("auto", {"OMP_NUM_THREADS": "1"}) == 1
    assert parse_threads_option(None, {}) is None
    assert parse_threads_option("auto", {"OMP_NUM_THREADS": "lots"}) is None
    for bad in ("0", "-1", "two"):
        with pytest.raises(InvalidValue, match="--threads takes a whole number of threads"):
            parse_threads_option(bad)


# --------------------------------------------------------------------------- cgroup quotas (fake trees)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_v2_quota_is_the_tightest_of_the_cgroup_and_its_ancestors(tmp_path):
    _write(tmp_path / "proc", "0::/user.slice/job\n")
    _write(tmp_path / "cg/user.slice/job/cpu.max", "max 100000\n")
    _write(tmp_path / "cg/user.slice/cpu.max", "150000 100000\n")
    _write(tmp_path / "cg/cpu.max", "400000 100000\n")
    quota = read_quota(tmp_path / "cg", tmp_path / "proc")
    assert quota == CpuQuota(1.5, "cgroup v2 /user.slice cpu.max '150000 100000'")


def test_a_v1_quota_of_minus_one_is_no_quota(tmp_path):
    _write(tmp_path / "proc", "4:memory:/x\n1:cpu,cpuacct:/\n0::/\n")
    _write(tmp_path / "cg/cpu/cpu.cfs_quota_us", "-1\n")
    _write(tmp_path / "cg/cpu/cpu.cfs_period_us", "100000\n")
    assert read_quota(tmp_path / "cg", tmp_path / "proc") is None


def test_a_v1_quota_is_read_from_the_cpu_controller(tmp_path):
    _write(tmp_path / "proc", "3:cpu,cpuacct:/docker/abc\n")
    _write(tmp_path / "cg/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n")
    _write(tmp_path / "cg/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n")
    assert read_quota(tmp_path / "cg", tmp_path / "proc") == CpuQuota(
        3.0, "cgroup v1 /docker/abc cpu.cfs_quota_us 300000 / cpu.cfs_period_us 100000")


def test_no_cgroup_file_means_no_quota(tmp_path):
    assert read_quota(tmp_path / "none", tmp_path / "missing") is None


# --------------------------------------------------------------------------- pinning


def test_a_probe_thread_pins_itself_to_the_kept_cpu_and_leaves_the_main_thread_alone():
    cpus = sorted(os.sched_getaffinity(0))
    seen: list[set[int]] = []
    set_probe_cpus((cpus[-1],))
    try:
        sampler = PeriodicSampler(lambda: seen.append(os.sched_getaffinity(0)), 0.01)
        sampler.start()
        assert wait_for(lambda: bool(seen), timeout=10)
        sampler.stop()
    finally:
        set_probe_cpus(())
    assert seen[0] == {cpus[-1]}
    assert sorted(os.sched_getaffinity(0)) == cpus


def test_the_parent_pins_every_one_of_its_threads():
    code = ("import os, threading, time\n"
            "from tribench.harness.threads import pin_every_thread\n"
            "stop = threading.Event(); t = threading.Thread(target=stop.wait); t.start()\n"
            "cpu = max(os.sched_getaffinity(0))\n"
            "print(pin_every_thread((cpu,)))\n"
            "print(sorted({tuple(sorted(os.sched_getaffinity(int(tid)))) for tid in os.listdir('/proc/self/task')}))\n"
            "stop.set()\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    cpu = max(os.sched_getaffinity(0))
    assert done.stdout.splitlines() == [f"pinned to CPU {cpu} (2 threads)", f"[({cpu},)]"]


# --------------------------------------------------------------------------- real workers


def test_a_worker_runs_on_its_cpu_set_and_says_when_its_backend_sets_no_threads(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", "--backend", "fake", "--workload", "cnn", "--mode", "infer", "--processes", "1",
                    "--threads", "1", "--no-energy", "--output", str(out), env=fake_env())
    assert done.returncode == 0, done.stderr
    run = load_run(out)
    first = min(os.sched_getaffinity(0))
    record = run["cases"][0]["threads"]
    assert (record["cpus"], record["intra_op"], record["inter_op"]) == (str(first), 1, 1)  # --threads 1: both 1
    assert record["framework"] == {"how": "not set: the backend has no apply_threads; the framework keeps its "
                                          "own counts"}
    assert run["settings"]["threads"]["notes"][-1] == "1 thread from --threads"


@pytest.mark.parametrize("start", ["--fork-server", "--fresh-interpreters"])
def test_every_framework_runs_the_threads_it_was_given(start, tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", "--backend", "torch,tensorflow,jax", "--workload", "cnn", "--mode", "infer", start,
                    "--threads", "1", "--processes", "1", "--min-time", "0.05", "--max-time", "0.2",
                    "--min-warmup", "0", "--no-energy", "--output", str(out))
    assert done.returncode == 0, done.stderr
    run = load_run(out)
    first = str(min(os.sched_getaffinity(0)))
    frameworks = {case["spec"]["backend"]: case["threads"]["framework"] for case in run["cases"]}
    assert {name: record["intra_op"] for name, record in frameworks.items()} == {
        "torch": 1, "tensorflow": 1, "jax": 1}
    assert {name: record["inter_op"] for name, record in frameworks.items()} == {
        "torch": 1, "tensorflow": 1, "jax": None}
    assert {case["threads"]["cpus"] for case in run["cases"]} == {first}
    assert "threads: intra-op 1, inter-op 1 per process, pinned to CPUs" in done.stdout


def test_framework_defaults_leave_the_pools_alone_and_say_so(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", "--backend", "fake", "--workload", "cnn", "--mode", "infer", "--processes", "1",
                    "--threads", "framework", "--no-energy", "--output", str(out), env=fake_env())
    assert done.returncode == 0, done.stderr
    run = load_run(out)
    assert run["cases"][0]["threads"] == {"policy": "framework defaults (--threads framework)"}
    assert run["settings"]["threads"]["policy"].startswith("framework defaults")


def test_a_bad_thread_count_is_one_line_and_exit_2():
    done = tribench("run", "--threads", "0", "--backend", "fake", env=fake_env())
    assert done.returncode == 2
    assert "--threads takes a whole number of threads (1 or more), 'auto' or 'framework', got '0'" in done.stderr
    assert "Traceback" not in done.stderr
