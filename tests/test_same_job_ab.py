"""Same-job A/B: every case under two interpreters, in random order per round, judged by compare --env."""

import json
import os
import random
import stat

import pytest

from tests.helpers import fake_env, tribench
from tribench.core.errors import InvalidValue
from tribench.core.spec import CaseSpec
from tribench.harness.ab import parse_pythons, with_envs
from tribench.harness.results import load_run
from tribench.harness.runner import interleaved


@pytest.fixture
def two_interpreters(tmp_path):
    """Two interpreters with different paths (wrappers of this one), as two venvs would be."""
    import sys

    paths = []
    for name in ("python-base", "python-head"):
        path = tmp_path / name
        path.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
        paths.append(str(path))
    return paths


def test_labels_default_to_a_b_and_can_be_named(two_interpreters):
    base, head = two_interpreters
    assert parse_pythons([base, head]) == {"A": base, "B": head}
    assert parse_pythons([f"old={base}", f"new={head}"]) == {"old": base, "new": head}


@pytest.mark.parametrize("values, message", [
    (["/no/such/python"], "--python /no/such/python: not an executable file"),
    (["x y=/bin/sh"], "--python label 'x y' must be letters"),
    (["a=/bin/sh", "a=/bin/sh"], "--python label 'a' is given twice"),
])
def test_bad_interpreters_are_user_errors(values, message):
    with pytest.raises(InvalidValue, match=message):
        parse_pythons(values)


def test_each_round_keeps_points_in_order_and_shuffles_the_sides():
    points = [CaseSpec("torch", w, "tiny", "train", 8) for w in ("cnn", "rnn", "transformer")]
    specs = with_envs(points, ["A", "B"])
    rng = random.Random(7)
    rounds = [interleaved(specs, rng) for _ in range(20)]
    for order in rounds:
        assert [spec.point_id for spec in order[::2]] == [p.id for p in points]   # points as planned
        assert all({a.env, b.env} == {"A", "B"} for a, b in zip(order[::2], order[1::2], strict=True))
    firsts = [order[0].env for order in rounds]
    assert set(firsts) == {"A", "B"}   # neither side always goes first


def test_a_run_with_two_pythons_labels_every_case_and_compare_judges_the_pair(two_interpreters, tmp_path):
    base, head = two_interpreters
    out = tmp_path / "ab.json"
    done = tribench("run", "--backend", "fake", "--workload", "cnn,rnn", "--mode", "train", "--repeats", "2",
                    "--min-time", "0.05", "--max-time", "0.2", "--python", base, "--python", head,
                    "--output", str(out), env=fake_env())
    assert done.returncode == 0, done.stderr
    run = load_run(out)
    ids = [case["id"] for case in run["cases"]]
    assert sorted(ids) == sorted(f"fake/{w}-tiny/train/bs32/fp32/native/cpu@{e}" for w in ("cnn", "rnn")
                                 for e in ("A", "B"))
    for case in run["cases"]:
        expected = base if case["spec"]["env"] == "A" else head
        assert [r["python"] for r in case["repeats"]] == [expected, expected]
    assert run["settings"]["envs"] == {"A": base, "B": head}
    assert set(run["environment"]["envs"]) == {"A", "B"}

    verdicts = tmp_path / "verdict.json"
    compared = tribench("compare", str(out), "--env", "A", "--env", "B", "--format", "json",
                        "--output", str(verdicts), env=fake_env())
    assert compared.returncode in (0, 3), compared.stderr
    result = json.loads(verdicts.read_text())
    # A and B of each point are joined on the point id, never reported as new/missing
    assert sorted(case["key"] for case in result["cases"]) == [
        "fake/cnn-tiny/train/bs32/fp32/native/cpu", "fake/rnn-tiny/train/bs32/fp32/native/cpu"]
    assert {case["verdict"] for case in result["cases"]} <= {"unchanged", "inconclusive"}
    assert result["base"]["label"] == "base (A)" and result["head"]["label"] == "head (B)"


def test_compare_env_errors_are_one_line(tmp_path):
    out = tmp_path / "plain.json"
    tribench("run", "--backend", "fake", "--workload", "cnn", "--mode", "train", "--min-time", "0.05",
             "--max-time", "0.1", "--output", str(out), env=fake_env())
    done = tribench("compare", str(out), "--env", "A", "--env", "B", env=fake_env())
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: {out}: no cases labelled env 'A'; its labels: none (it is not a "
                                   "same-job A/B run)")
    done = tribench("compare", str(out), "--env", "A", env=fake_env())
    assert (done.returncode, done.stderr.strip()) == (
        2, "error: --env takes exactly two labels (--env A --env B) and one run file")
    assert os.path.exists(out)


def test_a_sequential_run_stops_each_point_at_a_look_and_compare_judges_it_as_run(two_interpreters, tmp_path):
    base, head = two_interpreters
    out = tmp_path / "seq.json"
    done = tribench("run", "--backend", "fake", "--workload", "cnn", "--mode", "train", "--sequential",
                    "--threshold", "20%", "--processes", "2", "--max-processes", "3", "--min-time", "0.05",
                    "--max-time", "0.1", "--python", f"old={base}", "--python", f"new={head}",
                    "--output", str(out), env=fake_env())
    assert done.returncode == 0, done.stderr
    run = load_run(out)
    plan = run["settings"]["sequential"]
    assert (plan["looks"], plan["threshold"], plan["points"], plan["alpha_per_look"]) == ([2, 3], 0.2, 1, 0.025)
    records = [case["sequential"] for case in run["cases"]]
    assert records[0] == records[1] and records[0]["pairs"] in (2, 3)
    assert [len(case["repeats"]) for case in run["cases"]] == [records[0]["pairs"]] * 2  # stopped at its look
    compared = tribench("compare", str(out), "--env", "old", "--env", "new", "--format", "json", env=fake_env())
    verdict = json.loads(compared.stdout)
    assert verdict["settings"]["alpha"] == 0.025 and verdict["settings"]["threshold"] == 0.2
    assert verdict["warnings"][0] == ("sequential A/B run: judged at alpha 0.025 (alpha 0.05 over 2 planned looks) "
                                      "with 95.0% CIs, as the run stopped")


def test_sequential_needs_two_interpreters_and_its_threshold_needs_it():
    done = tribench("run", "--backend", "fake", "--sequential", env=fake_env())
    assert (done.returncode, done.stderr.strip()) == (
        2, "error: --sequential compares two interpreters: give --python A=PATH --python B=PATH")
    done = tribench("run", "--backend", "fake", "--threshold", "3%", env=fake_env())
    assert (done.returncode, done.stderr.strip()) == (
        2, "error: --threshold sets the sequential A/B rule; add --sequential (compare takes its own --threshold)")
