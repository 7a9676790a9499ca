"""Case specs, matrices, suite files and planning."""

import pytest

from tribench import backends
from tribench.backends.base import Availability
from tribench.core.errors import InvalidChoice, InvalidValue, SuiteFileError
from tribench.core.spec import CaseSpec, parse_batch_size
from tribench.harness.planner import best_device, plan
from tribench.suites import Matrix, expand, suite_file


def test_case_id_is_stable_and_readable():
    spec = CaseSpec("jax", "rnn", "small", "infer", 16, "bf16", "compiled", "gpu")
    assert spec.id == "jax/rnn-small/infer/bs16/bf16/compiled/gpu"
    assert CaseSpec.from_dict(spec.to_dict()) == spec
    assert CaseSpec.from_dict(spec.to_dict()).id == spec.id


def test_an_ab_label_is_part_of_the_id_but_not_of_the_point():
    spec = CaseSpec("torch", "cnn", "tiny", "train", 8, env="B")
    assert spec.id == "torch/cnn-tiny/train/bs8/fp32/native/cpu@B"
    assert spec.point_id == "torch/cnn-tiny/train/bs8/fp32/native/cpu"
    assert CaseSpec.from_dict(spec.to_dict()) == spec


def test_unknown_case_fields_are_refused():
    with pytest.raises(InvalidValue, match="unknown case fields: colour"):
        CaseSpec.from_dict({**CaseSpec("torch", "cnn", "tiny", "train", 1).to_dict(), "colour": "red"})


@pytest.mark.parametrize("text, value", [("32", 32), (" 7 ", 7), (1, 1), ("+4", 4)])
def test_batch_sizes_parse(text, value):
    assert parse_batch_size(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "", "x", True])
def test_bad_batch_sizes(text):
    with pytest.raises(InvalidValue):
        parse_batch_size(text)


def test_smoke_suite_is_24_cases_with_backends_side_by_side():
    specs = expand(suite_file.load("smoke"), backends.names())
    assert len(specs) == 24
    assert [s.backend for s in specs[:4]] == ["torch", "tensorflow", "jax", "paddle"]
    assert {(s.workload, s.size, s.mode, s.batch_size, s.precision, s.compile, s.device) for s in specs[:4]} == {
        ("cnn", "tiny", "train", 32, "fp32", "native", "auto")}
    assert {s.workload for s in specs} == {"cnn", "rnn", "transformer"}


def test_cli_flags_override_suite_axes():
    matrix = suite_file.load("smoke").override(backends=["torch"], batch_sizes=["8", "16"], modes=[])
    specs = expand(matrix, backends.names())
    assert len(specs) == 3 * 2 * 2
    assert {s.batch_size for s in specs} == {8, 16}
    assert {s.backend for s in specs} == {"torch"}


def test_duplicate_values_do_not_duplicate_cases():
    assert len(expand(Matrix(backends=("torch", "torch"), workloads=("cnn",), modes=("train",)), backends.names())) == 1


def write(tmp_path, text):
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return str(path)


def test_a_suite_file_from_a_path(tmp_path):
    path = write(tmp_path, 'backends = "torch"\nworkloads = ["rnn"]\nbatch_sizes = [4, 8]\nmodes = ["infer"]\n')
    assert [s.id for s in expand(suite_file.load(path), backends.names())] == [
        "torch/rnn-tiny/infer/bs4/fp32/native/auto", "torch/rnn-tiny/infer/bs8/fp32/native/auto"]


@pytest.mark.parametrize("text, message", [
    ("backends = [", "is not valid TOML"),
    ('backends = ["torch"]\nworkloads = ["cnn"]\nbatchsize = 3\n', "unknown keys batchsize; valid keys: description,"),
    ('workloads = ["cnn"]\n', "missing backends"),
    ('backends = ["torch"]\nworkloads = ["gan"]\n', "unknown workload 'gan'; valid choices: cnn, rnn, transformer"),
    ('backends = ["torch"]\nworkloads = ["cnn"]\nbatch_sizes = [0]\n', "batch size must be a whole number above 0"),
    ('backends = ["torch"]\nworkloads = [{a = 1}]\n', "workloads must hold strings or numbers"),
    ('backends = []\nworkloads = ["cnn"]\n', "the case matrix has no backends"),
])
def test_malformed_suite_files(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SuiteFileError) as error:
        suite_file.load(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_unknown_suite_name():
    with pytest.raises(SuiteFileError, match="built-in suites: smoke, standard"):
        suite_file.load("nightly")


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(InvalidChoice, match="valid choices: torch, tensorflow, jax"):
        expand(Matrix(backends=("mxnet",), workloads=("cnn",)), backends.names())


def available(*devices, installed=True, reason=None):
    return Availability(name="torch", installed=installed, devices=devices, reason=reason,
                        install_hint="pip install -e '.[torch]'")


def test_auto_picks_the_best_device_and_missing_devices_are_skipped():
    assert best_device(available("cpu", "gpu")) == "gpu"
    assert best_device(available("cpu", "mps")) == "mps"
    assert best_device(available("cpu")) == "cpu"
    specs = [CaseSpec("torch", "cnn", "tiny", "train", 2, device=d) for d in ("auto", "gpu", "cpu")]
    planned = plan(specs, lambda spec: available("cpu"))
    # auto resolves to cpu, which merges with the explicit cpu case; gpu is skipped with a reason
    assert [(p.spec.device, p.skip_reason) for p in planned] == [
        ("cpu", None), ("gpu", "no gpu device visible to torch (it sees: cpu)")]


def test_a_missing_framework_skips_its_cases_with_the_install_command():
    (case,) = plan([CaseSpec("torch", "cnn", "tiny", "train", 2, device="auto")],
                   lambda spec: available(installed=False, reason="not installed (missing: torch)"))
    assert case.skip_reason == "torch not installed (missing: torch); install with: pip install -e '.[torch]'"
