"""Workload plugins, their logic: the contract, where plugins are found (files, entry points, hf:), how the
matrix, the planner and the run file's FLOPs treat them. No framework is imported here; the runs through
real frameworks are in test_workload_plugins_run.py."""

from __future__ import annotations

import importlib.metadata
import os
import sys
import textwrap
from pathlib import Path

import pytest

from tribench.core.errors import InvalidChoice, InvalidValue
from tribench.core.spec import CaseSpec
from tribench.harness.aggregate import step_flops
from tribench.harness.efficiency import case_efficiency
from tribench.harness.planner import workload_skip_reason
from tribench.suites import Matrix, expand, plugins, workloads
from tribench.suites.plugins import BrokenWorkload, Workload

BACKENDS = ["torch", "tensorflow", "jax"]
PLUGIN_FILE = '''
from tribench.plugins import Workload

def params(size):
    return {"tiny": 100, "large": 10_000}[size]

probe = Workload("probe", "a test workload", {"tiny": {"width": 4}, "large": {"width": 64}},
                 {"torch": "probe_torch:build"}, params=params, forward_flops=lambda size: 50)
counted = Workload("counted", "no formulas", {"tiny": {}}, {"torch": "x:y", "jax": "x:y"})
taken = Workload("cnn", "takes a built-in name", {"tiny": {}}, {"torch": "x:y"})
'''


@pytest.fixture
def clean_registry(monkeypatch):
    """No workload files registered and entry points read afresh, before and after the test."""
    monkeypatch.delenv(plugins.FILES_ENV, raising=False)
    plugins.entry_point_workloads.cache_clear()
    with plugins.files_scope():  # what a test registers never reaches later tests' processes
        yield monkeypatch
    plugins.entry_point_workloads.cache_clear()


@pytest.fixture
def plugin_file(tmp_path, clean_registry) -> Path:
    path = tmp_path / "model.py"
    path.write_text(PLUGIN_FILE)
    return path


def spec(workload: str, backend: str = "torch", size: str = "tiny", **fields) -> CaseSpec:
    return CaseSpec(backend=backend, workload=workload, size=size, mode=fields.pop("mode", "train"),
                    batch_size=8, **fields)


# ---------------------------------------------------------------- the contract


def test_analytic_figures_follow_the_built_in_conventions_and_are_absent_without_a_formula():
    workload = Workload("w", "", {"tiny": {}}, {"torch": "m:f"}, params=lambda size: 7,
                        forward_flops=lambda size: 10, tokens_per_sample_of=lambda size: 4)
    assert (workload.flops_per_step("tiny", "train", 8), workload.flops_per_step("tiny", "infer", 8)) == (240, 80)
    assert (workload.expected_params("tiny"), workload.tokens_per_sample("tiny")) == (7, 4)
    bare = Workload("b", "", {"tiny": {}}, {})
    assert (bare.flops_per_step("tiny", "train", 8), bare.expected_params("tiny"), bare.tokens_per_sample("tiny")) \
        == (None, None, None)


def test_a_framework_without_a_builder_and_a_missing_package_are_reasons_with_the_fix():
    workload = Workload("w", "", {"tiny": {}}, {"torch": "m:f"}, requires=("surely_not_installed_pkg",),
                        install_hint="pip install surely-not", unsupported_note="it is a PyTorch model")
    assert workload.unsupported_reason("torch") is None
    assert workload.unsupported_reason("jax") == ("workload w has no jax builder (it supports: torch): it is a "
                                                  "PyTorch model")
    assert workload.missing_requirement() == ("workload w needs surely_not_installed_pkg (not installed); "
                                              "install with: pip install surely-not")


def test_a_build_request_carries_the_size_settings_and_the_compute_dtype():
    workload = Workload("w", "", {"tiny": {"width": 4}}, {})
    request = workload.request("tiny", 8, "train", "bf16", "cpu", 0)
    assert (request.config, request.compute_dtype, request.batch_size, request.mode) == ({"width": 4}, "bfloat16",
                                                                                         8, "train")
    with pytest.raises(InvalidValue, match="workload w has no size 'small'; its sizes: tiny"):
        workload.request("small", 8, "train", "fp32", "cpu", 0)


# ---------------------------------------------------------------- files


