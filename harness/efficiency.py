"""Hardware efficiency of a case: achieved FLOP/s, MFU, % of datasheet spec, and its roofline point.

Definitions (every figure carries its unit and source; a missing one is ``value: None`` with a reason):

* ``achieved_flops_per_s`` = the workload's analytic FLOPs per step (``suites.workloads``: conv and
  matmul multiply-adds x 2, train = 3 x forward) / the seconds per step behind the case's throughput
  (the sustained figure, ``harness.sustained``; older files: the median step time).
* ``mfu`` = achieved / the measured peak of the case's device and precision, where that peak is the
  HIGHEST dense-matmul rate any framework reached on that device and precision
  (``environment["peaks"]["entries"]``, written by ``tribench peak``): the device's achievable
  peak, so two frameworks' cases on one device are held against the same number. The precision
  is the case's (tf32, bf16, fp16). An fp32 case on a GPU is held against the fp32 peak: tribench
  runs it as IEEE fp32 in every framework (``harness.numerics``), whatever a peak entry cached
  before that policy says of its framework's defaults. Elsewhere an fp32 case is held against the
  math its framework uses for fp32 matmuls there (``fp32_case_math`` of its own peak entry: bf16
  passes on TPUs, fp32 on CPUs), so no case can beat its own reference by mode.
* ``spec_fraction`` ("% of spec") = achieved / the vendor's dense datasheet peak for the device
  (``harness.datasheet``), where the device is in that table.

For the HTML report: ``efficiency_columns(case)`` flattens these for one case (DataFrame
columns), ``roofline_point(case, run)`` places a case on the roofline (arithmetic intensity =
FLOPs / bytes moved per step, from XLA's cost analysis where ``--profile`` recorded it for a
jitted JAX step, else the analytic estimate of ``harness/traffic.py`` labelled as such), and
``roofline_ceilings(run, device, precision)`` gives the measured compute and bandwidth roofs.
Nothing here imports a framework or pandas.
"""

from __future__ import annotations

from typing import Any

from tribench.harness import datasheet

FLOPS_UNIT = "FLOP/s"
MFU_SOURCE = "achieved FLOP/s / measured peak (max over frameworks) for this device and precision"
NO_PEAKS = ("no measured peaks in this run file: run `tribench peak` on this machine first (results are cached "
            "and stored in every later run), or run with --measure-peak")


# ---------------------------------------------------------------- peaks stored in a run's environment


