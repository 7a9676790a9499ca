"""A/B comparison of two sets of cases: join, test, and a verdict per case and metric.

A verdict needs two things: a *significant* difference (Mann-Whitney U, or the
bootstrap for p99; p-values adjusted with Benjamini-Hochberg across every case
x metric test of the comparison) and a change *larger than the threshold*,
judged on the whole 95% bootstrap CI of the ratio, not just its middle:

* ``regressed`` / ``improved``: significant, and the whole CI lies beyond the
  threshold on the bad / good side;
* ``unchanged``: the whole CI lies within +-threshold (significant or not: a
  1% change measured precisely is still unchanged at 5%);
* ``inconclusive``: anything else (not significant with a CI reaching past the
  threshold, or a CI straddling it): too noisy to tell.

Single readings per process (peak memory, energy per sample, compile time)
have no sampling distribution to test; their case values are compared with
the threshold, and when the processes of one side disagree among themselves by
more than the threshold the verdict is ``inconclusive``.

Case-level outcomes that come before any metric: ``new``, ``missing``,
``failed`` (failed or timed out on either side) and ``not-comparable`` (skipped
on a side, spec differs, or the environment fingerprint differs; the reason
names each differing ``fingerprint_inputs`` field).

The joining is one function, ``join``, over two ``Side``s; a side is a set of
cases (a whole run file, or the cases of one environment label inside a run).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import TribenchError
from reports.compare_metrics import METRICS, Metric, Thresholds, reading_value, step_samples

VERDICTS = ("regressed", "improved", "unchanged", "inconclusive", "not-comparable", "new", "missing", "failed")
FAIL_ON_CHOICES = ("inconclusive", "failed", "missing", "not-comparable")
CORRECTION = "benjamini-hochberg"
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
    resamples: int = 2000
    confidence: float = 0.95
    allow_differences: tuple[str, ...] = ()
    gate_compile: bool = False
    seed: int = 0

    def gated(self, metric: Metric) -> bool:
        return metric.gated or (metric.name == "compile_time" and self.gate_compile)


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
    p_value: float | None = None
    p_adjusted: float | None = None
    test: str | None = None
    n_base: int | None = None
    n_head: int | None = None
    verdict: str = "inconclusive"
    reason: str = ""

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

    def exit_code(self, fail_on: tuple[str, ...] = ()) -> int:
        """0 fine, 1 a regression (or a --fail-on category that maps to 1), 3 inconclusive with --fail-on."""
        counts = self.counts()
        counts["failed"] = sum(case.verdict == "failed" and case.head_status in ("failed", "timeout")
                               for case in self.cases)  # a case fixed in head does not fail the check
        if counts["regressed"] or any(counts[name] for name in fail_on if name != "inconclusive"):
            return 1
        if "inconclusive" in fail_on and counts["inconclusive"]:
            return 3
        return 0

    def to_dict(self, fail_on: tuple[str, ...] = ()) -> dict[str, Any]:
        settings = self.settings
        return {
            "kind": "tribench-verdict",
            "schema_version": 1,
            "base": self.base,
            "head": self.head,
            "settings": {"threshold": settings.thresholds.default,
                         "thresholds": {name: settings.thresholds.of(name) for name in METRICS},
                         "alpha": settings.alpha, "correction": CORRECTION, "tests": self.tests,
                         "confidence": settings.confidence, "bootstrap_resamples": settings.resamples,
                         "allow_differences": list(settings.allow_differences),
                         "gated_metrics": [m.name for m in METRICS.values() if settings.gated(m)],
                         "fail_on": list(fail_on)},
            "summary": self.counts(),
            "exit_code": self.exit_code(fail_on),
            "warnings": self.warnings,
            "cases": [{**{k: v for k, v in asdict(case).items() if k != "metrics"},
                       "metrics": [{**asdict(metric), "change": metric.change} for metric in case.metrics]}
                      for case in self.cases],
        }


# ---- estimating each metric ---------------------------------------------------------------------

def _seed(settings: CompareSettings, key: str, statistic: str) -> int:
    """A reproducible, per-test seed: the same inputs always give the same verdict."""
    return (settings.seed * 1_000_003 + zlib.crc32(f"{key}|{statistic}".encode())) % 2**32


def _timed_results(key: str, base: dict[str, Any], head: dict[str, Any],
                   settings: CompareSettings) -> list[MetricResult]:
    """Throughput, p50 and p99 from raw samples (per-process statistics when both sides have >= 2)."""
    import numpy as np

    from reports.stats_tests import ratio_tests, statistic

    base_runs, head_runs = step_samples(base), step_samples(head)
    per_process = len(base_runs) >= 2 and len(head_runs) >= 2
    batch = float(base["spec"]["batch_size"])
    options = {"resamples": settings.resamples, "confidence": settings.confidence}
    if per_process:  # each process's statistic is one observation: between-process variance counts
        tests = {which: ratio_tests([float(statistic(np.asarray(run), which)) for run in base_runs],
                                    [float(statistic(np.asarray(run), which)) for run in head_runs],
                                    ("median",), seed=_seed(settings, key, which), **options)["median"]
                 for which in ("median", "p99")}
    else:
        tests = ratio_tests([s for run in base_runs for s in run], [s for run in head_runs for s in run],
                            ("median", "p99"), seed=_seed(settings, key, "samples"), **options)
    results = []
    for metric in (m for m in METRICS.values() if m.kind == "timed"):
        test = tests[metric.statistic]
        if per_process:
            basis = f"per-process {'medians' if metric.statistic == 'median' else 'p99s'}"
        else:
            basis = "step samples"
        result = MetricResult(metric.name, metric.label, metric.direction, metric.unit, settings.gated(metric),
                              settings.thresholds.of(metric.name), basis, p_value=test.p_value, test=test.test,
                              n_base=test.n_base, n_head=test.n_head)
        if metric.name == "throughput":  # batch / step time: the ratio and its CI invert
            result.base, result.head = batch / test.base, batch / test.head
            result.ratio, result.ci_low, result.ci_high = 1.0 / test.ratio, 1.0 / test.ci_high, 1.0 / test.ci_low
        else:
            result.base, result.head, result.ratio = test.base, test.head, test.ratio
            result.ci_low, result.ci_high = test.ci_low, test.ci_high
        results.append(result)
    return results


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


def classify_timed(result: MetricResult, alpha: float) -> tuple[str, str]:
    """The verdict of a tested metric from its CI, adjusted p-value and threshold (see module doc)."""
    t, low, high = result.threshold, result.ci_low, result.ci_high
    significant = result.p_adjusted is not None and result.p_adjusted <= alpha
    above, below = low - 1 > t, high - 1 < -t  # the whole CI past +t / past -t
    worse, better = (above, below) if result.direction == "lower" else (below, above)
    ci = f"95% CI [{_percent(low - 1)}, {_percent(high - 1)}]"
    p = f"adjusted p={result.p_adjusted:.2g}"
    if significant and worse:
        return "regressed", f"{ci} entirely past the {_plain(t)} threshold on the worse side; {p}"
    if significant and better:
        return "improved", f"{ci} entirely past the {_plain(t)} threshold on the better side; {p}"
    if low - 1 >= -t and high - 1 <= t:
        note = "a significant but smaller change" if significant else "no significant change"
        return "unchanged", f"{ci} within ±{_plain(t)}: {note}; {p}"
    if significant:
        return "inconclusive", f"significant ({p}) but the {ci} straddles the ±{_plain(t)} threshold"
    return "inconclusive", f"not significant ({p}) and the {ci} reaches past ±{_plain(t)}: too noisy to tell"


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


def compare_sides(base: Side, head: Side, settings: CompareSettings | None = None) -> Comparison:
    """Judge every joined case and metric; p-values are adjusted together across the comparison."""
    from reports.stats_tests import adjust

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
            result.metrics = _timed_results(key, base_case, head_case, settings) + [
                reading for metric in METRICS.values() if metric.kind == "reading"
                if (reading := _reading_result(metric, base_case, head_case, settings)) is not None]
        cases.append(result)
    tested = [metric for case in cases for metric in case.metrics if metric.p_value is not None]
    for metric, adjusted in zip(tested, adjust([metric.p_value for metric in tested]), strict=True):
        metric.p_adjusted = adjusted
        metric.verdict, metric.reason = classify_timed(metric, settings.alpha)
    for case in cases:
        if case.metrics:
            case.verdict, case.reason = case_verdict(case.metrics)
    comparison = Comparison(base.describe(), head.describe(), settings, cases, tests=len(tested))
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


def load_sides(base_path: str | Path, head_path: str | Path) -> tuple[Side, Side]:
    """Read two run files as the base and head of a comparison; refuse the same run twice."""
    from harness.results import load_run

    base_path, head_path = Path(base_path), Path(head_path)
    if base_path.exists() and head_path.exists() and base_path.resolve() == head_path.resolve():
        raise CompareInputError(f"BASE and HEAD are the same file ({base_path}); compare two different runs")
    base_run, head_run = load_run(base_path), load_run(head_path)
    if base_run.get("run_id") and base_run.get("run_id") == head_run.get("run_id"):
        raise CompareInputError(f"{base_path} and {head_path} hold the same run ({base_run['run_id']}); "
                                "compare two different runs")
    return side_from_run(base_run, str(base_path), "base"), side_from_run(head_run, str(head_path), "head")


def point_id(case: dict[str, Any]) -> str:
    """A case's id without its A/B label, so the A and B cases of one point join."""
    from harness.spec import CaseSpec

    return CaseSpec.from_dict(case["spec"]).point_id


def load_env_sides(path: str | Path, base_env: str, head_env: str) -> tuple[Side, Side]:
    """The two interpreters of a same-job A/B run file as base and head, joined by case point."""
    from harness.results import load_run

    run = load_run(path)
    labels = sorted({case["spec"].get("env", "") for case in run["cases"]} - {""})
    if base_env == head_env:
        raise CompareInputError(f"--env {base_env} given twice; name the two sides of the A/B run")
    for env in (base_env, head_env):
        if env not in labels:
            found = ", ".join(labels) or "none (it is not a same-job A/B run)"
            raise CompareInputError(f"{path}: no cases labelled env {env!r}; its labels: {found}")
    return (side_from_run(run, str(path), f"base ({base_env})", base_env, key=point_id),
            side_from_run(run, str(path), f"head ({head_env})", head_env, key=point_id))