def test_a_registered_file_is_known_to_this_process_and_its_workers(plugin_file, clean_registry):
    assert plugins.register_file(f"{plugin_file}:probe") == "probe"
    assert plugins.FILES_ENV in __import__("os").environ
    found = workloads.get("probe")
    assert (found.name, found.origin) == ("probe", f"file {plugin_file}:probe")
    assert found.expected_params("large") == 10_000
    assert "probe" in workloads.names()


def test_a_file_reference_must_name_a_python_file_and_an_object(tmp_path, clean_registry):
    with pytest.raises(InvalidValue, match=r"path/to/model.py:NAME .* got 'model.py'"):
        plugins.register_file("model.py")
    with pytest.raises(InvalidValue, match="workload file .*nowhere.py does not exist"):
        plugins.register_file(f"{tmp_path}/nowhere.py:probe")


def test_a_file_that_fails_to_import_is_a_broken_workload_with_one_line(tmp_path, clean_registry):
    path = tmp_path / "broken.py"
    path.write_text("import surely_not_a_module_here\n")
    assert plugins.register_file(f"{path}:mine") == "mine"
    broken = workloads.get("mine")   # found by the attribute the command line named
    assert isinstance(broken, BrokenWorkload)
    assert broken.reason == (f"file {path}:mine failed to load: ModuleNotFoundError: No module named "
                             "'surely_not_a_module_here'")
    assert "\n" not in broken.reason


def test_a_file_object_that_is_no_workload_or_is_missing_is_broken(tmp_path, clean_registry):
    path = tmp_path / "odd.py"
    path.write_text("thing = 3\n")
    plugins.register_file(f"{path}:thing")
    plugins.register_file(f"{path}:absent")
    assert workloads.get("thing").reason == f"file {path}:thing gives a int, not a tribench.plugins.Workload"
    assert workloads.get("absent").reason == f"{path} has no 'absent'"


def test_a_file_cannot_take_a_built_in_name_or_another_plugin_s(plugin_file, tmp_path):
    with pytest.raises(InvalidValue) as error:
        plugins.register_file(f"{plugin_file}:taken", taken=workloads.name_taken)
    assert str(error.value) == (f"--workload {plugin_file}:taken: its workload is named 'cnn', which is a built-in "
                                "workload's name; a plugin adds workloads, it cannot replace one; rename it")
    assert workloads.get("cnn") is workloads.WORKLOADS["cnn"]
    plugins.register_file(f"{plugin_file}:probe", taken=workloads.name_taken)
    other = tmp_path / "other.py"
    other.write_text(PLUGIN_FILE)
    with pytest.raises(InvalidValue, match=f"its workload is named 'probe', which is already file {plugin_file}:"
                                           "probe's; rename it"):
        plugins.register_file(f"{other}:probe", taken=workloads.name_taken)
    plugins.register_file(f"{plugin_file}:probe", taken=workloads.name_taken)  # the same file again is fine
    assert workloads.get("probe").origin == f"file {plugin_file}:probe"


def test_a_plugin_that_takes_a_taken_name_is_left_out_and_listed_as_refused(plugin_file, clean_registry):
    clean_registry.setenv(plugins.FILES_ENV, f'["{plugin_file}:taken"]')   # as a worker would be told
    found, refused = workloads.plugin_workloads()
    assert "cnn" not in found
    assert refused == [f"cnn from file {plugin_file}:taken is not registered: 'cnn' is a built-in workload's name; "
                       "a plugin adds workloads, it cannot replace one"]


def test_a_file_may_name_a_function_that_returns_the_workload(tmp_path, clean_registry):
    path = tmp_path / "factory.py"
    path.write_text("from tribench.plugins import Workload\n"
                    "def make():\n    return Workload('made', 'from a factory', {'tiny': {}}, {})\n")
    assert plugins.register_file(f"{path}:make") == "made"
    assert workloads.get("made").origin == f"file {path}:make"