def peak_entries(environment: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The measured peak records a run file stores (``environment["peaks"]["entries"]``)."""
    return list(((environment or {}).get("peaks") or {}).get("entries") or [])


def reference_precision(precision: str, backend: str, device: str, entries: list[dict[str, Any]]) -> str:
    """The peak precision a case of ``precision`` is held against (see the module docstring)."""
    if precision != "fp32" or device == "gpu":  # fp32 on a GPU: IEEE fp32 by tribench's numeric policy
        return precision
    own = next((e for e in entries if e.get("backend") == backend and e.get("device") == device), None)
    return (own or {}).get("fp32_case_math", "fp32")


def device_peak(entries: list[dict[str, Any]], device: str, precision: str) -> tuple[dict[str, Any] | None, str]:
    """(the best measured matmul peak on ``device`` in ``precision`` over frameworks, "") or (None, why not)."""
    on_device = [e for e in entries if e.get("device") == device]
    measured = [(e["matmul"][precision]["value"], e) for e in on_device
                if (e.get("matmul", {}).get(precision) or {}).get("value")]
    if not measured:
        reasons = sorted({f"{e['backend']}: {e['matmul'][precision]['reason']}" for e in on_device
                          if (e.get("matmul", {}).get(precision) or {}).get("reason")})
        why = "; ".join(reasons) if reasons else f"no framework's peak was measured on {device}"
        return None, f"no measured {precision} matmul peak on {device} ({why})"
    value, entry = max(measured, key=lambda pair: pair[0])
    return {"value": value, "unit": FLOPS_UNIT, "backend": entry["backend"], "precision": precision,
            "device": device, "device_name": entry.get("device_name"),
            "source": entry["matmul"][precision].get("source", "")}, ""


def device_bandwidth(entries: list[dict[str, Any]], device: str) -> tuple[dict[str, Any] | None, str]:
    """The best measured copy bandwidth on ``device`` over frameworks, or (None, why not)."""
    measured = [(e["bandwidth"]["value"], e) for e in entries
                if e.get("device") == device and (e.get("bandwidth") or {}).get("value")]
    if not measured:
        return None, f"no measured memory bandwidth on {device}"
    value, entry = max(measured, key=lambda pair: pair[0])
    return {"value": value, "unit": "B/s", "backend": entry["backend"], "source": entry["bandwidth"].get("source")}, ""


def device_name(environment: dict[str, Any] | None, backend: str, device: str) -> str | None:
    """The reported name of a case's device: a peak record's, else its framework's, else NVML's first GPU."""
    environment = environment or {}
    for entry in peak_entries(environment):
        if entry.get("device") == device and entry.get("device_name"):
            return entry["device_name"]
    named = ((environment.get("frameworks") or {}).get(backend) or {}).get("device_names", {}).get(device)
    if named:
        return named
    gpus = ((environment.get("accelerators") or {}).get("nvidia") or {}).get("devices") or []
    return gpus[0].get("name") if device == "gpu" and gpus else None


# ---------------------------------------------------------------- a case's efficiency metrics


def _absent(unit: str, reason: str, source: str) -> dict[str, Any]:
    return {"value": None, "unit": unit, "source": source, "reason": reason}


ANALYTIC_FLOPS = "analytic FLOPs per step (suites.workloads)"


def case_efficiency(spec: dict[str, Any], flops_per_step: float | None, step_s: float,
                    environment: dict[str, Any] | None, flops_source: str = ANALYTIC_FLOPS,
                    flops_reason: str | None = None) -> dict[str, dict[str, Any]]:
    """``achieved_flops_per_s``, ``mfu`` and ``spec_fraction`` of one ok case (``spec`` as in the run file).

    ``step_s`` is the seconds per step behind the case's throughput: the sustained figure where the
    run measured one (``harness.sustained``), else the median synced step. ``flops_source`` says where the
    FLOPs per step came from; without them (None) every figure is unavailable with ``flops_reason``.
    """
    source = f"{flops_source} / the step time behind the throughput"
    if flops_per_step is None:
        why = flops_reason or "no FLOPs per step"
        return {"achieved_flops_per_s": _absent(FLOPS_UNIT, why, source), "mfu": _absent("fraction", why, MFU_SOURCE),
                "spec_fraction": _absent("fraction", why, "achieved FLOP/s / datasheet dense peak")}
    achieved = flops_per_step / step_s
    metrics = {"achieved_flops_per_s": {"value": achieved, "unit": FLOPS_UNIT, "source": source}}
    entries = peak_entries(environment)
    precision = reference_precision(spec["precision"], spec["backend"], spec["device"], entries)
    if not entries:
        metrics["mfu"] = _absent("fraction", NO_PEAKS, MFU_SOURCE)
    else:
        peak, why = device_peak(entries, spec["device"], precision)
        metrics["mfu"] = (_absent("fraction", why, MFU_SOURCE) if peak is None else {
            "value": achieved / peak["value"], "unit": "fraction", "source": MFU_SOURCE,
            "peak_flops_per_s": peak["value"], "peak_precision": precision, "peak_backend": peak["backend"],
            "peak_source": peak["source"]})
    name = device_name(environment, spec["backend"], spec["device"])
    spec_peak, spec_source = datasheet.spec_flops(name, precision)
    metrics["spec_fraction"] = (_absent("fraction", spec_source, "achieved FLOP/s / datasheet dense peak")
                                if spec_peak is None else {
        "value": achieved / spec_peak, "unit": "fraction", "source": f"achieved FLOP/s / {spec_source}",
        "spec_flops_per_s": spec_peak, "spec_precision": precision, "device_name": name})
    return metrics


def efficiency_columns(case: dict[str, Any]) -> dict[str, Any]:
    """Flat columns for one case (for a DataFrame or a table); NaN-free: None with ``*_reason`` beside it."""
    metrics = case.get("metrics") or {}
    columns: dict[str, Any] = {}
    for name, column in (("achieved_flops_per_s", "achieved_flops_per_s"), ("mfu", "mfu"),
                         ("spec_fraction", "spec_fraction")):
        metric = metrics.get(name) or {}
        columns[column] = metric.get("value")
        columns[f"{column}_reason"] = metric.get("reason") if metric else "not computed for this case"
    columns["mfu_peak_flops_per_s"] = (metrics.get("mfu") or {}).get("peak_flops_per_s")
    columns["mfu_peak_backend"] = (metrics.get("mfu") or {}).get("peak_backend")
    return columns


# ---------------------------------------------------------------- roofline


def case_bytes(case: dict[str, Any]) -> tuple[float, float, str]:
    """(FLOPs, bytes) per step and where they come from: XLA cost analysis if profiled, else analytic."""
    from tribench.harness import traffic

    cost = (((case.get("metrics") or {}).get("profile") or {}).get("extra") or {}).get("xla_cost_analysis") or {}
    if cost.get("bytes_accessed") and cost.get("flops"):
        return cost["flops"], cost["bytes_accessed"], "XLA cost analysis (flops / bytes accessed of the jitted step)"
    spec = case["spec"]
    flops = case["workload"]["flops_per_step"]["value"]
    if flops is None or not traffic.has_estimate(spec["workload"]):
        return flops, None, "no estimate of the bytes a step moves for this workload (no architecture to derive it)"
    moved = traffic.bytes_per_step(spec["workload"], spec["size"], spec["mode"], spec["batch_size"],
                                   spec["precision"], spec.get("prompt"), spec.get("new_tokens"))
    return flops, moved, f"analytic FLOPs / {traffic.SOURCE}"


def roofline_ceilings(run: dict[str, Any], device: str, precision: str) -> dict[str, Any]:
    """The measured roofs of ``device``: compute (best matmul peak in ``precision``), bandwidth, ridge point."""
    entries = peak_entries(run.get("environment"))
    peak, peak_why = device_peak(entries, device, precision)
    bandwidth, bandwidth_why = device_bandwidth(entries, device)
    ridge = peak["value"] / bandwidth["value"] if peak and bandwidth else None
    return {"device": device, "precision": precision, "peak_flops_per_s": peak and peak["value"],
            "peak_reason": peak_why or None, "bandwidth_bytes_per_s": bandwidth and bandwidth["value"],
            "bandwidth_reason": bandwidth_why or None, "ridge_flop_per_byte": ridge}


def roofline_point(case: dict[str, Any], run: dict[str, Any]) -> dict[str, Any] | None:
    """Where an ok case sits on its device's roofline, or None for a case without metrics.

    Returns ``arithmetic_intensity`` (FLOP/byte) with ``intensity_source`` ("XLA cost analysis ..." or
    "analytic ... estimate"), ``achieved_flops_per_s``, the device's measured roofs
    (``roofline_ceilings``), ``attainable_flops_per_s`` = min(peak, intensity x bandwidth) and
    ``bound`` ("memory" left of the ridge point, "compute" right of it; None without both roofs).
    """
    metrics = case.get("metrics") or {}
    if "achieved_flops_per_s" not in metrics:
        return None
    spec = case["spec"]
    flops, moved, source = case_bytes(case)
    if moved is None:
        return None
    intensity = flops / moved
    precision = (metrics.get("mfu") or {}).get("peak_precision") or reference_precision(
        spec["precision"], spec["backend"], spec["device"], peak_entries(run.get("environment")))
    roofs = roofline_ceilings(run, spec["device"], precision)
    attainable = bound = None
    if roofs["peak_flops_per_s"] and roofs["bandwidth_bytes_per_s"]:
        attainable = min(roofs["peak_flops_per_s"], intensity * roofs["bandwidth_bytes_per_s"])
        bound = "memory" if intensity < roofs["ridge_flop_per_byte"] else "compute"
    return {"case_id": case["id"], "arithmetic_intensity": intensity, "intensity_unit": "FLOP/byte",
            "intensity_source": source, "bytes_per_step": moved,
            "achieved_flops_per_s": metrics["achieved_flops_per_s"]["value"],
            "attainable_flops_per_s": attainable, "bound": bound, **{f"roof_{k}": v for k, v in roofs.items()}}
