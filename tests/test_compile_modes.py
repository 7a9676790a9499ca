"""Compile modes that mean the same thing in every framework, named honestly, and said in every format."""

import json

import pytest

from tests.helpers import fake_env, tribench
from tribench import backends
from tribench.core.errors import InvalidValue
from tribench.core.spec import COMPILE_MODES, CaseSpec
from tribench.harness.results import load_run
from tribench.reports import dataset
from tribench.reports.html import report as html
from tribench.reports.report_format import execution_legend
from tribench.reports.text import markdown
from tribench.suites import expand, suite_file

FAST = ["--backend", "fake", "--mode", "train", "--min-time", "0.05", "--max-time", "0.2", "--processes", "1"]


def test_the_modes_are_native_compiled_and_op_by_op():
    assert COMPILE_MODES == ("native", "compiled", "op-by-op")
    assert CaseSpec("torch", "cnn", "tiny", "train", 32).compile == "native"


@pytest.mark.parametrize("name", ["torch", "tensorflow", "jax"])
def test_every_built_in_backend_says_what_every_mode_means(name):
    meanings = backends.compile_meanings(name)
    assert list(meanings) == list(COMPILE_MODES)
    assert all(meanings.values())


def test_what_each_mode_means_per_framework(monkeypatch):
    monkeypatch.setenv("TRIBENCH_EXTRA_BACKENDS", "fake=tests.fakes.backend")
    assert backends.compile_meanings("torch") == {
        "native": "eager PyTorch", "compiled": "torch.compile (TorchInductor)",
        "op-by-op": "eager PyTorch (the same as native)"}
    assert backends.compile_meanings("tensorflow") == {
        "native": "tf.function graph (no XLA; on a TPU, XLA as every function)",
        "compiled": "tf.function(jit_compile=True) (XLA)",
        "op-by-op": "eager TensorFlow, no tf.function"}
    assert backends.compile_meanings("jax") == {
        "native": "jax.jit (XLA)", "compiled": "jax.jit (XLA; the same program as native)",
        "op-by-op": "no jax.jit: every op dispatched on its own"}
    assert backends.compile_meanings("fake") == {}  # an out-of-tree backend that says nothing
    assert backends.compile_meanings("gone") == {}  # nor one this installation does not know


def test_the_default_suite_runs_each_framework_as_its_users_do():
    assert {spec.compile for spec in expand(suite_file.load("smoke"), backends.names())} == {"native"}
    assert {spec.compile for spec in expand(suite_file.load("standard"), backends.names())} == {"native", "compiled"}


def test_the_retired_eager_mode_is_refused_with_what_replaced_it():
    with pytest.raises(InvalidValue) as refused:
        expand(suite_file.load("smoke").override(compile=("eager",)), backends.names())
    assert str(refused.value) == (
        "compile mode 'eager' meant different things per framework and was replaced: use native (each framework "
        "as its users run it: PyTorch eager, TensorFlow tf.function, JAX jit) or op-by-op (every op dispatched on "
        "its own); valid choices: native, compiled, op-by-op")


def test_the_cli_refuses_eager_in_one_line_with_exit_2(tmp_path):
    done = tribench("run", *FAST, "--compile", "eager", "--output", str(tmp_path / "run.json"), env=fake_env())
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: compile mode 'eager' meant different things per framework and was replaced: use native (each "
        "framework as its users run it: PyTorch eager, TensorFlow tf.function, JAX jit) or op-by-op (every op "
        "dispatched on its own); valid choices: native, compiled, op-by-op"]


def test_an_old_run_file_with_eager_cases_still_loads():
    run = load_run("tests/data/run-sweep.json")
    assert {case["spec"]["compile"] for case in run["cases"]} == {"eager"}


def _case(backend: str, compile: str, execution: str | None) -> dict:
    case = {"id": f"{backend}/cnn-tiny/train/bs32/fp32/{compile}/cpu", "status": "ok",
            "spec": {"backend": backend, "compile": compile}}
    if execution is not None:
        case["execution"] = execution
    return case


def test_the_legend_says_per_mode_what_each_backend_ran():
    cases = [_case("torch", "native", "eager PyTorch"), _case("jax", "native", "jax.jit (XLA)"),
             _case("torch", "native", "eager PyTorch"), _case("jax", "op-by-op", "no jax.jit: every op dispatched "
                                                                             "on its own"),
             _case("tensorflow", "eager", None)]  # an old file's case says nothing: nothing is guessed
    assert execution_legend(cases) == [
        "native: torch = eager PyTorch; jax = jax.jit (XLA)",
        "op-by-op: jax = no jax.jit: every op dispatched on its own",
    ]


def test_a_run_records_what_its_mode_meant_and_the_table_says_it(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", "--backend", "torch", "--workload", "cnn", "--mode", "infer", "--processes", "1",
                    "--min-time", "0.05", "--max-time", "0.2", "--no-energy", "--output", str(out))
    assert done.returncode == 0, done.stderr
    (case,) = load_run(out)["cases"]
    assert (case["spec"]["compile"], case["execution"]) == ("native", "eager PyTorch")
    assert "native: torch = eager PyTorch" in " ".join(done.stdout.split())


def _with_execution(tmp_path):
    run = json.loads(open("tests/data/run-sweep.json").read())
    for case in run["cases"]:
        case["execution"] = f"<b>{case['spec']['backend']}</b> way"  # markup must stay text
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    return dataset.load([path])


def test_markdown_and_html_reports_carry_the_legend(tmp_path):
    data = _with_execution(tmp_path)
    text = markdown.render(data)
    assert text.endswith("Compile modes:\n"
                         "- eager\\: torch = &lt;b&gt;torch&lt;/b&gt; way; jax = &lt;b&gt;jax&lt;/b&gt; way\n")
    page = html.render(data, plotly_js="cdn", generated_at="now")
    assert "<li>eager: torch = &lt;b&gt;torch&lt;/b&gt; way; jax = &lt;b&gt;jax&lt;/b&gt; way</li>" in page
