"""``tribench merge``: the run files of a multi-host run's hosts, joined into one run file.

Each host of a ``--nodes M`` run writes its own file holding only its own ranks (``harness.cluster``).
Merging checks that the files belong together (M files, node ranks 0..M-1 once each, the same M and
rendezvous endpoint) and joins every case repeat by repeat: the repeat's ranks are every host's ranks
in node order, its status is the worst host's, and the case's metrics are derived again from the
joined repeats (``harness.aggregate``), so the global throughput is the sum over every host's ranks.
A case or repeat a host lacks fails that case, with the reason; it is never dropped silently.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from tribench.core.errors import InvalidValue
from tribench.core.spec import CaseSpec
from tribench.harness.aggregate import STATUS_ORDER, case_metrics, case_status
from tribench.harness.distributed_metrics import add_scaling, rank_processes, replicas
from tribench.harness.results import RunFile, load_run, new_run_id


def _cluster(run: dict[str, Any], path: str) -> dict[str, Any]:
    if run.get("settings", {}).get("merged_from"):
        raise InvalidValue(f"{path} is already a merged run file; merge the hosts' own run files")
    cluster = run.get("settings", {}).get("cluster")
    if not cluster:
        raise InvalidValue(f"{path} is not a host's file of a multi-host run (it was not run with --nodes > 1)")
    return cluster


def order_hosts(runs: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The files in node-rank order, after checking they are the M hosts of one run."""
    clusters = [(path, _cluster(run, path)) for path, run in runs]
    nodes = {cluster["nodes"] for _, cluster in clusters}
    if len(nodes) != 1:
        raise InvalidValue(f"the files come from runs with different --nodes ({', '.join(map(str, sorted(nodes)))})")
    endpoints = {(cluster["master_addr"], cluster["master_port"]) for _, cluster in clusters}
    if len(endpoints) != 1:
        raise InvalidValue("the files met at different rendezvous endpoints (--master-addr/--master-port): "
                           "they are not one multi-host run")
    count = nodes.pop()
    ranks = sorted(cluster["node_rank"] for _, cluster in clusters)
    if ranks != list(range(count)):
        raise InvalidValue(f"a {count}-host run needs one file per node rank 0..{count - 1}; got node ranks "
                           f"{', '.join(map(str, ranks))}")
    return sorted(runs, key=lambda item: item[1]["settings"]["cluster"]["node_rank"])


def _missing(node_rank: int, what: str) -> dict[str, Any]:
    return {"status": "failed", "error": f"node {node_rank} has no result for this {what}"}


def _host_repeat(case: dict[str, Any] | None, node_rank: int, index: int) -> dict[str, Any]:
    if case is None:
        return _missing(node_rank, "case")
    repeats = case.get("repeats", [])
    return repeats[index] if index < len(repeats) else _missing(node_rank, "repeat")


def _foreign_ranks(repeat: dict[str, Any], node_rank: int, devices: int) -> dict[str, Any] | None:
    """A failed result when an ok host repeat does not hold exactly its own ``devices`` ranks."""
    if repeat["status"] != "ok":
        return None
    nodes = [replica["node_rank"] for replica in replicas(repeat)]
    if nodes == [node_rank] * devices:
        return None
    return {"status": "failed", "error": f"node {node_rank}'s result holds ranks of nodes {sorted(set(nodes))} "
                                        f"({len(nodes)} ranks); expected its own {devices}"}


def join_repeat(present: list[dict[str, Any]], devices: int) -> dict[str, Any]:
    """One repeat from every host's (node order): every host's ranks, the worst status, the slowest timing.

    ``devices``: the ranks each host must bring (per-host devices of the case)."""
    present = [_foreign_ranks(repeat, node, devices) or repeat for node, repeat in enumerate(present)]
    worst = max(present, key=lambda repeat: STATUS_ORDER.index(repeat["status"]))
    joined: dict[str, Any] = {"index": present[0].get("index", 0), "status": worst["status"],
                              "error": worst.get("error"), "wall_s": max(r.get("wall_s") or 0.0 for r in present),
                              "host_results": [{key: r.get(key) for key in ("status", "error", "exit_code",
                                                                             "stderr_tail", "host", "node_rank")}
                                               for r in present]}
    if worst["status"] != "ok":
        return joined
    ranks = [{k: v for k, v in process.items() if k != "ranks"} for r in present for process in rank_processes(r)]
    slowest = max(present, key=lambda r: statistics.median(r["timing"]["samples_s"]))
    base = {key: value for key, value in slowest.items() if key not in ("ranks", "index", "host_results")}
    return {**base, **joined, "ranks": ranks}


def join_case(case_id: str, host_cases: list[dict[str, Any] | None], environment: dict[str, Any]) -> dict[str, Any]:
    """One case from every host's entry of it (None where a host lacks it)."""
    first = next(case for case in host_cases if case)
    spec = CaseSpec.from_dict(first["spec"])
    count = max(len(case.get("repeats", [])) for case in host_cases if case)
    repeats = [{**join_repeat([_host_repeat(case, node, index) for node, case in enumerate(host_cases)],
                              spec.devices),
                "index": index} for index in range(count)]
    status, error = case_status(repeats)
    return {"id": case_id, "spec": first["spec"], "workload": first.get("workload"), "status": status,
            "error": error, "repeats": repeats, "metrics": case_metrics(spec, repeats, environment)}


def merge_runs(paths: list[str | os.PathLike], output: str | os.PathLike) -> dict[str, Any]:
    """Join the hosts' run files at ``paths`` into one run file at ``output``; return its data."""
    if len(paths) < 2:
        raise InvalidValue("tribench merge needs the run files of at least 2 hosts")
    inputs = {Path(path).resolve() for path in paths}
    if Path(output).resolve() in inputs:
        raise InvalidValue(f"--output {output} is one of the files to merge; write the merged file elsewhere")
    hosts = order_hosts([(str(path), load_run(path)) for path in paths])
    lead = hosts[0][1]
    environment = {**lead["environment"], "hosts": [
        {"node_rank": run["settings"]["cluster"]["node_rank"],
         "hostname": run["environment"].get("machine", {}).get("hostname"),
         "fingerprint": run["environment"].get("fingerprint"), "run_file": path, "run_id": run["run_id"]}
        for path, run in hosts]}
    settings = {**{key: value for key, value in lead["settings"].items() if key != "cluster"},
                "merged_from": [path for path, _ in hosts],  # no "cluster": a merged file is no host's file
                "merged_cluster": {key: value for key, value in lead["settings"]["cluster"].items()
                                   if key != "node_rank"}}
    merged = RunFile(Path(output), environment, settings, lead.get("tags", {}),
                     ["tribench", "merge", *map(str, paths)], new_run_id())
    ids = list(dict.fromkeys(case["id"] for _, run in hosts for case in run["cases"]))
    by_host = [{case["id"]: case for case in run["cases"]} for _, run in hosts]
    merged.data["cases"] = [join_case(case_id, [cases.get(case_id) for cases in by_host], environment)
                            for case_id in ids]
    add_scaling(merged.data["cases"], scaling=False)
    merged.data["started_at"] = min(run["started_at"] for _, run in hosts)
    states = {run.get("state") for _, run in hosts}
    merged.finish("complete" if states == {"complete"} else "interrupted")
    merged.data["finished_at"] = max((run.get("finished_at") or "") for _, run in hosts) or None
    merged.save()
    return merged.data
