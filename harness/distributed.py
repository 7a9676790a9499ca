"""Data-parallel cases (issue 8): N local worker processes launched the torchrun way, merged into one result.

Each rank is ``python -m harness.worker IN.json OUT-<rank>.json`` with the torchrun environment
(MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE). All ranks share ONE new
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
from typing import Any

from harness.spec import CaseSpec

ENERGY_REASON = "energy of data-parallel cases is not measured yet (issue 8): each rank would count the same devices"
SCALING_SOURCE = "global throughput / (devices x the same point's 1-device throughput in this run)"


def unsupported_reason(backend: str) -> str:
    """Why a backend's ``--devices N>1`` case is skipped (its adapter has no data-parallel path)."""
    return f"data-parallel for {backend} is not implemented yet (issue 8)"


def device_counts(devices: int, scaling: bool) -> list[int]:
    """``--devices N``: just N; with ``--scaling``: 1, 2, 4, ... up to N, and N itself."""
    if not scaling:
        return [devices]
    counts, count = [], 1
    while count < devices:
        counts.append(count)
        count *= 2
    return counts + [devices]


def with_device_counts(specs: list[CaseSpec], devices: int, scaling: bool) -> list[CaseSpec]:
    """Every spec at each device count, the counts of one point kept together (1 first)."""
    return [replace(spec, devices=count) for spec in specs for count in device_counts(devices, scaling)]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the rendezvous of rank 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rank_env(base: dict[str, str], rank: int, world_size: int, port: int) -> dict[str, str]:
    """The torchrun variables of one local rank; the cores shared out unless OMP_NUM_THREADS is set."""
    threads = base.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // world_size))
    return {**base, "OMP_NUM_THREADS": threads, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
            "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world_size),
            "GROUP_RANK": "0"}


def _kill(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _start_ranks(command: list[str], outputs: list[Path], base_env: dict[str, str]) -> list[subprocess.Popen]:
    """Rank 0 leads a new process group; every other rank joins it (a session could not be joined)."""
    port, world = free_port(), len(outputs)
    ranks: list[subprocess.Popen] = []
    for rank, output in enumerate(outputs):
        group = ranks[0].pid if ranks else 0
        ranks.append(subprocess.Popen([*command, str(output)], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      env=rank_env(base_env, rank, world, port), text=True, errors="replace",
                                      process_group=group))
    return ranks


def _rank_failure(rank: int, process: subprocess.Popen, output: Path) -> str | None:
    """Why an exited rank failed: a non-zero exit, or a result that is not ok (its peers would wait forever)."""
    if process.returncode not in (None, 0):
        from harness.runner import _describe_exit

        return f"rank {rank} {_describe_exit(process.returncode)}"
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
    """All ranks of ``spec`` (``runner.RunOptions``); always returns one process result."""
    from harness.runner import _worker_env, tail

    with tempfile.TemporaryDirectory(prefix="tribench-dp-") as folder:
        request = Path(folder, "in.json")
        outputs = [Path(folder, f"out-{rank}.json") for rank in range(spec.devices)]
        energy = replace(options.energy, enabled=False).to_dict()  # each rank would count the shared package
        request.write_text(json.dumps({"spec": spec.to_dict(), "timing": options.timing.to_dict(),
                                       "energy": energy, "profile": None}))
        started = time.perf_counter()
        ranks = _start_ranks([options.python_for(spec.env), "-m", "harness.worker", str(request)], outputs,
                             _worker_env())
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
                "rank_stderr_tails": [tail(text) for text in stderrs], "world_size": spec.devices}
        results = [json.loads(out.read_text()) if out.exists() else None for out in outputs]
    if stopped == "timeout":
        return {**base, "status": "timeout", "error": f"timed out after {options.timeout_s:g} s"}
    if stopped is not None or any(r is None for r in results):
        why = stopped or "a rank wrote no result"
        return {**base, "status": "failed", "error": f"data-parallel case failed: {why}"}
    return {**base, **merge_ranks(results)}


