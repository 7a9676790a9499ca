"""Number formatting shared by the report formats (HTML, markdown, terminal): plain text, no markup."""

from __future__ import annotations

import math
from typing import Any


def missing(value: Any) -> bool:
    """None or NaN (pandas turns a missing reading into NaN)."""
    return value is None or (isinstance(value, float) and value != value)


def number(value: Any) -> str:
    """About four significant digits, thousands separated, never in exponent form: 14,990 / 235.4 / 0.01234."""
    if missing(value):
        return "n/a"
    if value == 0:
        return "0"
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def whole(value: Any) -> str:
    """A count or batch size as text: 32.0 -> '32'; missing -> 'n/a'."""
    if missing(value):
        return "n/a"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def ci_text(low: Any, high: Any) -> str:
    """A throughput CI as 'low – high', or why there is none."""
    if missing(low) or missing(high):
        return "n/a (too few steps)"
    return f"{number(low)} – {number(high)}"


def ci_basis_text(basis: Any, processes: Any) -> str:
    """What a case's CI is made from (harness.process_stats), in a few words for a table cell.

    "1 process only": the within-process CI of one process, which says nothing of how much fresh
    processes differ; "pooled steps (old file)": a run file from before tribench 0.2, whose CI came
    from steps pooled across processes and is several times too narrow.
    """
    if missing(basis):
        return "pooled steps (old file)"
    if basis == "within-process":
        return "1 process only"
    return f"{whole(processes)} processes"


CI_BASIS_MEANING = {
    "pooled steps (old file)": "written before tribench measured across processes: this CI pools every step and "
                               "leaves out how much fresh processes differ, so it is several times too narrow",
    "1 process only": "the CI of one process's own median: how much fresh processes differ is unknown; run "
                      "--processes 3 or more",
}


def ci_basis_meaning(text: str) -> str:
    return CI_BASIS_MEANING.get(text, "a 95% t-interval across the processes' median step times")


def quality_text(step: dict[str, Any]) -> str:
    """The process flags of a case on one line (``quality_flags``); '' when none."""
    return "; ".join(quality_flags(step))


def quality_flags(step: dict[str, Any]) -> list[str]:
    """The process flags of a case, each short enough for a table cell.

    "k/n not converged": k of the n processes in the estimate ran out of time or steps before their
    own CI met its target; "not steady": their warm-up never settled; "disturbed": the OS or their
    own step times showed a disturbed machine (left out of the estimate while two or more undisturbed ones
    remain; else kept, so that the CI stays one across processes).
    """
    quality = step.get("quality") or {}
    used = quality.get("processes")
    flags = [f"{quality[key]}/{used} {label}" for key, label in (("not_converged", "not converged"),
                                                                 ("not_steady", "not steady"))
             if quality.get(key)]
    if quality.get("disturbed"):
        kept = "kept: too few calm" if quality.get("disturbed_used") else "left out"
        flags.append(f"{quality['disturbed']}/{quality.get('ok_processes')} disturbed, {kept}")
    return flags


def execution_legend(cases: list[dict[str, Any]]) -> list[str]:
    """One line per compile mode in ``cases``: what each backend ran under it (the cases' ``execution``).

    Cases of old run files carry no ``execution`` and add nothing: a legend never guesses.
    """
    meanings: dict[str, dict[str, str]] = {}
    for case in cases:
        spec, execution = case.get("spec") or {}, case.get("execution")
        if execution and spec.get("compile") and spec.get("backend"):
            meanings.setdefault(spec["compile"], {}).setdefault(spec["backend"], execution)
    return [f"{mode}: " + "; ".join(f"{backend} = {text}" for backend, text in backends.items())
            for mode, backends in meanings.items()]


def threads_line(run: dict[str, Any]) -> str | None:
    """The run's CPU thread policy in one line (``settings.threads``, ``harness.threads``); None for old files."""
    threads = (run.get("settings") or {}).get("threads")
    if not threads:
        return None
    if "intra_op" not in threads:
        return f"threads: {threads.get('policy', 'not recorded')}"
    notes = "; ".join(threads.get("notes") or [])
    line = (f"threads: intra-op {threads['intra_op']}, inter-op {threads['inter_op']} per process, pinned to CPUs "
            f"{threads['worker_cpus']} ({threads.get('source', '')})")
    return line + (f"; {notes}" if notes else "")


def threads_lines(runs: list[dict[str, Any]]) -> list[str]:
    """Each distinct run's thread policy line, in order."""
    return list(dict.fromkeys(line for line in map(threads_line, runs) if line))


SUSTAINED_LEGEND = ("throughput: what a loop sustains (blocks of steps dispatched back to back, one sync per block); "
                    "p50/p99: latency of single synced steps")
SYNCED_LEGEND = "throughput: batch size / median synced step time (no sustained measurement in this run)"


def throughput_legend(cases: list[dict[str, Any]]) -> list[str]:
    """What the throughput of ``cases`` is (``metrics.throughput.basis``, ``harness.sustained``): one line per basis."""
    bases = {((case.get("metrics") or {}).get("throughput") or {}).get("basis") for case in cases
             if case.get("status") == "ok"}
    return ([SUSTAINED_LEGEND] if "sustained" in bases else []) + ([SYNCED_LEGEND] if "synced-steps" in bases else [])
