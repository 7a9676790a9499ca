"""Workload plugins through ``tribench run`` and real frameworks: the example plugin package installed into a
temporary site folder, a workload file in the current folder, broken plugins beside good ones, and
Hugging Face models built offline from their configurations."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tribench.harness.results import load_run

EXAMPLE = ROOT / "examples" / "tribench-mlp-plugin"
FILES = ROOT / "tests" / "data" / "workload_files"
HIDE_FOLDER = ROOT / "tests" / "hide_frameworks"
QUICK = ("--processes", "1", "--min-time", "0.05", "--max-time", "0.3", "--sustained-time", "0", "--no-energy",
         "--idle-baseline", "0", "--min-steps", "3")


def tribench_in(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real CLI of this checkout, started in ``folder`` (the user's current folder)."""
    env = dict(env or os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([str(ROOT)] if str(ROOT) not in paths else []))
    return subprocess.run([sys.executable, "-m", "tribench", *args], cwd=folder, capture_output=True, text=True,
                          timeout=900, env={**env, "COLUMNS": "300"})


def cases_by_id(path: Path) -> dict[str, dict]:
    return {case["id"]: case for case in load_run(path)["cases"]}


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> dict[str, str]:
    """The example plugin installed (pip, real *.dist-info) into a temporary site folder; that environment."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(EXAMPLE)], check=True, capture_output=True, text=True, timeout=300)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def test_the_installed_example_plugin_is_listed_with_its_origin(example_site, tmp_path):
    listed = tribench_in(tmp_path, "list", "workloads", env=example_site)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if line.startswith("│ mlp ")]
    assert [row.split("│")[2].strip() for row in rows] == ["tiny", "small"]
    assert "26,122" in rows[0] and "torch, tensorflow, jax, paddle" in rows[0]
    assert "entry point tribench_mlp:WORKLOAD of" in rows[0]


def test_the_installed_example_plugin_runs_in_every_framework_it_declares(example_site, tmp_path):
    out = tmp_path / "run.json"
    done = tribench_in(tmp_path, "run", "--backend", "torch,tensorflow,jax,paddle", "--workload", "mlp",
                       "--size", "tiny", "--mode", "train,infer", *QUICK, "-o", str(out), env=example_site)
    assert done.returncode == 0, done.stderr
    cases = load_run(out)["cases"]
    assert sorted((c["spec"]["backend"], c["spec"]["mode"], c["status"]) for c in cases) == sorted(
        (backend, mode, "ok") for backend in ("torch", "tensorflow", "jax", "paddle") for mode in ("train", "infer"))
    for case in cases:  # the plugin's analytic counts, and every framework built exactly that model
        assert case["metrics"]["params"]["value"] == case["workload"]["expected_params"] == 26_122
        forward = 2 * (64 * 128 + 128 * 128 + 128 * 10) * 32
        assert case["workload"]["flops_per_step"]["value"] == forward * (3 if case["spec"]["mode"] == "train" else 1)
        assert case["workload"]["origin"].startswith("entry point tribench_mlp:WORKLOAD of tribench-mlp-plugin")
        assert case["repeats"][0]["build"]["workload_plugin"]["builder"].startswith("tribench_mlp.")


def test_a_workload_file_in_the_current_folder_runs_and_bad_plugins_fail_alone(tmp_path):
    for name in ("counted.py", "bad.py", "broken.py"):
        shutil.copy(FILES / name, tmp_path / name)
    out = tmp_path / "run.json"
    workloads = "counted.py:counted,bad.py:raising,bad.py:per_sample,bad.py:torch_only,broken.py:gone"
    done = tribench_in(tmp_path, "run", "--backend", "torch,tensorflow,jax,paddle", "--workload", workloads,
                       "--size", "tiny", "--mode", "train", "--batch", "8", *QUICK, "-o", str(out))
    assert done.returncode == 0, done.stderr
    cases = cases_by_id(out)
    point = "-tiny/train/bs8/fp32/native/cpu"
    for backend in ("torch", "tensorflow", "jax", "paddle"):
        counted = cases[f"{backend}/counted{point}"]
        assert counted["status"] == "ok", counted.get("error")
        assert counted["metrics"]["params"]["value"] == 16 * 4 + 4
        assert counted["workload"]["expected_params"] is None
        assert counted["metrics"]["achieved_flops_per_s"]["value"] > 0
    flops = {backend: cases[f"{backend}/counted{point}"]["workload"]["flops_per_step"] for backend in
             ("torch", "tensorflow", "jax", "paddle")}
    assert flops["torch"]["source"].startswith("torch.utils.flop_counter.FlopCounterMode over one forward and "
                                               "backward pass")
    assert flops["tensorflow"]["source"].startswith("tf.compat.v1.profiler float_operation()")
    assert flops["jax"]["source"].startswith("jax.jit(step).lower(...).cost_analysis()['flops']")
    forward = 2 * 8 * 16 * 4  # the matmul's multiply-adds; its backward needs only the weight gradient here
    assert flops["torch"]["value"] == 2 * forward
    assert flops["paddle"]["source"].startswith("2 x paddle.flops's per-layer count")
    assert flops["paddle"]["value"] == 3 * forward   # Linear's multiply-adds, and training as 3 x forward
    assert flops["tensorflow"]["value"] >= 2 * forward and flops["jax"]["value"] >= 2 * forward

    def outcome(case_id: str) -> tuple[str, str]:
        case = cases[case_id]
        return case["status"], case["error"]

    assert outcome(f"torch/raising{point}") == (
        "failed", "PluginError: workload raising: its torch builder raised ValueError: boom: the builder cannot "
                  "build this")
    assert outcome(f"torch/per-sample{point}") == (
        "failed", "PluginError: workload per-sample: its loss has shape (8,), not a scalar; return one number per "
                  "step (e.g. the mean over the batch)")
    assert cases[f"torch/torch-only{point}"]["status"] == "ok"
    skipped = cases["tensorflow/torch-only-tiny/train/bs8/fp32/native/auto"]
    assert (skipped["status"], skipped["error"]) == (
        "skipped", "workload torch-only has no tensorflow builder (it supports: torch)")
    for backend in ("torch", "tensorflow", "jax"):
        status, error = outcome(f"{backend}/gone{point}")
        assert status == "failed"
        assert error == (f"PluginError: file {tmp_path / 'broken.py'}:gone failed to load: ModuleNotFoundError: "
                         "No module named 'surely_not_an_installed_module'")


# ---------------------------------------------------------------- Hugging Face


def test_hugging_face_models_run_offline_in_pytorch_and_are_skipped_elsewhere(tmp_path):
    out = tmp_path / "run.json"
    done = tribench_in(tmp_path, "run", "--backend", "torch,jax", "--workload", "hf:bert,hf:gpt2,hf:t5",
                       "--size", "tiny", "--mode", "train,infer", "--batch", "4", *QUICK, "-o", str(out),
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    cases = load_run(out)["cases"]
    torch_cases = [case for case in cases if case["spec"]["backend"] == "torch"]
    assert sorted((c["spec"]["workload"], c["spec"]["mode"], c["status"]) for c in torch_cases) == sorted(
        (f"hf:{model}", mode, "ok") for model in ("bert", "gpt2", "t5") for mode in ("train", "infer"))
    for case in torch_cases:
        assert case["workload"]["flops_per_step"]["value"] > 0
        assert case["workload"]["tokens_per_sample"] == 32
        assert case["metrics"]["token_throughput"]["value"] > 0
    for case in (case for case in cases if case["spec"]["backend"] == "jax"):
        assert (case["status"], case["error"]) == ("skipped", f"workload {case['spec']['workload']} has no jax "
                                                   "builder (it supports: torch): Transformers 5 builds PyTorch "
                                                   "models only")


def test_a_local_hugging_face_configuration_runs_as_written(tmp_path):
    (tmp_path / "tiny-gpt").mkdir()
    (tmp_path / "tiny-gpt" / "config.json").write_text(
        '{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 1, "n_embd": 32, "n_head": 2, '
        '"vocab_size": 100, "n_positions": 256}')
    out = tmp_path / "run.json"
    done = tribench_in(tmp_path, "run", "--backend", "torch", "--workload", "hf:tiny-gpt", "--size", "standard",
                       "--mode", "train", "--batch", "2", *QUICK, "-o", str(out))
    assert done.returncode == 0, done.stderr
    (case,) = load_run(out)["cases"]
    assert case["status"] == "ok", case.get("error")
    assert case["spec"]["workload"] == "hf:tiny-gpt"   # as given: the same case id on every machine
    embeddings = 100 * 32 + 256 * 32
    block = 2 * 2 * 32 + (32 * 96 + 96) + (32 * 32 + 32) + (32 * 128 + 128) + (128 * 32 + 32)
    assert case["metrics"]["params"]["value"] == embeddings + block + 2 * 32  # the head is tied to the embedding


def test_a_missing_transformers_skips_the_case_with_its_install_command(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{HIDE_FOLDER}{os.pathsep}{ROOT}", "TRIBENCH_TEST_HIDE": "transformers"}
    out = tmp_path / "run.json"
    done = tribench_in(tmp_path, "run", "--backend", "torch", "--workload", "hf:bert,cnn", "--mode", "infer",
                       *QUICK, "-o", str(out), env=env)
    assert done.returncode == 0, done.stderr
    cases = {case["spec"]["workload"]: case for case in load_run(out)["cases"]}
    assert (cases["hf:bert"]["status"], cases["hf:bert"]["error"]) == (
        "skipped", "workload hf:bert needs transformers (not installed); install with: pip install -e "
                   "'.[huggingface]'")
    assert cases["cnn"]["status"] == "ok"


def test_the_published_configurations_have_their_published_parameter_counts():
    import torch

    from tribench.backends.torch import huggingface
    from tribench.backends.torch.models import trainable_params
    from tribench.suites import workloads
    from tribench.suites.huggingface import PUBLISHED_PARAMS

    for model, (_, published) in PUBLISHED_PARAMS.items():
        workload = workloads.get(f"hf:{model}")
        request = workload.request("standard", 1, "infer", "fp32", torch.device("cpu"), 0)
        built = huggingface.build(request)
        assert trainable_params(built.model) == published, model
    assert PUBLISHED_PARAMS["bert"][1] - (768 * 768 + 768 + 2 * 768 + 30_522) + (768 * 768 + 768) == 109_482_240
