"""Sequential same-job A/B: the look schedule, the decision rule, its error rates, and the runner loop."""

import math
from pathlib import Path

import numpy as np
import pytest

from tests.test_process_rule import _process
from tribench.core.errors import InvalidValue
from tribench.core.spec import CaseSpec
from tribench.harness.planner import PlannedCase
from tribench.harness.results import RunFile
from tribench.harness.runner import RunOptions, execute
from tribench.harness.sequential import SequentialPlan, decision
from tribench.reports.regression.compare import (
    CompareSettings,
    compare_sides,
    point_id,
    sequential_settings,
    side_from_run,
)
from tribench.reports.regression.stats_tests import adjust

PLAN = SequentialPlan(threshold=0.05, alpha=0.05, min_pairs=3, max_pairs=30)


def test_the_looks_grow_geometrically_and_share_alpha_evenly():
    assert PLAN.looks == (3, 5, 8, 12, 18, 27, 30)
    assert PLAN.alpha_per_look == pytest.approx(0.05 / 7)
    assert SequentialPlan(min_pairs=4, max_pairs=4).looks == (4,)
    with pytest.raises(InvalidValue, match="2 <= --processes"):
        SequentialPlan(min_pairs=1)


def test_points_share_the_alpha_so_compare_agrees_with_every_decision():
    plan = SequentialPlan(min_pairs=3, max_pairs=30, points=4)
    assert plan.alpha_per_look == pytest.approx(0.05 / (7 * 4)) and plan.compare_alpha == pytest.approx(0.05 / 7)
    # a point decided at the run's level stays significant after compare's BH over the 4 points
    assert adjust([plan.alpha_per_look, 0.5, 0.7, 0.9])[0] <= plan.compare_alpha


def test_the_decision_is_taken_only_at_a_planned_look():
    slower = [1.2, 1.21, 1.19, 1.2, 1.2]
    base = [1.0, 1.01, 0.99, 1.0, 1.0]
    assert decision(base[:3], slower[:3], PLAN) == "regressed"
    assert decision(slower[:3], base[:3], PLAN) == "improved"
    assert decision(base[:4], slower[:4], PLAN) is None  # 4 pairs is not a look
    assert decision(base[:3], [1.0, 1.01, 0.99], PLAN) == "unchanged"
    assert decision(base[:3], [1.0, 1.2, 0.85], PLAN) is None  # too noisy to tell at this look


def _sequential_outcome(rng: np.random.Generator, shift: float, spread: float, plan: SequentialPlan = PLAN):
    """Run the rule on simulated per-process medians: (decision or None, pairs used)."""
    base, head = [], []
    for pairs in range(1, plan.max_pairs + 1):
        base.append(math.exp(rng.normal(0.0, spread)))
        head.append(shift * math.exp(rng.normal(0.0, spread)))
        verdict = decision(base, head, plan) if pairs >= plan.min_pairs else None
        if verdict:
            return verdict, pairs
    return None, plan.max_pairs


def test_a_a_points_are_called_regressed_in_at_most_alpha_despite_the_repeated_looks():
    rng = np.random.default_rng(0)
    outcomes = [_sequential_outcome(rng, 1.0, 0.08)[0] for _ in range(1000)]
    assert outcomes.count("regressed") / 1000 <= 0.05 and outcomes.count("improved") / 1000 <= 0.05
    naive = SequentialPlan(alpha=min(0.99, 0.05 * len(PLAN.looks)))  # each look at the full 5%: inflated
    rng = np.random.default_rng(0)
    inflated = [_sequential_outcome(rng, 1.0, 0.08, naive)[0] for _ in range(1000)]
    assert inflated.count("regressed") > outcomes.count("regressed")


def test_a_10_percent_slowdown_with_8_percent_process_spread_is_decided_within_30_pairs():
    rng = np.random.default_rng(1)
    outcomes = [_sequential_outcome(rng, 1.10, 0.08) for _ in range(300)]
    assert sum(verdict == "regressed" for verdict, _ in outcomes) / 300 >= 0.95
    assert np.median([pairs for _, pairs in outcomes]) < 30  # decided early, mostly


def test_a_3_percent_slowdown_is_never_called_unchanged_at_a_3_percent_threshold():
    plan = SequentialPlan(threshold=0.03, min_pairs=3, max_pairs=30)
    rng = np.random.default_rng(2)
    outcomes = [_sequential_outcome(rng, 1.03, 0.02, plan)[0] for _ in range(300)]
    assert outcomes.count("unchanged") / 300 <= 0.025


def _ab_run(tmp_path: Path, head_factor: float, spread: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    spec = CaseSpec("torch", "cnn", "tiny", "infer", 8)
    specs = [CaseSpec(**{**spec.to_dict(), "env": label}) for label in ("A", "B")]

    def launch(case_spec, settings):
        factor = head_factor if case_spec.env == "B" else 1.0
        return _process(factor * math.exp(rng.normal(0.0, spread)))

    plan = SequentialPlan(threshold=0.05, min_pairs=3, max_pairs=30)
    options = RunOptions(repeats=3, max_processes=30, sequential=plan, pythons={"A": "a", "B": "b"})
    run = RunFile(tmp_path / f"ab-{seed}.json", {"fingerprint": "x"}, {"sequential": plan.to_dict()}, {}, ["t"])
    execute([PlannedCase(s, None) for s in specs], run, options, launch=launch)
    return run.data


def test_the_runner_adds_pairs_until_the_point_is_decided_and_compare_agrees(tmp_path):
    run = _ab_run(tmp_path, 1.25, 0.05, seed=3)
    base, head = run["cases"]
    assert base["sequential"] == head["sequential"]
    assert base["sequential"]["decision"] == "regressed"
    pairs = base["sequential"]["pairs"]
    assert pairs in PLAN.looks and len(base["repeats"]) == len(head["repeats"]) == pairs  # stopped at that look
    settings, note = sequential_settings(run, CompareSettings(), threshold_given=False)
    assert settings.alpha == pytest.approx(0.05 / 7) and note.startswith("sequential A/B run")
    comparison = compare_sides(side_from_run(run, "ab.json", "A", "A", key=point_id),
                               side_from_run(run, "ab.json", "B", "B", key=point_id), settings)
    assert comparison.cases[0].verdict == "regressed"


def test_an_undecided_point_stops_at_its_pair_cap(tmp_path):
    run = _ab_run(tmp_path, 1.04, 0.3, seed=4)  # a small change in wild noise: never decided
    base, _ = run["cases"]
    assert base["sequential"] == {"decision": "undecided", "pairs": 30}
