"""Data-parallel cases (issue 8): how they are launched, and how one repeat's ranks become one process result.

Their figures (global throughput, per-rank summaries, efficiency, scaling) are computed from the
results by ``harness.distributed_metrics``.

Two launch styles, chosen by the backend's registry entry (``backends.BackendEntry.launch``):

* ``process-per-device`` (torch): N local worker processes launched the torchrun way (below).
* ``single-process`` (JAX, TensorFlow): one worker drives every local device as one SPMD program
  (a ``jax.sharding`` mesh, a ``MirroredStrategy``). Its replicas step in lockstep, so each replica's
  step time is that process's step time; ``global_metrics`` says so in each replica's source.

Either way a case's "ranks" are its data-parallel replicas, one per device: each has its device,
its host (node rank), the process that timed it, its throughput (per-device batch / median step)
and its step-time summary; the global throughput is the sum over replicas. On a multi-host run
(``harness.cluster``) every host records only its own replicas; ``tribench merge`` joins them.

Each rank of a process-per-device case is ``python -m tribench.harness.worker IN.json OUT-<rank>.json`` with
the torchrun environment (MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE). All ranks share ONE new
process group (rank 0 leads it; a new session cannot be joined by a sibling), so a timeout, a crashed
rank or Ctrl-C kills every rank and anything they started. The parent waits on every rank; one rank
failing or the timeout passing fails the case with every rank's stderr tail. The ranks' results
merge into one process result: ``ranks`` holds each rank's timing, and ``timing`` is the slowest
rank's, so the usual step-time summary describes the rank that bounds the step.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tribench.core.spec import CaseSpec

if TYPE_CHECKING:
    from tribench.harness.cluster import Cluster

ENERGY_REASON = ("energy of data-parallel cases is not measured: the probes read one device or the one CPU "
                 "package that every rank shares")


def unsupported_reason(backend: str) -> str:
    """Why a backend's ``--devices N>1`` case is skipped (its adapter has no data-parallel path)."""
    return f"backend {backend} has no data-parallel path (its adapter does not set data_parallel = True)"


def device_counts(devices: int, scaling: bool) -> list[int]:
    """``--devices N``: just N; with ``--scaling``: 1, 2, 4, ... up to N, and N itself."""
    if not scaling:
        return [devices]
    counts, count = [], 1
    while count < devices:
        counts.append(count)
        count *= 2
    return counts + [devices]


def with_device_counts(specs: list[CaseSpec], devices: int, scaling: bool, nodes: int = 1) -> list[CaseSpec]:
    """Every spec at each device count (per host, on ``nodes`` hosts), the counts of one point kept
    together (1 first)."""
    return [replace(spec, devices=count, nodes=nodes) for spec in specs for count in device_counts(devices, scaling)]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the rendezvous of rank 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_of(spec: CaseSpec) -> str:
    """``process-per-device`` or ``single-process``: how the backend of ``spec`` runs several devices."""
    from tribench import backends

    return backends.entry(spec.backend).launch


def rank_env(base: dict[str, str], rank: int, world_size: int, port: int,
             cluster: Cluster | None = None) -> dict[str, str]:
    """The torchrun variables of one local rank; the cores shared out unless OMP_NUM_THREADS is set.

    ``rank`` and ``world_size`` are local; on a multi-host run the global rank is
    ``node_rank x local world + rank`` and the world spans every host.
    """
    threads = base.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // world_size))
    nodes, node_rank = (cluster.nodes, cluster.node_rank) if cluster else (1, 0)
    address = cluster.master_addr if cluster else "127.0.0.1"
    return {**base, "OMP_NUM_THREADS": threads, "MASTER_ADDR": address, "MASTER_PORT": str(port),
            "RANK": str(node_rank * world_size + rank), "WORLD_SIZE": str(nodes * world_size),
            "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world_size), "GROUP_RANK": str(node_rank),
            "TRIBENCH_NODES": str(nodes), "TRIBENCH_NODE_RANK": str(node_rank)}


LOCKSTEP_STEPS, LOCKSTEP_WARMUP = 100, 10


