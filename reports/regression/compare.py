"""A/B comparison of two sets of cases: join, test, and a verdict per case and metric.

The process is the unit (``reports.regression.stats_tests``): each side of a case contributes one value per
process (its median step time, its p99, its compile time, its energy per sample), and a metric's
test is a t-test on their logs. Thresholds are on the log ratio, so a 5% threshold means the same
for higher- and lower-is-better metrics. Throughput and p50 step time are one test (the same
per-process medians, one counted in the multiplicity correction); one-sided p-values are adjusted
with Benjamini-Hochberg across the comparison's gated tests, the "worse" and "better" directions
each on their own.

* ``regressed`` / ``improved``: the one-sided test in that direction is significant after the
  correction AND the estimate is past the threshold on that side;
* ``unchanged``: the whole CI lies within +-threshold;
* ``inconclusive``: anything else: too noisy to tell. Every tested verdict states its minimum
  detectable change (the smallest worse-side change it would catch with 95% power) and about how
  many processes per side would resolve ``resolve`` (default twice the threshold).

A side with one process has no between-process spread; with one process on each side nothing
can be judged, and the metric is ``inconclusive`` with that reason. The p99 and compile time
(one reading per process) are gated only when both sides have ``MIN_TAIL_PROCESSES`` processes
(and, for the p99, ``MIN_TAIL_STEPS`` steps in each), else reported but not gated.
Peak memory readings are compared with the threshold only (allocator peaks barely vary), and
``inconclusive`` when one side's processes disagree by more than the threshold.

Case-level outcomes that come before any metric: ``new``, ``missing``,
``failed`` (failed or timed out on either side) and ``not-comparable`` (skipped
on a side, spec differs, or the environment fingerprint differs; the reason
names each differing ``fingerprint_inputs`` field).

The joining is one function, ``join``, over two ``Side``s; a side is a set of
cases (a whole run file, or the cases of one environment label inside a run).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tribench.core.errors import TribenchError
from tribench.reports.regression.compare_metrics import (
    GENERATION_METRICS,
    METRICS,
    Metric,
    Thresholds,
    generation_values,
    reading_value,
    step_samples,
)
from tribench.reports.share_safe import redact_run

if TYPE_CHECKING:
    from tribench.harness.process_stats import ProcessTest

VERDICTS = ("regressed", "improved", "unchanged", "inconclusive", "not-comparable", "new", "missing", "failed")
FAIL_ON_CHOICES = ("inconclusive", "failed", "missing", "not-comparable")
DEFAULT_FAIL_ON = ("inconclusive",)  # a CI gate that cannot tell must not pass silently (--allow-inconclusive)
CORRECTION = "benjamini-hochberg, one-sided, per direction"
MIN_TAIL_PROCESSES = 5   # per side, before a p99 or a one-reading metric takes part in the verdict
MIN_TAIL_STEPS = 100     # per process, before its p99 is more than its largest few steps
MAX_DETECTABLE_LOG = math.log(100.0)  # a minimum detectable change past 100x is stated as "none detectable"
IGNORED_SPEC_KEYS = ("env",)  # an environment label tells the sides apart; it is not a difference


class CompareInputError(TribenchError):
    """Inputs that cannot be compared (same file twice, nothing in common, ...)."""


@dataclass(frozen=True)
class Side:
    """One side of a comparison: the run it came from and its cases by join key."""

    label: str
    path: str
    run: dict[str, Any]
    cases: dict[str, dict[str, Any]]
    env: str | None = None

    def describe(self) -> dict[str, Any]:
        environment = self.run.get("environment", {})
        git = environment.get("git", {})
        return {"label": self.label, "path": self.path, "run_id": self.run.get("run_id"), "env": self.env,
                "started_at": self.run.get("started_at"), "state": self.run.get("state"),
                "git_commit": git.get("commit"), "git_dirty": git.get("dirty"),
                "fingerprint": environment.get("fingerprint"), "cases": len(self.cases)}


def case_id(case: dict[str, Any]) -> str:
    return case["id"]


def side_from_run(run: dict[str, Any], path: str, label: str, env: str | None = None,
                  key: Callable[[dict[str, Any]], str] = case_id) -> Side:
    """The cases of a run (only those whose spec carries ``env``, when given), keyed for joining."""
    cases = [case for case in run["cases"] if env is None or case.get("spec", {}).get("env") == env]
    return Side(label, path, run, {key(case): case for case in cases}, env)


def join(base: Side, head: Side) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
    """Pair the cases of two sides by key: base order first, then cases only in head."""
    pairs: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = [
        (key, case, head.cases.get(key)) for key, case in base.cases.items()]
    pairs += [(key, None, case) for key, case in head.cases.items() if key not in base.cases]
    return pairs


# ---- environment and spec differences -----------------------------------------------------------

def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat if flat or not prefix else {prefix: {}}


def _allowed(key: str, allowed: tuple[str, ...]) -> bool:
    return any(key == name or key.startswith(name + ".") for name in allowed)


def fingerprint_differences(base_env: dict[str, Any], head_env: dict[str, Any], backend: str | None = None,
                            allowed: tuple[str, ...] = ()) -> list[str]:
    """What differs between two environments' fingerprint inputs, as ``field: base -> head`` lines.

    For a case of ``backend``, other frameworks' versions are left out (they cannot affect it).
    """
    base_inputs, head_inputs = base_env.get("fingerprint_inputs"), head_env.get("fingerprint_inputs")
    if base_inputs is None or head_inputs is None:
        if base_env.get("fingerprint") == head_env.get("fingerprint") or _allowed("fingerprint", allowed):
            return []
        return [f"fingerprint: {base_env.get('fingerprint')!r} -> {head_env.get('fingerprint')!r} "
                "(inputs not recorded)"]
    base_flat, head_flat = _flatten(base_inputs), _flatten(head_inputs)
    lines = []
    for key in sorted(set(base_flat) | set(head_flat)):
        if backend and key.startswith("frameworks.") and key != f"frameworks.{backend}":
            continue
        if _allowed(key, allowed):
            continue
        if base_flat.get(key) != head_flat.get(key):
            lines.append(f"{key}: {base_flat.get(key)!r} -> {head_flat.get(key)!r}")
    return lines


def spec_differences(base_spec: dict[str, Any], head_spec: dict[str, Any]) -> list[str]:
    keys = sorted((set(base_spec) | set(head_spec)) - set(IGNORED_SPEC_KEYS))
    return [f"{key}: {base_spec.get(key)!r} -> {head_spec.get(key)!r}" for key in keys
            if base_spec.get(key) != head_spec.get(key)]


# ---- results ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CompareSettings:
    thresholds: Thresholds = field(default_factory=Thresholds)
    alpha: float = 0.05
    confidence: float = 0.95
    allow_differences: tuple[str, ...] = ()
    gate_compile: bool = False
    resolve: float | None = None  # the change the process-count advice aims at (default: 2 x threshold)

    def gated(self, metric: Metric) -> bool:
        return metric.gated or (metric.name == "compile_time" and self.gate_compile)

    def resolve_for(self, metric: str) -> float:
        return self.resolve if self.resolve is not None else 2.0 * self.thresholds.of(metric)


@dataclass
class MetricResult:
    metric: str
    label: str
    direction: str
    unit: str
    gated: bool
    threshold: float
    basis: str  # what was compared: "step samples", "per-process medians", "reading", ...
    base: float | None = None
    head: float | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None         # one-sided, "head is worse"
    p_adjusted: float | None = None
    p_better: float | None = None        # one-sided, "head is better"
    p_better_adjusted: float | None = None
    test: str | None = None
    family: str | None = None            # metrics sharing one test share a family (throughput and p50)
    n_base: int | None = None
    n_head: int | None = None
    spread: float | None = None          # stdev of the per-process logs (~ between-process CV)
    min_detectable: float | None = None  # smallest worse-side change caught with 95% power (fraction)
    resolve: float | None = None
    processes_needed: int | None = None  # per side, to bring min_detectable down to ``resolve``
    verdict: str = "inconclusive"
    reason: str = ""
    log_ratio_ci: tuple[float, float] | None = field(default=None, repr=False)
    standard_error: float | None = field(default=None, repr=False)
    dof: float | None = field(default=None, repr=False)

    @property
    def change(self) -> float | None:
        return None if self.ratio is None else self.ratio - 1.0


@dataclass
class CaseResult:
    key: str
    id: str
    verdict: str
    reason: str = ""
    base_status: str | None = None
    head_status: str | None = None
    metrics: list[MetricResult] = field(default_factory=list)


@dataclass
class Comparison:
    base: dict[str, Any]
    head: dict[str, Any]
    settings: CompareSettings
    cases: list[CaseResult]
    tests: int = 0
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {verdict: sum(case.verdict == verdict for case in self.cases) for verdict in VERDICTS}

    def exit_code(self, fail_on: tuple[str, ...] = DEFAULT_FAIL_ON) -> int:
        """0 fine, 1 a regression (or a --fail-on category that maps to 1), 3 inconclusive (by default)."""
        counts = self.counts()
        counts["failed"] = sum(case.verdict == "failed" and case.head_status in ("failed", "timeout")
                               for case in self.cases)  # a case fixed in head does not fail the check
        if counts["regressed"] or any(counts[name] for name in fail_on if name != "inconclusive"):
            return 1
        if "inconclusive" in fail_on and counts["inconclusive"]:
            return 3
        return 0

    def to_dict(self, fail_on: tuple[str, ...] = DEFAULT_FAIL_ON) -> dict[str, Any]:
        settings = self.settings
        return {
            "kind": "tribench-verdict",
            "schema_version": 1,
            "base": self.base,
            "head": self.head,
            "settings": {"threshold": settings.thresholds.default,
                         "thresholds": {name: settings.thresholds.of(name) for name in METRICS},
                         "alpha": settings.alpha, "correction": CORRECTION, "tests": self.tests,
                         "confidence": settings.confidence, "unit": "process",
                         "min_tail_processes": MIN_TAIL_PROCESSES,
                         "allow_differences": list(settings.allow_differences),
                         "gated_metrics": [m.name for m in METRICS.values() if settings.gated(m)],
                         "fail_on": list(fail_on)},
            "summary": self.counts(),
            "exit_code": self.exit_code(fail_on),
            "warnings": self.warnings,
            "cases": [{**{k: v for k, v in asdict(case).items() if k != "metrics"},
                       "metrics": [{**{k: v for k, v in asdict(metric).items() if k not in _INTERNAL},
                                    "change": metric.change} for metric in case.metrics]}
                      for case in self.cases],
        }


_INTERNAL = ("log_ratio_ci", "standard_error", "dof")


# ---- estimating each metric ---------------------------------------------------------------------

def _p99(samples: list[float]) -> float:
    import numpy as np

    return float(np.percentile(samples, 99))


def sustained_on_both(base: dict[str, Any], head: dict[str, Any]) -> bool:
    """Whether throughput is compared on what a loop sustained (``harness.sustained``): only when every judged
    process of both sides measured it; else both sides fall back to batch / median synced step, like for like."""
    from tribench.harness.sustained import all_sustained
    from tribench.reports.regression.compare_metrics import ok_repeats

    return all_sustained(ok_repeats(base)) and all_sustained(ok_repeats(head))


def per_process_values(case: dict[str, Any], metric: Metric, sustained: bool = False) -> tuple[list[float], str | None]:
    """A case's per-process values of a tested metric, or why a process has none to give."""
    runs = step_samples(case)
    if metric.name == "throughput" and sustained:
        from tribench.harness.sustained import process_step_s
        from tribench.reports.regression.compare_metrics import ok_repeats

        return [float(case["spec"]["batch_size"]) / process_step_s(run) for run in ok_repeats(case)], None
    if metric.name == "throughput":
        return [float(case["spec"]["batch_size"]) / statistics.median(run) for run in runs], None
    if metric.name == "latency_p50":
        return [statistics.median(run) for run in runs], None
    if metric.name == "latency_p99":
        short = min((len(run) for run in runs), default=0)
        note = None if short >= MIN_TAIL_STEPS else f"a process has {short} steps (< {MIN_TAIL_STEPS}): its p99 is " \
                                                   "little more than its slowest step"
        return [_p99(run) for run in runs], note
    if metric.name in GENERATION_METRICS:
        return generation_values(case, metric.name), None
    value = reading_value(case, metric.name)
    return [v for v in value.per_process if v > 0], None