def test_a_file_is_loaded_once_per_version(tmp_path, clean_registry):
    log = tmp_path / "executions.txt"
    path = tmp_path / "counting.py"
    source = (f"open({str(log)!r}, 'a').write('x')\n"
              "from tribench.plugins import Workload\nw = Workload('counting', '', {{'tiny': {{}}}}, {{}})\n")
    path.write_text(source.replace("{{", "{").replace("}}", "}"))
    plugins.register_file(f"{path}:w")
    for _ in range(5):
        workloads.get("counting")
        expand(Matrix(backends=("torch",), workloads=("counting",)), BACKENDS)
    assert log.read_text() == "x"
    path.write_text(path.read_text().replace("'counting', ''", "'counting', 'edited'"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert workloads.get("counting").description == "edited" and log.read_text() == "xx"


def test_files_registered_in_a_scope_are_forgotten_after_it(plugin_file, clean_registry):
    with plugins.files_scope():
        plugins.register_file(f"{plugin_file}:probe")
        assert workloads.get("probe").name == "probe"
    assert plugins.FILES_ENV not in os.environ
    with pytest.raises(InvalidChoice):
        workloads.get("probe")


# ---------------------------------------------------------------- entry points


def test_an_installed_distribution_registers_workloads_by_entry_point(tmp_path, clean_registry):
    site = tmp_path / "site"
    (site / "ep_plugin").mkdir(parents=True)
    (site / "ep_plugin" / "__init__.py").write_text(PLUGIN_FILE + "\ndef broken():\n    raise RuntimeError('no')\n")
    info = site / "ep_plugin-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 2.0\n")
    (info / "entry_points.txt").write_text("[tribench.workloads]\nprobe = ep_plugin:probe\n"
                                           "wrongname = ep_plugin:counted\nfails = ep_plugin:broken\n")
    clean_registry.syspath_prepend(str(site))
    importlib.invalidate_caches()
    assert "ep_plugin" not in sys.modules
    probe = workloads.get("probe")
    assert probe.origin == "entry point ep_plugin:probe of ep-plugin 2.0"
    assert workloads.get("wrongname").reason == ("entry point ep_plugin:counted of ep-plugin 2.0 is registered as "
                                                 "'wrongname' but its Workload is named 'counted'")
    assert workloads.get("fails").reason == ("entry point ep_plugin:broken of ep-plugin 2.0 failed to load: "
                                             "RuntimeError: no")
    assert [point.name for point in importlib.metadata.entry_points(group=plugins.ENTRY_POINT_GROUP)] == [
        "probe", "wrongname", "fails"]


# ---------------------------------------------------------------- the matrix and the planner


def test_a_plugin_offers_its_own_sizes_and_pairs_it_lacks_are_left_out(plugin_file):
    plugins.register_file(f"{plugin_file}:probe")
    matrix = Matrix(backends=("torch",), workloads=("cnn", "probe"), sizes=("tiny", "large"), modes=("train",))
    assert [s.id for s in expand(matrix, BACKENDS)] == [
        "torch/cnn-tiny/train/bs32/fp32/native/auto", "torch/probe-tiny/train/bs32/fp32/native/auto",
        "torch/probe-large/train/bs32/fp32/native/auto"]
    with pytest.raises(InvalidValue, match=r"no requested workload has size 'huge' \(cnn: tiny, small, standard; "
                                           r"probe: tiny, large\)"):
        expand(Matrix(backends=("torch",), workloads=("cnn", "probe"), sizes=("huge",)), BACKENDS)


def test_an_unknown_workload_names_every_way_to_give_one(clean_registry):
    with pytest.raises(InvalidChoice) as error:
        expand(Matrix(backends=("torch",), workloads=("nope",)), BACKENDS)
    assert str(error.value) == ("unknown workload 'nope'; valid choices: cnn, rnn, transformer, decoder, "
                                "hf:<model type or config.json>, path/to/model.py:NAME")


def test_the_planner_skips_what_a_plugin_cannot_run_and_lets_broken_plugins_fail(plugin_file, tmp_path):
    plugins.register_file(f"{plugin_file}:probe")
    broken = tmp_path / "broken.py"
    broken.write_text("raise SystemError('bad')\n")
    plugins.register_file(f"{broken}:gone")
    assert workload_skip_reason(spec("probe")) is None
    assert workload_skip_reason(spec("probe", "jax")) == "workload probe has no jax builder (it supports: torch)"
    assert workload_skip_reason(spec("probe", devices=2)) == (
        "plugin workloads run on one device (data-parallel cases cover the built-in workloads)")
    assert workload_skip_reason(spec("gone")) is None   # it runs, and fails with its reason
    assert workload_skip_reason(spec("cnn", "jax")) is None


def test_a_missing_package_is_the_worker_s_to_find_under_the_case_s_interpreter(plugin_file):
    from tribench.backends import plugin_support
    from tribench.backends.base import CaseSkipped

    needy = Workload("needy", "", {"tiny": {}}, {"torch": "m:f"}, requires=("surely_not_installed_pkg",),
                     install_hint="pip install it")
    assert workload_skip_reason(spec("cnn")) is None
    with pytest.raises(CaseSkipped, match=r"workload needy needs surely_not_installed_pkg \(not installed\); "
                                          "install with: pip install it"):
        plugin_support.parts_for(needy, spec("needy"), "torch", "cpu")


# ---------------------------------------------------------------- FLOPs in the run file


def test_flops_are_analytic_where_a_formula_exists_else_the_framework_counter_s(plugin_file):
    plugins.register_file(f"{plugin_file}:probe")
    plugins.register_file(f"{plugin_file}:counted")
    assert step_flops(spec("probe")) == {"value": 50 * 8 * 3, "unit": "FLOP",
                                         "source": "analytic (the workload plugin's forward_flops; train = 3 x "
                                                   "forward)"}
    assert step_flops(spec("cnn"))["source"] == "analytic (suites.workloads; train = 3 x forward)"
    counted = {"value": 1234, "unit": "FLOP", "source": "the counter"}
    repeats = [{"status": "failed"}, {"status": "ok", "build": {"counted_flops": counted}}]
    assert step_flops(spec("counted"), repeats) == counted
    missing = step_flops(spec("counted"), [])
    assert (missing["value"], missing["reason"]) == (
        None, "the workload has no analytic formula and no process counted its FLOPs")


def test_without_flops_every_efficiency_figure_is_unavailable_with_the_reason():
    metrics = case_efficiency(spec("x").to_dict(), None, 0.01, None, flops_source="counter", flops_reason="why")
    assert {name: (m["value"], m["reason"]) for name, m in metrics.items()} == {
        "achieved_flops_per_s": (None, "why"), "mfu": (None, "why"), "spec_fraction": (None, "why")}
    counted = case_efficiency(spec("x").to_dict(), 1e9, 0.01, None, flops_source="the counter")
    assert counted["achieved_flops_per_s"] == {"value": 1e11, "unit": "FLOP/s",
                                               "source": "the counter / the step time behind the throughput"}


# ---------------------------------------------------------------- hf:


def test_hugging_face_names_resolve_to_pytorch_only_workloads(tmp_path):
    bert = workloads.get("hf:bert")
    assert (tuple(bert.sizes), tuple(bert.builders), bert.requires) == (("tiny", "small", "standard"), ("torch",),
                                                                       ("transformers",))
    assert bert.unsupported_reason("tensorflow") == ("workload hf:bert has no tensorflow builder (it supports: "
                                                     "torch): Transformers 5 builds PyTorch models only")
    assert bert.tokens_per_sample("small") == 128
    with pytest.raises(InvalidChoice, match="unknown Hugging Face model 'bret'; valid choices: bert, gpt2, t5"):
        workloads.get("hf:bret")
    with pytest.raises(InvalidValue, match="workload hf:.*missing.json: no configuration at"):
        workloads.get(f"hf:{tmp_path}/missing.json")


def test_a_configuration_file_is_one_size_and_keeps_the_path_as_given(tmp_path, monkeypatch):
    """As given, so a case id names the same model on every machine; workers share the parent's folder."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text('{"model_type": "gpt2"}')
    monkeypatch.chdir(tmp_path)
    workload = workloads.get("hf:mine")
    assert workload.name == "hf:mine"
    assert tuple(workload.sizes) == ("standard",)
    assert workload.sizes["standard"]["config_file"] == str(tmp_path / "mine" / "config.json")


def test_listing_a_plugin_imports_no_framework(plugin_file):
    import subprocess

    code = textwrap.dedent(f"""
        import sys
        from tribench.suites import plugins, workloads
        plugins.register_file({str(plugin_file) + ':probe'!r})
        workloads.get("probe"); workloads.get("hf:t5")
        print(sorted(m for m in ("torch", "tensorflow", "jax", "transformers") if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