def lockstep(options: Any) -> Any:
    """``options`` with counted steps (``--steps``, else 100 after 10 warm-up) for processes that step together.

    Ranks in separate processes must run the same number of steps: a multi-host SPMD step waits for
    every host, and torch ranks that stopped adaptively at different counts would leave the last one
    stepping alone (DDP's join shadows its all-reduce), its fast lone steps inflating its throughput.
    """
    if options.timing.fixed_steps:
        return options
    return replace(options, timing=options.timing.with_fixed_steps(LOCKSTEP_STEPS, LOCKSTEP_WARMUP))


def single_process_launch(spec: CaseSpec, options: Any, base_env: dict[str, str]) -> tuple[Any, dict[str, str]]:
    """The options and environment of a single-process data-parallel worker (JAX, TensorFlow).

    The backend's ``worker_env`` (JAX's forced host device count) goes in before the framework
    loads; on a multi-host run the cluster variables too, and fixed step counts (``harness.timing``).
    """
    from tribench import backends

    env = {**base_env, **backends.worker_env(spec, base_env)}
    options = replace(options, energy=replace(options.energy, enabled=False), profile=None)
    if options.cluster is not None:
        env.update(options.cluster.worker_env(options.launch_index))
        options = lockstep(options)
    return options, env


def single_process_result(spec: CaseSpec, result: dict[str, Any]) -> dict[str, Any]:
    """The worker's result with the data-parallel energy record and the world size."""
    result = {**result, "world_size": spec.total_devices, "launch": "single-process"}
    if result.get("status") == "ok":
        result["energy"] = _energy_unavailable(result["energy"]["device"])
    return result