def _tail_gate(metric: Metric, base_values: list[float], head_values: list[float], note: str | None,
               settings: CompareSettings) -> tuple[bool, str]:
    """Whether a p99 or one-reading metric may gate, and if not, why."""
    if not settings.gated(metric):
        return False, ""
    if metric.name in ("throughput", "latency_p50", "energy_per_sample"):
        return True, ""
    fewest = min(len(base_values), len(head_values))
    if fewest < MIN_TAIL_PROCESSES:
        return False, f"not gated: {fewest} process(es) on a side (< {MIN_TAIL_PROCESSES}) cannot judge a " \
                      f"{metric.label}"
    if note:
        return False, f"not gated: {note}"
    return True, ""


def _from_test(result: MetricResult, test: ProcessTest, base_values: list[float], head_values: list[float]) -> None:
    """Fill a metric's estimate, CI and one-sided p-values from its process test."""
    from tribench.reports.regression.stats_tests import geometric_mean

    higher_better = result.direction == "higher"
    result.base, result.head = geometric_mean(base_values), geometric_mean(head_values)
    result.ratio = test.ratio
    result.ci_low, result.ci_high = math.exp(test.ci_low), math.exp(test.ci_high)
    result.log_ratio_ci = (test.ci_low, test.ci_high)
    result.p_value = test.p_decrease if higher_better else test.p_increase
    result.p_better = test.p_increase if higher_better else test.p_decrease
    result.test, result.n_base, result.n_head, result.spread = test.test, test.n_base, test.n_head, test.spread
    result.standard_error, result.dof = test.standard_error, test.dof


