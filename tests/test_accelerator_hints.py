"""A GPU the machine has but a framework does not see (a CPU-only build): `list backends` and `env` say so
and name the command that installs the GPU build. NVML and the frameworks are faked."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tribench.backends.base import Availability
from tribench.cli import app, listing
from tribench.harness import environment
from tribench.harness.accelerator_hints import unseen_gpus

TWO_H200 = {"available": True, "driver": "580.95", "devices": [
    {"index": 0, "name": "NVIDIA H200", "memory_total_bytes": 150_000_000_000},
    {"index": 1, "name": "NVIDIA H200", "memory_total_bytes": 150_000_000_000}]}
CPU_TORCH = Availability("torch", True, "2.13.0+cpu", ("cpu",))
GPU_TF = Availability("tensorflow", True, "2.21.0", ("cpu", "gpu"))
NO_JAX = Availability("jax", False, reason="jax is not installed")
TORCH_HINT = ("this machine has 2 NVIDIA GPU(s) (NVIDIA H200; NVML) but torch 2.13.0+cpu sees none: a CPU-only "
              "build, or GPU libraries it cannot load; fix: pip install torch --index-url "
              "https://download.pytorch.org/whl/cu128 (a CUDA build)")


def test_only_an_installed_framework_blind_to_the_machines_gpus_gets_a_hint():
    assert unseen_gpus(TWO_H200, [CPU_TORCH, GPU_TF, NO_JAX]) == {"torch": TORCH_HINT}


def test_each_framework_names_its_own_gpu_build():
    blind = [Availability("tensorflow", True, "2.21.0", ("cpu",)), Availability("jax", True, "0.10.2", ("cpu",))]
    hints = unseen_gpus(TWO_H200, blind)
    assert hints["tensorflow"].endswith("fix: pip uninstall -y tensorflow-cpu && pip install -e '.[tensorflow-cuda]'")
    assert hints["jax"].endswith("fix: pip install -e '.[jax-cuda]'")


def test_no_gpu_or_no_nvml_means_no_hint():
    assert unseen_gpus({"available": False, "reason": "NVML unavailable: no driver", "devices": []}, [CPU_TORCH]) == {}
    assert unseen_gpus({"available": True, "driver": "580", "devices": []}, [CPU_TORCH]) == {}


def test_list_backends_and_env_show_the_hint(monkeypatch):
    monkeypatch.setattr(listing, "_availabilities", lambda: [CPU_TORCH, GPU_TF, NO_JAX])
    monkeypatch.setattr(environment, "nvidia_gpus", lambda nvml=None: TWO_H200)
    runner = CliRunner()
    listed = runner.invoke(app, ["list", "backends"], terminal_width=400)
    assert listed.exit_code == 0, listed.output
    assert "torch 2.13.0+cpu sees none: a CPU-only build" in " ".join(listed.output.split())
    captured = runner.invoke(app, ["env", "--json"])
    assert captured.exit_code == 0, captured.output
    assert json.loads(captured.output)["accelerator_hints"] == {"torch": TORCH_HINT}