def _kill(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _start_ranks(command: list[str], outputs: list[Path], base_env: dict[str, str],
                 options: Any) -> list[subprocess.Popen]:
    """Rank 0 leads a new process group; every other rank joins it (a session could not be joined)."""
    cluster = options.cluster
    port, world = cluster.port_for(options.launch_index) if cluster else free_port(), len(outputs)
    ranks: list[subprocess.Popen] = []
    for rank, output in enumerate(outputs):
        group = ranks[0].pid if ranks else 0
        ranks.append(subprocess.Popen([*command, str(output)], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      env=rank_env(base_env, rank, world, port, cluster), text=True,
                                      errors="replace",
                                      process_group=group))
    return ranks


def _rank_failure(rank: int, process: subprocess.Popen, output: Path) -> str | None:
    """Why an exited rank failed: a non-zero exit, or a result that is not ok (its peers would wait forever)."""
    if process.returncode not in (None, 0):
        from tribench.harness.subprocesses import describe_exit

        return f"rank {rank} {describe_exit(process.returncode)}"
    if process.returncode == 0:
        result = json.loads(output.read_text()) if output.exists() else {"status": "missing", "error": "no result"}
        if result.get("status") not in ("ok", "skipped"):
            return f"rank {rank} finished with status {result.get('status')}: {result.get('error')}"
    return None


def _first_failure(ranks: list[subprocess.Popen], outputs: list[Path]) -> str | None:
    failures = (_rank_failure(i, rank, out) for i, (rank, out) in enumerate(zip(ranks, outputs, strict=True)))
    return next((failure for failure in failures if failure), None)


def _wait_all(ranks: list[subprocess.Popen], outputs: list[Path],
              timeout_s: float) -> tuple[list[str], str | None]:
    """Read every rank's stderr; kill the group when one rank fails or time runs out. Returns the stderrs
    and why the case stopped early (None when every rank exited 0 in time)."""
    stderrs = [""] * len(ranks)
    readers = [threading.Thread(target=lambda i=i: stderrs.__setitem__(i, ranks[i].stderr.read()), daemon=True)
               for i in range(len(ranks))]
    for reader in readers:
        reader.start()
    deadline, stopped = time.monotonic() + timeout_s, None
    while stopped is None and [rank.poll() for rank in ranks].count(None):  # poll every rank, each time
        stopped = _first_failure(ranks, outputs)
        if stopped is not None:
            break
        if time.monotonic() >= deadline:
            stopped = "timeout"
        else:
            time.sleep(0.05)  # a few polls a second between the ranks, never inside a timed step
    _kill(ranks[0].pid)
    for rank, reader in zip(ranks, readers, strict=True):
        rank.wait()
        reader.join()
    if stopped is None:  # every rank exited by itself: one may still have failed
        stopped = _first_failure(ranks, outputs)
    return stderrs, stopped


def run_distributed(spec: CaseSpec, options: Any) -> dict[str, Any]:
    """All ranks of ``spec`` (``runner.RunOptions``), each running the same counted steps (``lockstep``);
    always returns one process result."""
    from tribench.harness.subprocesses import module_command, tail, worker_environment

    options = lockstep(options)
    with tempfile.TemporaryDirectory(prefix="tribench-dp-") as folder:
        request = Path(folder, "in.json")
        outputs = [Path(folder, f"out-{rank}.json") for rank in range(spec.devices)]
        energy = replace(options.energy, enabled=False).to_dict()  # each rank would count the shared package
        request.write_text(json.dumps({"spec": spec.to_dict(), "timing": options.timing.to_dict(),
                                       "energy": energy, "profile": None,  # each rank takes its share of the CPUs
                                       "threads": options.threads.to_dict() if options.threads else None}))
        started = time.perf_counter()
        command = module_command(options.python_for(spec.env), "tribench.harness.worker", str(request))
        ranks = _start_ranks(command, outputs, worker_environment(), options)
        try:
            stderrs, stopped = _wait_all(ranks, outputs, options.timeout_s)
        except BaseException:  # Ctrl-C or SIGTERM while waiting: take every rank down with us
            _kill(ranks[0].pid)
            raise
        base = {"wall_s": time.perf_counter() - started,
                "exit_code": next((r.returncode for r in ranks if r.returncode), 0),
                "rank_exit_codes": [r.returncode for r in ranks],
                "python": options.python_for(spec.env),
                "stderr_tail": "\n".join(f"[rank {i}] {tail(text)}" for i, text in enumerate(stderrs)),
                "rank_stderr_tails": [tail(text) for text in stderrs], "world_size": spec.total_devices,
                "launch": "process-per-device"}
        results = [json.loads(out.read_text()) if out.exists() else None for out in outputs]
    if stopped == "timeout":
        return {**base, "status": "timeout", "error": f"timed out after {options.timeout_s:g} s"}
    if stopped is not None or any(r is None for r in results):
        why = stopped or "a rank wrote no result"
        return {**base, "status": "failed", "error": f"data-parallel case failed: {why}"}
    return {**base, **merge_ranks(results)}


def merge_ranks(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One process result from the ranks' own: worst status; ``timing`` = the slowest rank's."""
    from tribench.harness.aggregate import STATUS_ORDER

    worst = max(results, key=lambda r: STATUS_ORDER.index(r["status"]))
    if worst["status"] != "ok":
        return {"status": worst["status"], "error": worst.get("error"), "ranks": results}
    slowest = max(range(len(results)), key=lambda i: statistics.median(results[i]["timing"]["samples_s"]))
    merged = {key: value for key, value in results[slowest].items() if key != "pid"}
    return {**merged, "energy": _energy_unavailable(merged["energy"]["device"]), "slowest_rank": slowest,
            "ranks": results}


def _energy_unavailable(device: str) -> dict[str, Any]:
    """The merged ``energy`` record: not measured, with the reason (every rank would count the shared package)."""
    from tribench.harness.probes.energy import PRIMARY_READING, EnergyReading, per_sample

    name = PRIMARY_READING.get(device, device)
    reading = EnergyReading.unavailable(name, "none", "device" if device != "cpu" else "package",
                                        ENERGY_REASON, "not measured for data-parallel")
    return {"enabled": False, "device": device, "primary": name, "window": None,
            "per_sample": per_sample(reading, 0, 1), "readings": [reading.to_dict()], "telemetry": []}
