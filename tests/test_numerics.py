"""One numeric policy on GPUs (issue 13 item 5): fp32 is IEEE fp32 in every framework, tf32 a precision of its own.

The switches are the frameworks' real ones, set here on CPU builds (they are process-wide flags that
exist without a GPU); the decision of which cases may run tf32 is tested with each backend's device facts.
"""

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT, tribench
from tribench.harness.efficiency import reference_precision
from tribench.harness.numerics import gpu_numerics, host_numerics
from tribench.harness.results import load_run

NOT_HERE = "tf32 is an NVIDIA tensor-core mode (CUDA compute capability >= 8.0); not applicable to cpu"


def _in_fresh_python(code: str) -> dict:
    """Run ``code`` (which prints one JSON line) in a fresh interpreter: framework flags stay out of this one."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_torch_sets_tf32_for_matmuls_and_convolutions_only_for_tf32_cases_on_cuda():
    result = _in_fresh_python(
        "import json, torch\n"
        "from tribench.backends.torch.adapter import apply_numerics\n"
        "torch.backends.cudnn.allow_tf32 = True  # torch's own default for convolutions\n"
        "fp32 = apply_numerics('fp32', 'cuda')\n"
        "after_fp32 = [torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32]\n"
        "tf32 = apply_numerics('tf32', 'cuda')\n"
        "after_tf32 = [torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32]\n"
        "bf16 = apply_numerics('bf16', 'cuda')\n"
        "after_bf16 = [torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32]\n"
        "print(json.dumps([fp32, after_fp32, tf32, after_tf32, after_bf16, apply_numerics('fp32', 'cpu')]))\n")
    fp32, after_fp32, tf32, after_tf32, after_bf16, cpu = result
    assert after_fp32 == [False, False] and after_tf32 == [True, True] and after_bf16 == [False, False]
    assert fp32 == gpu_numerics("fp32", "torch.backends.cuda.matmul.allow_tf32 = cudnn.allow_tf32 = False")
    assert tf32["fp32_math"] == "tf32"
    assert cpu == host_numerics("cpu")


def test_tensorflow_turns_its_default_tf32_off_for_fp32_on_a_gpu():
    result = _in_fresh_python(
        "import json, tensorflow as tf\n"
        "from tribench.backends.tensorflow.adapter import apply_numerics\n"
        "enabled = tf.config.experimental.tensor_float_32_execution_enabled\n"
        "default = enabled()\n"
        "fp32 = apply_numerics('fp32', 'gpu'); after_fp32 = enabled()\n"
        "tf32 = apply_numerics('tf32', 'gpu'); after_tf32 = enabled()\n"
        "print(json.dumps([default, fp32, after_fp32, tf32, after_tf32]))\n")
    default, fp32, after_fp32, tf32, after_tf32 = result
    assert default is True  # TensorFlow's own default: fp32 matmuls on TF32 tensor cores
    assert (after_fp32, after_tf32) == (False, True)
    assert fp32["fp32_math"] == "ieee-fp32" and tf32["fp32_math"] == "tf32"
    assert fp32["how"] == "tf.config.experimental.enable_tensor_float_32_execution(False)"


def test_jax_sets_float32_matmul_precision_for_fp32_on_a_gpu():
    result = _in_fresh_python(
        "import json, jax\n"
        "from tribench.backends.jax.adapter import apply_numerics\n"
        "default = jax.config.jax_default_matmul_precision\n"
        "fp32 = apply_numerics('fp32', 'gpu'); after_fp32 = jax.config.jax_default_matmul_precision\n"
        "tf32 = apply_numerics('tf32', 'gpu'); after_tf32 = jax.config.jax_default_matmul_precision\n"
        "cpu = apply_numerics('fp32', 'cpu'); after_cpu = jax.config.jax_default_matmul_precision\n"
        "print(json.dumps([default, after_fp32, after_tf32, after_cpu, fp32, cpu]))\n")
    default, after_fp32, after_tf32, after_cpu, fp32, cpu = result
    assert default is None  # JAX's own default: TF32 on Ampere+ GPUs
    assert (after_fp32, after_tf32, after_cpu) == ("float32", "tensorfloat32", "tensorfloat32")  # cpu: untouched
    assert fp32["how"] == "jax.config.update('jax_default_matmul_precision', 'float32')"
    assert cpu == host_numerics("cpu")


def test_who_may_run_tf32():
    from tribench.backends.jax import devices as jax_devices
    from tribench.backends.tensorflow import devices as tf_devices
    from tribench.backends.torch import devices as torch_devices

    assert torch_devices.precision_skip_reason("tf32", torch_devices.DeviceFacts("cpu")) == NOT_HERE
    assert torch_devices.precision_skip_reason("tf32", torch_devices.DeviceFacts(
        "cuda", compute_capability=(8, 0))) is None
    assert torch_devices.precision_skip_reason("tf32", torch_devices.DeviceFacts(
        "cuda", compute_capability=(7, 5))) == "tf32 needs CUDA compute capability >= 8.0 (Ampere); this GPU has 7.5"
    assert torch_devices.precision_skip_reason("tf32", torch_devices.DeviceFacts("cuda", rocm=True)) == (
        "tf32 is an NVIDIA tensor-core mode; this GPU is served by ROCm")
    assert tf_devices.precision_problem("cpu", "tf32") == NOT_HERE
    assert tf_devices.precision_problem("gpu", "tf32", (9, 0)) is None
    assert jax_devices.precision_skip_reason("tf32", jax_devices.DeviceFacts("cpu")) == NOT_HERE
    assert jax_devices.precision_skip_reason("tf32", jax_devices.DeviceFacts(
        "gpu", gpu_vendor="cuda", compute_capability="9.0")) is None
    assert jax_devices.precision_skip_reason("tf32", jax_devices.DeviceFacts("tpu")) == "TPUs have no TF32 mode"


def test_an_fp32_case_is_held_against_the_fp32_peak_and_a_tf32_case_against_tf32():
    stale = [{"backend": "jax", "device": "gpu", "fp32_case_math": "tf32"}]  # cached before the policy
    assert reference_precision("fp32", "jax", "gpu", stale) == "fp32"
    assert reference_precision("tf32", "jax", "gpu", stale) == "tf32"
    tpu = [{"backend": "jax", "device": "tpu", "fp32_case_math": "bf16"}]
    assert reference_precision("fp32", "jax", "tpu", tpu) == "bf16"  # a TPU keeps its default bf16 passes


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_a_tf32_case_on_this_cpu_is_skipped_with_the_reason(backend, tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", "--backend", backend, "--workload", "cnn", "--mode", "infer", "--precision", "tf32",
                    "--processes", "1", "--no-energy", "--output", str(out))
    assert done.returncode == 0, done.stderr
    case = load_run(out)["cases"][0]
    assert (case["status"], case["error"]) == ("skipped", NOT_HERE)


def test_every_case_records_its_numerics_and_fast_paths(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", "--backend", "torch,tensorflow,jax", "--workload", "cnn", "--mode", "infer",
                    "--processes", "1", "--min-time", "0.05", "--max-time", "0.2", "--sustained-time", "0.05",
                    "--no-energy", "--output", str(out))
    assert done.returncode == 0, done.stderr
    for case in load_run(out)["cases"]:
        build = case["repeats"][0]["build"]
        assert build["numerics"] == host_numerics("cpu"), case["id"]
        assert list(build["fast_paths"]) == ["memory_format"], case["id"]  # a CNN, inference: no optimizer
        assert build["fast_paths"]["memory_format"]["rule"], case["id"]