def _tested_result(metric: Metric, base: dict[str, Any], head: dict[str, Any],
                   settings: CompareSettings) -> MetricResult | None:
    """A metric judged on per-process values (None when neither side measured it)."""
    from tribench.harness.process_stats import process_test

    sustained = metric.name in ("throughput", "latency_p50") and sustained_on_both(base, head)
    (base_values, base_note), (head_values, head_note) = per_process_values(base, metric, sustained), \
        per_process_values(head, metric, sustained)
    if not base_values and not head_values:
        return None
    gated, why_not = _tail_gate(metric, base_values, head_values, base_note or head_note, settings)
    # p50 is throughput's own test (the same per-process medians) unless throughput is the sustained figure
    family = "throughput" if metric.name == "throughput" or (metric.name == "latency_p50" and not sustained) \
        else metric.name
    basis = ("per-process sustained throughput" if sustained and metric.name == "throughput"
             else f"per-process {metric.statistic if metric.kind == 'timed' else 'readings'}")
    result = MetricResult(metric.name, metric.label, metric.direction, metric.unit, gated,
                          settings.thresholds.of(metric.name), basis,
                          family=family, n_base=len(base_values), n_head=len(head_values),
                          resolve=settings.resolve_for(metric.name))
    if not base_values or not head_values:
        side = "base" if not base_values else "head"
        result.verdict, result.reason = "not-comparable", f"not measured in {side}"
        return result
    if len(base_values) + len(head_values) < 3:
        result.reason = ("one process per side: the between-process spread is unknown, so no change can be told "
                         "from noise; run 3 or more processes per case (tribench run --processes 3)")
        return result
    _from_test(result, process_test(base_values, head_values, settings.confidence), base_values, head_values)
    result.reason = why_not
    return result


