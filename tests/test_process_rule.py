"""The process-level stopping rule: counted processes, the adaptive CI rule, disturbed ones replaced."""

from pathlib import Path

from tribench.core.spec import CaseSpec
from tribench.harness.planner import PlannedCase
from tribench.harness.results import RunFile
from tribench.harness.runner import RunOptions, execute

SPEC = CaseSpec("torch", "cnn", "tiny", "infer", 8)


def _process(median: float, disturbed: bool = False, wall: float = 2.0) -> dict:
    samples = [median] * 20
    return {"status": "ok", "error": None, "setup_time_s": 0.1, "param_count": 1, "memory": [], "wall_s": wall,
            "exit_code": 0, "stderr_tail": "",
            "timing": {"compile_time_s": 0.1, "warmup_samples_s": [], "warmup_steady": True, "samples_s": samples,
                       "stop_reason": "converged", "measure_wall_s": sum(samples), "final_ci_rel_halfwidth": 0.0},
            "disturbance": {"disturbed": disturbed, "reasons": ["CPU pressure"] if disturbed else []}}


def _run(tmp_path: Path, medians: list[float], options: RunOptions, disturbed: set[int] = frozenset(),
         wall: float = 2.0) -> dict:
    launched = []

    def launch(spec, settings):
        index = len(launched)
        launched.append(settings.launch_index)
        return _process(medians[index % len(medians)], index in disturbed, wall)

    run = RunFile(tmp_path / "run.json", {"fingerprint": "x"}, {}, {}, ["tribench"])
    execute([PlannedCase(SPEC, None)], run, options, launch=launch)
    return run.case_of(SPEC)


def test_counted_processes_without_the_adaptive_rule(tmp_path):
    case = _run(tmp_path, [1.0, 1.2, 0.8, 1.1], RunOptions(repeats=3))
    assert len(case["repeats"]) == 3 and case["metrics"]["step_time"]["processes"] == 3


def test_the_adaptive_rule_adds_processes_until_the_across_process_ci_meets_the_target(tmp_path):
    # medians alternate 1.00 / 1.02: the t-interval narrows as processes are added
    options = RunOptions(repeats=2, max_processes=20, process_target_ci=0.01)
    case = _run(tmp_path, [1.0, 1.02], options)
    step = case["metrics"]["step_time"]
    assert step["ci_rel_halfwidth"] <= 0.01
    count = len(case["repeats"])
    assert 2 < count < 20
    # one process fewer would not have met the target: the rule stopped as soon as it could
    shorter = _run(tmp_path / "b", [1.0, 1.02], RunOptions(repeats=count - 1))
    assert shorter["metrics"]["step_time"]["ci_rel_halfwidth"] > 0.01


def test_the_adaptive_rule_stops_at_max_processes_and_at_the_case_budget(tmp_path):
    noisy = [1.0, 1.5, 0.7, 1.3]
    capped = _run(tmp_path, noisy, RunOptions(repeats=2, max_processes=5, process_target_ci=0.001))
    assert len(capped["repeats"]) == 5
    budget = _run(tmp_path / "b", noisy, RunOptions(repeats=2, max_processes=50, process_target_ci=0.001,
                                                    case_budget_s=7.0), wall=2.0)
    assert len(budget["repeats"]) == 4  # 4 x 2 s of process wall time reach the 7 s budget


def test_a_disturbed_process_is_replaced_and_left_out_of_the_estimate(tmp_path):
    case = _run(tmp_path, [1.0, 2.7, 1.0, 1.0], RunOptions(repeats=3, max_processes=4, process_target_ci=0.5),
                disturbed={1})
    step = case["metrics"]["step_time"]
    assert len(case["repeats"]) == 4  # the disturbed second process got a fresh replacement
    assert step["used"] == [True, False, True, True] and step["disturbed"] == [False, True, False, False]
    assert (step["processes"], step["median"]) == (3, 1.0)
    assert step["quality"]["disturbed"] == 1
    counted = _run(tmp_path / "b", [1.0, 2.7, 1.0], RunOptions(repeats=3), disturbed={1})
    assert len(counted["repeats"]) == 3 and counted["metrics"]["step_time"]["used"] == [True, False, True]


def test_disturbed_processes_are_left_out_only_while_two_undisturbed_ones_remain(tmp_path):
    one_left_out = _run(tmp_path, [1.0, 1.5, 1.1], RunOptions(repeats=3), disturbed={1})
    step = one_left_out["metrics"]["step_time"]
    assert step["used"] == [True, False, True]
    assert (step["processes"], step["ci_basis"]) == (2, "across-processes")
    # two of three disturbed: one calm process would give only its own within-process CI, so all three stay in
    two_disturbed = _run(tmp_path / "b", [1.0, 1.5, 1.1], RunOptions(repeats=3), disturbed={0, 1})
    step = two_disturbed["metrics"]["step_time"]
    assert step["used"] == [True, True, True]
    assert (step["processes"], step["ci_basis"], step["quality"]["disturbed_used"]) == (3, "across-processes", 2)


def test_the_table_flag_says_whether_disturbed_processes_were_left_out_or_kept():
    from tribench.reports.report_format import quality_flags

    left_out = {"quality": {"processes": 2, "ok_processes": 3, "disturbed": 1, "disturbed_used": 0}}
    kept = {"quality": {"processes": 3, "ok_processes": 3, "disturbed": 2, "disturbed_used": 2,
                        "not_converged": 1}}
    assert quality_flags(left_out) == ["1/3 disturbed, left out"]
    assert quality_flags(kept) == ["1/3 not converged", "2/3 disturbed, kept: too few calm"]
