"""The list/env commands and the refusal to run when no requested framework is installed."""

import json

import pytest
from typer.testing import CliRunner

from tests.helpers import fake_env, tribench
from tribench import cli
from tribench.backends.base import Availability
from tribench.core.errors import BackendUnavailable
from tribench.core.spec import CaseSpec
from tribench.harness import availability as availability_module
from tribench.harness.run import plan_or_refuse

runner = CliRunner()


def fake_availability(name, python=None):
    if name == "tensorflow":
        return Availability(name=name, installed=False, reason="not installed (missing: tensorflow)",
                            install_hint="pip install -e '.[tensorflow]'")
    return Availability(name=name, installed=True, version="9.9", devices=("cpu",),
                        device_names={"cpu": "the CPU"}, notes=("eager is per-op dispatch",))


@pytest.fixture
def fake_frameworks(monkeypatch):
    monkeypatch.setattr(availability_module, "query", fake_availability)


def test_list_backends_shows_missing_ones_with_the_install_command(fake_frameworks):
    result = runner.invoke(cli.app, ["list", "backends"], terminal_width=200)
    assert result.exit_code == 0
    lines = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 3}
    assert "missing" in lines["tensorflow"]
    assert "pip install -e '.[tensorflow]'" in result.stdout
    assert "9.9" in lines["torch"] and "cpu" in lines["jax"]


def test_list_backends_says_what_each_compile_mode_runs_in_each_framework(fake_frameworks):
    result = runner.invoke(cli.app, ["list", "backends"])
    assert result.exit_code == 0
    rows: dict[str, list[str]] = {}
    for line in (line for line in result.stdout.splitlines() if line.count("│") == 6):
        mode, *cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if mode:
            rows[mode], current = cells, mode
        else:  # a wrapped cell continues on the next line
            rows[current] = [" ".join(filter(None, pair)) for pair in zip(rows[current], cells, strict=True)]
    assert rows["native"] == ["eager PyTorch", "tf.function graph (no XLA; on a TPU, XLA as every function)",
                              "jax.jit (XLA)", "dygraph (eager Paddle)"]
    assert rows["op-by-op"] == ["eager PyTorch (the same as native)", "eager TensorFlow, no tf.function",
                                "no jax.jit: every op dispatched on its own", "dygraph (the same as native)"]


def test_list_devices(fake_frameworks):
    result = runner.invoke(cli.app, ["list", "devices"], terminal_width=200)
    assert result.exit_code == 0
    assert "the CPU" in result.stdout
    assert "not installed (missing: tensorflow)" in result.stdout


def test_list_workloads_shows_the_exact_parameter_counts():
    result = runner.invoke(cli.app, ["list", "workloads"], terminal_width=250)
    for count in ("93,322", "91,530", "229,096", "25,557,032", "11,173,962"):
        assert count in result.stdout


def test_list_suites_counts_cases():
    result = runner.invoke(cli.app, ["list", "suites"], terminal_width=200)
    smoke = next(line for line in result.stdout.splitlines() if "smoke" in line)
    assert "24" in smoke


def test_env_json_has_a_fingerprint(fake_frameworks):
    result = runner.invoke(cli.app, ["env", "--json"])
    captured = json.loads(result.stdout)
    assert len(captured["fingerprint"]) == 16
    assert captured["frameworks"]["torch"]["version"] == "9.9"


def test_refuses_when_no_requested_framework_is_installed():
    spec = CaseSpec("tensorflow", "cnn", "tiny", "train", 2, device="auto")
    with pytest.raises(BackendUnavailable) as error:
        plan_or_refuse([spec], lambda case: fake_availability(case.backend))
    assert str(error.value) == ("no requested backend is installed (tensorflow); install with "
                                "tensorflow: pip install -e '.[tensorflow]'")


def test_a_partly_missing_request_skips_the_missing_backend():
    specs = [CaseSpec(b, "cnn", "tiny", "train", 2, device="auto") for b in ("torch", "tensorflow")]
    planned = plan_or_refuse(specs, lambda case: fake_availability(case.backend))
    assert [case.skip_reason is None for case in planned] == [True, False]


def test_unknown_list_topic_is_exit_2():
    done = tribench("list", "gpus", env=fake_env())
    assert (done.returncode, done.stderr.strip()) == (
        2, "error: unknown list topic 'gpus'; valid choices: workloads, backends, suites, devices")