def _reading_result(metric: Metric, base: dict[str, Any], head: dict[str, Any],
                    settings: CompareSettings) -> MetricResult | None:
    base_value, head_value = reading_value(base, metric.name), reading_value(head, metric.name)
    result = MetricResult(metric.name, metric.label, metric.direction, metric.unit, settings.gated(metric),
                          settings.thresholds.of(metric.name), "reading (threshold only)")
    if base_value.value is None and head_value.value is None:
        return None  # not measured on either side (e.g. device memory on a CPU): nothing to say
    if base_value.value is None or head_value.value is None:
        side, value = ("head", head_value) if head_value.value is None else ("base", base_value)
        result.verdict, result.reason = "not-comparable", f"measured on one side only ({side}: {value.reason})"
        return result
    if base_value.source != head_value.source:
        result.verdict = "not-comparable"
        result.reason = f"different sources: {base_value.source!r} -> {head_value.source!r}"
        return result
    result.base, result.head = base_value.value, head_value.value
    result.n_base, result.n_head = len(base_value.per_process) or 1, len(head_value.per_process) or 1
    result.ratio = head_value.value / base_value.value if base_value.value else None
    result.verdict, result.reason = classify_reading(result, base_value.per_process, head_value.per_process)
    return result


# ---- verdicts -----------------------------------------------------------------------------------

