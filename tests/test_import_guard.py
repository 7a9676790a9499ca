"""A worker imports its own framework and no other (issue 13): blocked in the process, recorded per case."""

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT, tribench
from tribench.harness.import_guard import packages_to_block
from tribench.harness.results import load_run


def test_each_built_in_backend_blocks_the_others_packages():
    assert packages_to_block("torch") == ("flax", "jax", "jaxlib", "keras", "optax", "orbax", "paddle", "paddlenlp",
                                          "tensorflow", "tf_keras")
    assert packages_to_block("tensorflow") == ("flax", "jax", "jaxlib", "optax", "orbax", "paddle", "paddlenlp",
                                               "torch", "torchaudio", "torchvision")
    assert packages_to_block("jax") == ("keras", "paddle", "paddlenlp", "tensorflow", "tf_keras", "torch", "torchaudio",
                                        "torchvision")
    assert packages_to_block("paddle") == ("flax", "jax", "jaxlib", "keras", "optax", "orbax", "tensorflow",
                                           "tf_keras", "torch", "torchaudio", "torchvision")
    assert packages_to_block("fake") == ()  # an out-of-tree backend: we do not know what it needs


def test_a_blocked_framework_looks_absent_to_imports_and_to_find_spec():
    code = ("import importlib.util, json\n"
            "from tribench.harness.import_guard import block_other_frameworks\n"
            "block_other_frameworks('torch')\n"
            "try:\n    import jax\n    outcome = 'imported'\nexcept ModuleNotFoundError as error:\n"
            "    outcome = type(error).__name__\n"
            "print(json.dumps([outcome, importlib.util.find_spec('jax') is None]))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["ModuleNotFoundError", True]


@pytest.mark.parametrize("start", ["--fork-server", "--fresh-interpreters"])
def test_torch_and_tensorflow_workers_never_import_another_framework(start, tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", "--backend", "torch,tensorflow", "--workload", "cnn", "--mode", "train", start,
                    "--processes", "1", "--min-time", "0.05", "--max-time", "0.2", "--no-energy", "--output", str(out))
    assert done.returncode == 0, done.stderr
    imports = {case["spec"]["backend"]: case["repeats"][0]["imports"] for case in load_run(out)["cases"]}
    assert imports["torch"]["frameworks"] == ["torch"]
    # TensorFlow 2.21 loads JAX whenever JAX is installed; blocked, it does not
    assert imports["tensorflow"]["frameworks"] == ["keras", "tensorflow"]
    assert imports["tensorflow"]["blocked"] == list(packages_to_block("tensorflow"))