def merge_ranks(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One process result from the ranks' own: worst status; ``timing`` = the slowest rank's."""
    from harness.aggregate import STATUS_ORDER

    worst = max(results, key=lambda r: STATUS_ORDER.index(r["status"]))
    if worst["status"] != "ok":
        return {"status": worst["status"], "error": worst.get("error"), "ranks": results}
    slowest = max(range(len(results)), key=lambda i: statistics.median(results[i]["timing"]["samples_s"]))
    merged = {key: value for key, value in results[slowest].items() if key != "pid"}
    return {**merged, "energy": _energy_unavailable(merged["energy"]["device"]), "slowest_rank": slowest,
            "ranks": results}


def _energy_unavailable(device: str) -> dict[str, Any]:
    """The merged ``energy`` record: not measured, with the reason (every rank would count the shared package)."""
    from harness.probes.energy import PRIMARY_READING, EnergyReading, per_sample

    name = PRIMARY_READING.get(device, device)
    reading = EnergyReading.unavailable(name, "none", "device" if device != "cpu" else "package",
                                        ENERGY_REASON, "not for data-parallel yet")
    return {"enabled": False, "device": device, "primary": name, "window": None,
            "per_sample": per_sample(reading, 0, 1), "readings": [reading.to_dict()], "telemetry": []}


def global_metrics(spec: CaseSpec, ok: list[dict[str, Any]]) -> dict[str, Any]:
    """Global throughput (sum over ranks of per-device batch / rank median), per-rank summaries, the
    slowest rank; each rank's samples pooled over the case's ok repeats."""
    from harness.stats import summarize

    per_rank = [[s for r in ok for s in r["ranks"][rank]["timing"]["samples_s"]] for rank in range(spec.devices)]
    summaries = [summarize(samples) for samples in per_rank]
    rates = [spec.batch_size / summary["median"] for summary in summaries]
    slowest = max(range(spec.devices), key=lambda rank: summaries[rank]["median"])
    return {
        "throughput": {"value": sum(rates), "unit": "samples/s",
                       "source": "sum over ranks of per-device batch_size / rank median step time"},
        "ranks": [{"rank": rank, "throughput": {"value": rates[rank], "unit": "samples/s",
                                                "source": "per-device batch_size / rank median step time"},
                   "step_time": {"unit": "s", **summaries[rank]}} for rank in range(spec.devices)],
        "slowest_rank": {"value": slowest, "unit": "rank", "source": "largest median step time"},
        "devices": {"value": spec.devices, "unit": "processes", "source": "--devices (one process per device)"},
        "batch_size": {"per_device": spec.batch_size, "global": spec.batch_size * spec.devices,
                       "unit": "samples", "source": "per-device batch x devices"},
    }


def add_scaling(cases: list[dict[str, Any]], scaling: bool) -> None:
    """Each data-parallel case's ``scaling_efficiency`` against its 1-device point in the same run."""
    single = {CaseSpec.from_dict(case["spec"]).id: case for case in cases
              if case.get("spec", {}).get("devices", 1) == 1}
    for case in cases:
        spec = CaseSpec.from_dict(case["spec"])
        if spec.devices <= 1 or not case.get("metrics"):
            continue
        base = single.get(replace(spec, devices=1).id)
        base_value = ((base or {}).get("metrics") or {}).get("throughput", {}).get("value")
        entry: dict[str, Any] = {"value": None, "unit": "fraction", "source": SCALING_SOURCE}
        if base_value:
            entry["value"] = case["metrics"]["throughput"]["value"] / (spec.devices * base_value)
            entry["baseline_case"] = base["id"]
        elif not scaling:
            entry["reason"] = "no 1-device case of this point in the run (use --scaling)"
        else:
            entry["reason"] = f"the 1-device case of this point did not succeed ({(base or {}).get('status')})"
        case["metrics"]["scaling_efficiency"] = entry