def _percent(value: float) -> str:
    return f"{value * 100:+.1f}%"


def _plain(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _margin(result: MetricResult) -> float:
    """The threshold on the log scale: a change of +t and its mirror 1/(1+t) are equally large."""
    return math.log1p(result.threshold)


def detectability(result: MetricResult, alpha: float, tests: int) -> str:
    """Set the metric's minimum detectable change and process advice; return the sentence that says them."""
    from tribench.reports.regression.stats_tests import min_detectable_log, processes_needed, upper_spread

    margin = _margin(result)
    planning_se = upper_spread(result.standard_error, result.dof)  # not the optimistic measured one
    detectable_log = min_detectable_log(planning_se, result.dof, margin, alpha, tests)
    result.processes_needed = processes_needed(upper_spread(result.spread, result.dof), margin,
                                               math.log1p(result.resolve), alpha, tests)
    sides = (f"{result.n_base} processes per side" if result.n_base == result.n_head
             else f"{result.n_base} base and {result.n_head} head processes")
    if detectable_log > MAX_DETECTABLE_LOG:  # so few degrees of freedom that no plausible change is detectable
        result.min_detectable = None
        sentence = (f"with {sides} and {_plain_pct(result.spread)} spread between processes, the spread itself is "
                    f"too uncertain for any change under {math.exp(MAX_DETECTABLE_LOG):g}x to be told from noise")
    else:
        result.min_detectable = math.expm1(detectable_log)
        sentence = (f"with {sides} and {_plain_pct(result.spread)} spread between processes, changes under "
                    f"{_plain_pct(result.min_detectable)} cannot be told from noise")
    if result.processes_needed is not None:
        return f"{sentence}; about {result.processes_needed} processes per side would resolve " \
               f"{_plain_pct(result.resolve)}"
    if result.resolve <= result.threshold:
        return f"{sentence}; no process count resolves {_plain_pct(result.resolve)} at a " \
               f"{_plain_pct(result.threshold)} threshold (lower --threshold)"
    return sentence


def _plain_pct(fraction: float) -> str:
    return f"{fraction * 100:.1f}%" if fraction < 0.1 else f"{fraction * 100:.0f}%"


def classify_tested(result: MetricResult, alpha: float) -> tuple[str, str]:
    """The verdict of a tested metric from its CI, one-sided adjusted p-values and threshold (module doc)."""
    margin = _margin(result)
    worse_log = math.log(result.ratio) * (1.0 if result.direction == "lower" else -1.0)
    low, high = result.log_ratio_ci
    ci = _ci_text(result)
    p = f"adjusted one-sided p={min(result.p_adjusted, result.p_better_adjusted):.2g}"
    t = _plain(result.threshold)
    if result.p_adjusted <= alpha and worse_log > margin:
        return "regressed", f"{_percent(result.ratio - 1)} on the worse side, past the {t} threshold; " \
                            f"{ci}; adjusted one-sided p={result.p_adjusted:.2g}"
    if result.p_better_adjusted <= alpha and -worse_log > margin:
        return "improved", f"{_percent(result.ratio - 1)} on the better side, past the {t} threshold; " \
                           f"{ci}; adjusted one-sided p={result.p_better_adjusted:.2g}"
    if -margin <= low and high <= margin:
        return "unchanged", f"{ci} within ±{t}; {p}"
    significant = min(result.p_adjusted, result.p_better_adjusted) <= alpha
    if significant:
        return "inconclusive", f"significant ({p}) but {_percent(result.ratio - 1)} is within ±{t} while the {ci} " \
                               f"reaches past it"
    return "inconclusive", f"not significant ({p}) and the {ci} reaches past ±{t}: too noisy to tell"


def _ci_text(result: MetricResult) -> str:
    return f"CI [{_percent(result.ci_low - 1)}, {_percent(result.ci_high - 1)}]"


def _spread(values: tuple[float, ...]) -> float:
    return max(values) / min(values) - 1.0 if len(values) >= 2 and min(values) > 0 else 0.0


def classify_reading(result: MetricResult, base_runs: tuple[float, ...],
                     head_runs: tuple[float, ...]) -> tuple[str, str]:
    """Threshold-only verdict of a single reading, inconclusive when one side's processes disagree."""
    t = result.threshold
    if result.ratio is None:
        return "inconclusive", "base value is 0"
    for side, runs in (("base", base_runs), ("head", head_runs)):
        if _spread(runs) > t:
            return "inconclusive", f"{side} processes differ by {_spread(runs):.1%} among themselves (> {_plain(t)})"
    change = result.ratio - 1.0
    worse = change > t if result.direction == "lower" else change < -t
    better = change < -t if result.direction == "lower" else change > t
    if worse:
        return "regressed", f"{_percent(change)} is past the {_plain(t)} threshold (single readings: no test)"
    if better:
        return "improved", f"{_percent(change)} is past the {_plain(t)} threshold (single readings: no test)"
    return "unchanged", f"{_percent(change)} within ±{_plain(t)}"


def case_verdict(metrics: list[MetricResult]) -> tuple[str, str]:
    """A case is as bad as its worst gated metric: regressed > inconclusive > improved > unchanged."""
    gated = [metric for metric in metrics if metric.gated and metric.verdict != "not-comparable"]
    for verdict in ("regressed", "inconclusive", "improved"):
        named = [metric.label for metric in gated if metric.verdict == verdict]
        if named:
            return verdict, f"{verdict}: {', '.join(named)}"
    if not gated:
        return "not-comparable", "no metric could be compared"
    return "unchanged", "every gated metric within its threshold"


def _status_outcome(base: dict[str, Any], head: dict[str, Any]) -> tuple[str, str] | None:
    statuses = {"base": base.get("status"), "head": head.get("status")}
    failed = [f"{side} {status}: {case.get('error') or 'no error recorded'}"
              for (side, status), case in zip(statuses.items(), (base, head), strict=True)
              if status in ("failed", "timeout")]
    if failed:
        return "failed", "; ".join(failed)
    skipped = [f"{side} skipped: {case.get('error') or 'no reason recorded'}"
               for (side, status), case in zip(statuses.items(), (base, head), strict=True) if status == "skipped"]
    if skipped:
        return "not-comparable", "; ".join(skipped)
    if not statuses["base"] or not statuses["head"] or not step_samples(base) or not step_samples(head):
        return "not-comparable", "no measured samples on one side"
    return None


def _precheck(key: str, base: dict[str, Any] | None, head: dict[str, Any] | None, base_side: Side,
              head_side: Side, settings: CompareSettings) -> CaseResult | None:
    """The case-level outcome that needs no statistics, or None when the metrics must decide."""
    some = base or head
    result = CaseResult(key, some["id"], "", base_status=(base or {}).get("status"),
                        head_status=(head or {}).get("status"))
    if base is None or head is None:
        result.verdict = "new" if base is None else "missing"
        result.reason = "only in head" if base is None else "only in base"
        return result
    outcome = _status_outcome(base, head)
    if outcome is None:
        differences = spec_differences(base.get("spec", {}), head.get("spec", {}))
        if differences:
            outcome = ("not-comparable", "spec differs: " + "; ".join(differences))
    if outcome is None:
        differences = fingerprint_differences(base_side.run.get("environment", {}),
                                              head_side.run.get("environment", {}),
                                              base.get("spec", {}).get("backend"), settings.allow_differences)
        if differences:
            outcome = ("not-comparable", "environment differs: " + "; ".join(differences)
                       + " (accept with --allow-difference FIELD)")
    if outcome is None:
        return None
    result.verdict, result.reason = outcome
    return result


THRESHOLD_ONLY = ("device_memory", "host_memory")


def _metric_result(metric: Metric, base: dict[str, Any], head: dict[str, Any],
                   settings: CompareSettings) -> MetricResult | None:
    if metric.name in THRESHOLD_ONLY:
        return _reading_result(metric, base, head, settings)
    result = _tested_result(metric, base, head, settings)
    if result is None and metric.kind == "reading":  # no per-process values (an older file): threshold only
        result = _reading_result(metric, base, head, settings)
        if result is not None and result.gated:
            result.gated = False
            result.reason += "; not gated: no per-process values to test"
    return result


def _adjust_and_classify(gated: list[MetricResult], informational: list[MetricResult], alpha: float) -> None:
    """Adjust each family's one-sided p-values per direction (BH), then classify every tested metric.

    The gated tests are the family a CI gate's false-alarm rate is about; metrics that only inform
    (a p99 from too few processes, compile time without --gate-compile) are adjusted among themselves.
    """
    from tribench.reports.regression.stats_tests import adjust

    for family in (gated, informational):
        worse, better = adjust([m.p_value for m in family]), adjust([m.p_better for m in family])
        for metric, p_worse, p_better in zip(family, worse, better, strict=True):
            metric.p_adjusted, metric.p_better_adjusted = p_worse, p_better
            verdict, reason = classify_tested(metric, alpha)
            advice = detectability(metric, alpha, len(family))
            metric.verdict = verdict
            metric.reason = "; ".join(part for part in (reason, advice, metric.reason) if part)


def shares_throughput_test(metric: MetricResult) -> bool:
    """p50 step time judged on the same per-process medians as throughput (a file without sustained figures)."""
    return metric.metric == "latency_p50" and metric.family == "throughput"


def _copy_shared_tests(cases: list[CaseResult], alpha: float, tests: int) -> None:
    """p50 step time shares throughput's test (the same per-process medians): same p-values, its own units."""
    for case in cases:
        by_name = {metric.metric: metric for metric in case.metrics}
        p50, throughput = by_name.get("latency_p50"), by_name.get("throughput")
        if p50 is None or throughput is None or p50.log_ratio_ci is None or throughput.p_adjusted is None:
            continue
        if not shares_throughput_test(p50):  # throughput is the sustained figure: p50 was tested on its own
            continue
        p50.gated = throughput.gated
        p50.p_adjusted, p50.p_better_adjusted = throughput.p_adjusted, throughput.p_better_adjusted
        verdict, reason = classify_tested(p50, alpha)
        p50.verdict = verdict
        p50.reason = f"{reason}; {detectability(p50, alpha, tests)}; one test with throughput"


def compare_sides(base: Side, head: Side, settings: CompareSettings | None = None) -> Comparison:
    """Judge every joined case and metric; p-values are adjusted together across the comparison."""
    settings = settings or CompareSettings()
    pairs = join(base, head)
    if not any(b is not None and h is not None for _, b, h in pairs):
        raise CompareInputError(
            f"{base.path} and {head.path} have no case in common (base: {len(base.cases)} case(s), "
            f"head: {len(head.cases)}); compare runs of the same suite")
    cases: list[CaseResult] = []
    for key, base_case, head_case in pairs:
        result = _precheck(key, base_case, head_case, base, head, settings)
        if result is None:
            result = CaseResult(key, base_case["id"], "", base_status=base_case.get("status"),
                                head_status=head_case.get("status"))
            result.metrics = [metric_result for metric in METRICS.values()
                              if (metric_result := _metric_result(metric, base_case, head_case, settings))]
        cases.append(result)
    tested = [metric for case in cases for metric in case.metrics if metric.log_ratio_ci is not None]
    gated = [metric for metric in tested if metric.gated and not shares_throughput_test(metric)]
    _adjust_and_classify(gated, [m for m in tested if not m.gated and not shares_throughput_test(m)], settings.alpha)
    _copy_shared_tests(cases, settings.alpha, len(gated))
    for case in cases:
        if case.metrics:
            case.verdict, case.reason = case_verdict(case.metrics)
    comparison = Comparison(base.describe(), head.describe(), settings, cases, tests=len(gated))
    comparison.warnings = _warnings(base, head, settings)
    return comparison


def _warnings(base: Side, head: Side, settings: CompareSettings) -> list[str]:
    warnings = []
    for side in (base, head):
        if side.run.get("state") not in (None, "complete"):
            warnings.append(f"{side.label} run is {side.run.get('state')}: only its finished cases are compared")
        if side.run.get("environment", {}).get("git", {}).get("dirty"):
            warnings.append(f"{side.label} was run from a checkout with uncommitted changes")
    differences = fingerprint_differences(base.run.get("environment", {}), head.run.get("environment", {}))
    if differences:
        allowed = f" (allowed: {', '.join(settings.allow_differences)})" if settings.allow_differences else ""
        warnings.append("the runs' environments differ: " + "; ".join(differences) + allowed)
    return warnings


def load_sides(base_path: str | Path, head_path: str | Path, redact: bool = False) -> tuple[Side, Side]:
    """Read two run files as the base and head of a comparison; refuse the same run twice. ``redact``: compare
    share-safe copies, known by their file names (``reports.share_safe``)."""
    from tribench.harness.results import load_run

    base_path, head_path = Path(base_path), Path(head_path)
    if base_path.exists() and head_path.exists() and base_path.resolve() == head_path.resolve():
        raise CompareInputError(f"BASE and HEAD are the same file ({base_path}); compare two different runs")
    base_run, head_run = load_run(base_path), load_run(head_path)
    if base_run.get("run_id") and base_run.get("run_id") == head_run.get("run_id"):
        raise CompareInputError(f"{base_path} and {head_path} hold the same run ({base_run['run_id']}); "
                                "compare two different runs")
    if redact:
        base_run, head_run = redact_run(base_run), redact_run(head_run)
        base_path, head_path = Path(base_path.name), Path(head_path.name)
    return side_from_run(base_run, str(base_path), "base"), side_from_run(head_run, str(head_path), "head")


def sequential_settings(run: dict[str, Any], settings: CompareSettings,
                        threshold_given: bool) -> tuple[CompareSettings, str | None]:
    """A sequential A/B run (harness.sequential) is judged as it was run: at the alpha its looks left
    (``compare_alpha``), with the matching CI, and at its threshold unless --threshold says otherwise.

    Returns the settings and the note that says so (None for any other run)."""
    plan = (run.get("settings") or {}).get("sequential")
    if not plan:
        return settings, None
    level = float(plan.get("compare_alpha", plan["alpha_per_look"]))
    changed = replace(settings, alpha=level, confidence=1.0 - 2.0 * level)
    if not threshold_given:
        changed = replace(changed, thresholds=Thresholds(float(plan["threshold"])))
    return changed, (f"sequential A/B run: judged at alpha {level:.3g} (alpha {plan['alpha']:g} over "
                     f"{len(plan['looks'])} planned looks) with {changed.confidence:.1%} CIs, as the run stopped")


def point_id(case: dict[str, Any]) -> str:
    """A case's id without its A/B label, so the A and B cases of one point join."""
    from tribench.core.spec import CaseSpec

    return CaseSpec.from_dict(case["spec"]).point_id


def load_env_sides(path: str | Path, base_env: str, head_env: str, redact: bool = False) -> tuple[Side, Side]:
    """The two interpreters of a same-job A/B run file as base and head, joined by case point (``redact``: a
    share-safe copy, as in ``load_sides``)."""
    from tribench.harness.results import load_run

    run = load_run(path)
    if redact:
        run, path = redact_run(run), Path(Path(path).name)
    labels = sorted({case["spec"].get("env", "") for case in run["cases"]} - {""})
    if base_env == head_env:
        raise CompareInputError(f"--env {base_env} given twice; name the two sides of the A/B run")
    for env in (base_env, head_env):
        if env not in labels:
            found = ", ".join(labels) or "none (it is not a same-job A/B run)"
            raise CompareInputError(f"{path}: no cases labelled env {env!r}; its labels: {found}")
    return (side_from_run(run, str(path), f"base ({base_env})", base_env, key=point_id),
            side_from_run(run, str(path), f"head ({head_env})", head_env, key=point_id))

