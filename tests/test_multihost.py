"""Multi-host runs (issue 8): the cluster settings, two "hosts" on localhost over gloo, and ``tribench merge``."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, tribench
from tribench.core.errors import InvalidValue
from tribench.core.spec import CaseSpec
from tribench.harness.cluster import PORT_SPAN, Cluster, resolve
from tribench.harness.distributed import free_port, rank_env

HOST_ARGS = ("--backend", "torch", "--workload", "cnn", "--mode", "train,infer", "--size", "tiny", "--batch", "4",
             "--min-steps", "5", "--min-time", "0.1", "--max-time", "0.3", "--no-energy", "--idle-baseline", "0",
             "--nodes", "2", "--master-addr", "127.0.0.1", "--processes", "1")
TRAIN, INFER = "torch/cnn-tiny/train/bs4/fp32/native/cpu/2x1", "torch/cnn-tiny/infer/bs4/fp32/native/cpu/2x1"


def test_cluster_from_flags_then_the_launchers_environment():
    assert resolve(None, None, None, None, env={}) is None
    assert resolve(2, 1, "node0", 30000, env={}) == Cluster(2, 1, "node0", 30000)
    step = {"SLURM_STEP_NUM_NODES": "4", "SLURM_NODEID": "3", "MASTER_ADDR": "n0", "MASTER_PORT": "29600"}
    assert resolve(None, None, None, None, env=step) == Cluster(4, 3, "n0", 29600)  # inside `srun`
    assert resolve(2, 0, "n0", None, env={}).master_port == 29500
    assert resolve(3, None, "h", 1, env={"SLURM_STEP_NUM_NODES": "3", "SLURM_NODEID": "2"}).node_rank == 2
    assert resolve(3, 1, "h", 1, env=step) == Cluster(3, 1, "h", 1)  # flags win


def test_a_batch_script_on_a_multi_node_allocation_is_a_one_host_run():
    batch = {"SLURM_NNODES": "2", "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": "0", "MASTER_ADDR": "n0"}
    assert resolve(None, None, None, None, env=batch) is None
    with pytest.raises(InvalidValue, match=r"^--nodes 2 needs --node-rank"):
        resolve(2, None, None, None, env=batch)  # outside a job step SLURM_NODEID is not this host's rank


@pytest.mark.parametrize(("args", "message"), [
    ((2, None, "n0", 1), "--nodes 2 needs --node-rank (0..1) on each host (or SLURM_NODEID from srun)"),
    ((2, 2, "n0", 1), "--node-rank must be 0..1 with --nodes 2, got 2"),
    ((2, 0, None, 1), "--nodes above 1 needs --master-addr: the address of node 0 that every host can reach "
                      "(or MASTER_ADDR)"),
    ((2, 0, "n0", 65500), f"--master-port must leave {PORT_SPAN} ports below 65536, got 65500"),
    ((1, 1, None, None), "--node-rank 1 needs --nodes above 1"),
    ((0, None, None, None), "--nodes must be a whole number >= 1, got 0"),
])
def test_cluster_errors_name_the_fix(args, message):
    with pytest.raises(InvalidValue) as error:
        resolve(*args, env={})
    assert str(error.value) == message


def test_each_case_process_meets_on_its_own_port_and_ranks_are_global():
    cluster = Cluster(2, 1, "node0", 30000)
    assert [cluster.port_for(launch) for launch in (0, 1, PORT_SPAN - 1, PORT_SPAN, PORT_SPAN + 5)] == \
        [30000, 30001, 30000 + PORT_SPAN - 1, 30000, 30005]
    assert cluster.worker_env(3) == {"TRIBENCH_NODES": "2", "TRIBENCH_NODE_RANK": "1", "MASTER_ADDR": "node0",
                                     "MASTER_PORT": "30003"}
    env = rank_env({"OMP_NUM_THREADS": "1"}, 1, 4, 30003, cluster)
    assert {key: env[key] for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                                      "MASTER_ADDR", "MASTER_PORT")} == {
        "RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4", "GROUP_RANK": "1",
        "MASTER_ADDR": "node0", "MASTER_PORT": "30003"}


def test_cli_refuses_scaling_across_hosts_and_a_missing_node_rank(tmp_path):
    result = tribench("run", "--backend", "torch", "--nodes", "2", "--node-rank", "0", "--master-addr", "h",
                      "--scaling", "--devices", "2", "--output", str(tmp_path / "r.json"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith(
        "--scaling runs on one host; measure scaling with a one-host --scaling run, then the multi-host run "
        "without it")
    result = tribench("run", "--backend", "torch", "--nodes", "2", "--master-addr", "h",
                      "--output", str(tmp_path / "r.json"))
    assert result.returncode == 2 and "--nodes 2 needs --node-rank (0..1)" in result.stderr
    result = tribench("run", "--backend", "torch", "--warmup-steps", "5", "--output", str(tmp_path / "r.json"))
    assert result.returncode == 2
    assert result.stderr.strip().endswith("--warmup-steps counts the warm-up of --steps; give --steps N too")


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory) -> tuple[Path, Path]:
    """One multi-host run on localhost: two `tribench run` processes, node ranks 0 and 1, meeting over gloo."""
    folder = tmp_path_factory.mktemp("hosts")
    port = str(free_port())
    commands = [[sys.executable, "-m", "tribench", "run", *HOST_ARGS, "--master-port", port, "--node-rank",
                 str(rank), "--output", str(folder / f"node{rank}.json")] for rank in (0, 1)]
    hosts = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for command in commands]
    try:
        errors = [host.communicate(timeout=300)[1] for host in hosts]
    finally:
        for host in hosts:
            host.kill()
    assert [host.returncode for host in hosts] == [0, 0], errors
    return folder / "node0.json", folder / "node1.json"


def _case(run: dict, case_id: str) -> dict:
    return next(case for case in run["cases"] if case["id"] == case_id)


def test_each_host_file_holds_its_own_ranks_and_says_it_is_partial(two_hosts):
    for rank, path in enumerate(two_hosts):
        run = json.loads(path.read_text())
        assert run["settings"]["cluster"] == {"nodes": 2, "node_rank": rank, "master_addr": "127.0.0.1",
                                              "master_port": run["settings"]["cluster"]["master_port"],
                                              "ports": run["settings"]["cluster"]["ports"]}
        for case_id in (TRAIN, INFER):
            case = _case(run, case_id)
            assert case["status"] == "ok", case["error"]
            process = case["repeats"][0]["ranks"][0]
            assert (process["node_rank"], process["replica_devices"]) == (rank, ["cpu"])
            assert case["metrics"]["complete"] == {"value": False, "source": "1 of 2 ranks in this file"}
            assert case["metrics"]["throughput"]["value"] == 4 / statistics.median(process["timing"]["samples_s"])
            assert "this host's 1 of 2 ranks only" in case["metrics"]["throughput"]["source"]
            assert case["metrics"]["scaling_efficiency"]["reason"] == (
                "this file holds one host's ranks only; merge the hosts' run files (tribench merge)")


def test_merge_joins_both_hosts_ranks_into_one_case(two_hosts, tmp_path):
    merged_path = tmp_path / "merged.json"
    result = tribench("merge", str(two_hosts[1]), str(two_hosts[0]), "--output", str(merged_path))  # any order
    assert result.returncode == 0, result.stderr
    merged = json.loads(merged_path.read_text())
    hosts = [json.loads(path.read_text()) for path in two_hosts]
    assert [host["node_rank"] for host in merged["environment"]["hosts"]] == [0, 1]
    assert [host["run_id"] for host in merged["environment"]["hosts"]] == [host["run_id"] for host in hosts]
    assert merged["state"] == "complete" and [case["id"] for case in merged["cases"]] == [TRAIN, INFER]
    for case_id in (TRAIN, INFER):
        case = _case(merged, case_id)
        own = [_case(host, case_id)["repeats"][0]["ranks"][0] for host in hosts]
        assert case["status"] == "ok"
        assert [rank["node_rank"] for rank in case["repeats"][0]["ranks"]] == [0, 1]
        assert [rank["timing"] for rank in case["repeats"][0]["ranks"]] == [process["timing"] for process in own]
        rates = [4 / statistics.median(process["timing"]["samples_s"]) for process in own]
        metrics = case["metrics"]
        assert [rank["throughput"]["value"] for rank in metrics["ranks"]] == rates
        assert metrics["throughput"]["value"] == sum(rates)
        assert metrics["throughput"]["value"] == sum(_case(host, case_id)["metrics"]["throughput"]["value"]
                                                     for host in hosts)
        assert metrics["complete"]["value"] is True
        assert metrics["batch_size"]["global"] == 8
        assert metrics["devices"]["value"] == 2 and metrics["devices"]["nodes"] == 2
        assert metrics["devices"]["launch"] == "process-per-device"
        assert metrics["slowest_rank"]["value"] == rates.index(min(rates))
        assert metrics["scaling_efficiency"]["value"] is None


def test_merge_fails_a_case_one_host_lacks_and_refuses_files_that_do_not_belong_together(two_hosts, tmp_path):
    lacking = json.loads(two_hosts[1].read_text())
    lacking["cases"] = [case for case in lacking["cases"] if case["id"] != INFER]
    lacking_path = tmp_path / "node1-lacking.json"
    lacking_path.write_text(json.dumps(lacking))
    merged_path = tmp_path / "merged.json"
    assert tribench("merge", str(two_hosts[0]), str(lacking_path), "-o", str(merged_path)).returncode == 0
    merged = json.loads(merged_path.read_text())
    assert _case(merged, TRAIN)["status"] == "ok"
    assert (_case(merged, INFER)["status"], _case(merged, INFER)["error"]) == (
        "failed", "node 1 has no result for this case")

    same_rank = tribench("merge", str(two_hosts[0]), str(two_hosts[0]), "-o", str(merged_path))
    assert same_rank.returncode == 2
    assert same_rank.stderr.strip().endswith("a 2-host run needs one file per node rank 0..1; got node ranks 0, 0")
    other = json.loads(two_hosts[1].read_text())
    other["settings"]["cluster"]["master_port"] += 1
    other_path = tmp_path / "other-run.json"
    other_path.write_text(json.dumps(other))
    mixed = tribench("merge", str(two_hosts[0]), str(other_path), "-o", str(merged_path))
    assert mixed.returncode == 2 and "met at different rendezvous endpoints" in mixed.stderr
    single = ROOT / "tests" / "data" / "run-sweep.json"
    alone = tribench("merge", str(two_hosts[0]), str(single), "-o", str(merged_path))
    assert alone.returncode == 2
    assert alone.stderr.strip().endswith(f"{single} is not a host's file of a multi-host run (it was not run "
                                         "with --nodes > 1)")


def _launches(tmp_path, planned, name: str) -> list[tuple[str, int]]:
    from tribench.harness.results import RunFile
    from tribench.harness.runner import RunOptions, execute

    seen: list[tuple[str, int]] = []

    def launch(spec, options):
        seen.append((spec.id, options.launch_index))
        return {"status": "failed", "error": "not run", "wall_s": 0.0, "exit_code": 1, "stderr_tail": ""}

    execute(planned, RunFile(tmp_path / name, {}, {}, {}, ["tribench"]), RunOptions(repeats=2), launch=launch)
    return seen


def test_hosts_number_a_case_alike_even_when_one_host_skips_another_case(tmp_path):
    """A case's launch number (its rendezvous port) is its place in the plan: a case skipped on one host only
    must not shift the numbers, and so the ports, of every case after it."""
    from tribench.harness.ab import with_envs
    from tribench.harness.planner import PlannedCase

    specs = with_envs([CaseSpec("torch", w, "tiny", "train", 4, devices=2) for w in ("cnn", "rnn", "transformer")],
                      ["A", "B"])
    host0 = _launches(tmp_path, [PlannedCase(spec) for spec in specs], "h0.json")
    host1 = _launches(tmp_path, [PlannedCase(spec, "missing here" if spec.workload == "cnn" else None)
                                 for spec in specs], "h1.json")
    assert len(host0) == 12 and len(host1) == 8
    assert host1 == [(case_id, index) for case_id, index in host0 if not case_id.startswith("torch/cnn")]
    assert sorted(index for _, index in host0) == list(range(12))


def test_merge_refuses_a_merged_file_and_its_own_inputs_and_a_host_bringing_other_ranks(two_hosts, tmp_path):
    merged_path = tmp_path / "merged.json"
    assert tribench("merge", str(two_hosts[0]), str(two_hosts[1]), "-o", str(merged_path)).returncode == 0
    assert "cluster" not in json.loads(merged_path.read_text())["settings"]
    again = tribench("merge", str(merged_path), str(two_hosts[1]), "-o", str(tmp_path / "again.json"))
    assert again.returncode == 2  # its ranks would be counted twice
    assert again.stderr.strip().endswith(f"{merged_path} is already a merged run file; merge the hosts' own run "
                                         "files")
    over = tribench("merge", str(two_hosts[0]), str(two_hosts[1]), "-o", str(two_hosts[0]))
    assert over.returncode == 2
    assert over.stderr.strip().endswith(f"--output {two_hosts[0]} is one of the files to merge; write the merged "
                                        "file elsewhere")
    impostor = json.loads(two_hosts[1].read_text())
    for rank in _case(impostor, TRAIN)["repeats"][0]["ranks"]:
        rank["node_rank"] = 0  # node 1's file holding node 0's rank
    impostor_path = tmp_path / "impostor.json"
    impostor_path.write_text(json.dumps(impostor))
    assert tribench("merge", str(two_hosts[0]), str(impostor_path), "-o", str(merged_path)).returncode == 0
    train = _case(json.loads(merged_path.read_text()), TRAIN)
    assert (train["status"], train["error"]) == ("failed", "node 1's result holds ranks of nodes [0] (1 ranks); "
                                                           "expected its own 1")
    assert _case(json.loads(merged_path.read_text()), INFER)["status"] == "ok"


def _flops_per_sample(spec: dict) -> float:
    from tribench.suites import workloads

    return workloads.get(spec["workload"]).flops_per_step(spec["size"], spec["mode"], 1)


def test_data_parallel_flops_are_shared_over_the_physical_devices_present(two_hosts, tmp_path):
    from tribench.harness.distributed_metrics import data_parallel_efficiency

    merged_path = tmp_path / "merged.json"
    assert tribench("merge", str(two_hosts[0]), str(two_hosts[1]), "-o", str(merged_path)).returncode == 0
    merged = _case(json.loads(merged_path.read_text()), TRAIN)["metrics"]
    host = _case(json.loads(two_hosts[0].read_text()), TRAIN)["metrics"]
    per_sample = _flops_per_sample(_case(json.loads(two_hosts[0].read_text()), TRAIN)["spec"])
    # CPU: each host's processor is one device, whatever the ranks on it: merged 2 hosts, a host's file 1
    assert merged["achieved_flops_per_s"]["value"] == pytest.approx(per_sample * merged["throughput"]["value"] / 2,
                                                                    rel=1e-12)
    assert host["achieved_flops_per_s"]["value"] == pytest.approx(per_sample * host["throughput"]["value"],
                                                                  rel=1e-12)
    assert "the CPU of each of the 2 host(s)" in merged["achieved_flops_per_s"]["source"]
    # GPUs: one per rank present (node 1's own file of a 2x2 run: its 2 GPUs)
    spec = CaseSpec("torch", "cnn", "tiny", "train", 4, device="gpu", devices=2, nodes=2)
    ranks = [{"node_rank": 1}, {"node_rank": 1}]
    gpu = data_parallel_efficiency(spec, 1000.0, ranks, None)
    assert gpu["achieved_flops_per_s"]["value"] == pytest.approx(_flops_per_sample(spec.to_dict()) * 1000.0 / 2,
                                                                 rel=1e-12)
    assert gpu["mfu"]["value"] is None and "each of the 2 devices" in gpu["achieved_flops_per_s"]["source"]


def test_launch_style_is_the_one_recorded_not_guessed_from_the_ranks():
    """A merged JAX/TF run of one device per host has one rank per process, like torch: the launch stays
    what the harness recorded when it started the processes."""
    from tribench.harness.distributed_metrics import global_metrics

    spec = CaseSpec("jax", "cnn", "tiny", "train", 4, devices=1, nodes=2)
    host = [{"node_rank": node, "replica_devices": ["cpu:0"], "timing": {"samples_s": [0.5, 0.25, 0.5]}}
            for node in (0, 1)]
    merged = {"status": "ok", "launch": "single-process", "ranks": host, "timing": host[0]["timing"]}
    metrics = global_metrics(spec, [merged])
    assert metrics["devices"]["launch"] == "single-process"
    assert metrics["throughput"]["value"] == 4 / 0.5 + 4 / 0.5 and metrics["complete"]["value"] is True
    assert global_metrics(spec, [{**merged, "launch": "process-per-device"}])["devices"]["launch"] == \
        "process-per-device"
