"""Data-parallel figures from the ranks' results: global throughput, per-rank summaries, efficiency, scaling.

A case's "ranks" are its data-parallel replicas, one per device (``harness.distributed`` launches
them): each has its device, its host (node rank), the process that timed it, its throughput
(per-device batch / median step) and its step-time summary; the global throughput is the sum over
replicas. On a multi-host run every host's file holds only its own replicas until ``tribench merge``
joins them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tribench.core.spec import CaseSpec
from tribench.harness.efficiency import case_efficiency
from tribench.harness.stats import summarize
from tribench.suites import workloads

SCALING_SOURCE = "global throughput / (devices x the same point's 1-device throughput in this run)"


def rank_processes(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The processes that timed a data-parallel repeat: its ranks (one per device, or one per host after a
    merge), or the result itself when one process drove every device."""
    return result.get("ranks") or [result]


def replicas(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every replica (device) of one repeat, in rank order: its device, node rank, process and samples."""
    return [{"device": device, "node_rank": process.get("node_rank", 0), "process": index,
             "devices_in_process": len(process.get("replica_devices") or [None]),
             "samples_s": process["timing"]["samples_s"]}
            for index, process in enumerate(rank_processes(result))
            for device in process.get("replica_devices") or [None]]


def _replica_source(shared: int) -> str:
    if shared > 1:
        return (f"per-device batch_size / median step time of the process driving this device with "
                f"{shared - 1} other(s) in one synchronous SPMD step (their step time is the same)")
    return "per-device batch_size / rank median step time"


def global_metrics(spec: CaseSpec, ok: list[dict[str, Any]]) -> dict[str, Any]:
    """Global throughput (sum over replicas of per-device batch / median step), per-rank summaries and
    the slowest rank; each replica's samples pooled over the case's ok repeats.

    A host's own run file of a multi-host case holds only that host's replicas: its figures say so
    (``complete`` false) until ``tribench merge`` has joined every host's.
    """
    layout = replicas(ok[0])
    pooled = [[s for r in ok for s in replicas(r)[index]["samples_s"]] for index in range(len(layout))]
    summaries = [summarize(samples) for samples in pooled]
    rates = [spec.batch_size / summary["median"] for summary in summaries]
    slowest = max(range(len(layout)), key=lambda rank: summaries[rank]["median"])
    complete = len(layout) == spec.total_devices
    partial = "" if complete else (f"; this host's {len(layout)} of {spec.total_devices} ranks only: merge every "
                                   "host's run file (tribench merge) for the global figure")
    return {
        "throughput": {"value": sum(rates), "unit": "samples/s",
                       "source": f"sum over ranks of per-device batch_size / rank median step time{partial}"},
        "ranks": [{"rank": rank, "device": layout[rank]["device"], "node_rank": layout[rank]["node_rank"],
                   "process": layout[rank]["process"],
                   "throughput": {"value": rates[rank], "unit": "samples/s",
                                  "source": _replica_source(layout[rank]["devices_in_process"])},
                   "step_time": {"unit": "s", **summaries[rank]}} for rank in range(len(layout))],
        "slowest_rank": {"value": slowest, "unit": "rank", "source": "largest median step time (first of ties)"},
        "devices": {"value": spec.total_devices, "unit": "devices", "nodes": spec.nodes,
                    "per_node": spec.devices, "launch": _launch(ok[0]),
                    "source": "--devices per node x --nodes"},
        "batch_size": {"per_device": spec.batch_size, "global": spec.batch_size * spec.total_devices,
                       "unit": "samples", "source": "per-device batch x devices"},
        "complete": {"value": complete, "source": f"{len(layout)} of {spec.total_devices} ranks in this file"},
    }


def _launch(result: dict[str, Any]) -> str:
    """As recorded at launch; results written before it was recorded: torch ranks, or one JAX/TF process."""
    return result.get("launch") or ("process-per-device" if result.get("ranks") else "single-process")


def data_parallel_efficiency(spec: CaseSpec, throughput: float, ranks: list[dict[str, Any]],
                             environment: dict[str, Any] | None) -> dict[str, Any]:
    """Achieved FLOP/s and MFU per physical device: the FLOPs of ``throughput`` (the ranks in this file)
    shared over the devices that did them. ``ranks``: ``global_metrics``' per-rank entries.

    GPUs: one per rank. CPU "devices" (forced host devices, logical CPUs, gloo ranks) share their host's
    processor, so there each host present counts as one device (a host's own file: one; merged: M).
    """
    hosts = len({rank["node_rank"] for rank in ranks})
    physical = hosts if spec.device == "cpu" else len(ranks)
    flops = workloads.get(spec.workload).flops_per_step(spec.size, spec.mode, spec.batch_size)
    metrics = case_efficiency(spec.to_dict(), flops / physical, spec.batch_size / throughput, environment)
    what = (f"the CPU of each of the {hosts} host(s), which all its ranks share" if spec.device == "cpu"
            else f"each of the {physical} devices")
    metrics["achieved_flops_per_s"]["source"] = (f"analytic FLOPs per sample (suites.workloads) x global throughput, "
                                                 f"per physical device ({what})")
    return metrics


def add_scaling(cases: list[dict[str, Any]], scaling: bool) -> None:
    """Each data-parallel case's ``scaling_efficiency`` against its 1-device point in the same run."""
    single = {CaseSpec.from_dict(case["spec"]).id: case for case in cases
              if CaseSpec.from_dict(case.get("spec", {})).total_devices == 1}
    for case in cases:
        spec = CaseSpec.from_dict(case["spec"])
        if spec.total_devices <= 1 or not case.get("metrics"):
            continue
        base = single.get(replace(spec, devices=1, nodes=1).id)
        base_value = ((base or {}).get("metrics") or {}).get("throughput", {}).get("value")
        entry: dict[str, Any] = {"value": None, "unit": "fraction", "source": SCALING_SOURCE}
        if not case["metrics"].get("complete", {}).get("value", True):
            entry["reason"] = "this file holds one host's ranks only; merge the hosts' run files (tribench merge)"
        elif base_value:
            entry["value"] = case["metrics"]["throughput"]["value"] / (spec.total_devices * base_value)
            entry["baseline_case"] = base["id"]
        elif spec.nodes > 1:
            entry["reason"] = ("a multi-host run has no 1-device case; compare with the 1-device case of a "
                               "one-host --scaling run")
        elif not scaling:
            entry["reason"] = "no 1-device case of this point in the run (use --scaling)"
        else:
            entry["reason"] = f"the 1-device case of this point did not succeed ({(base or {}).get('status')})"
        case["metrics"]["scaling_efficiency"] = entry
