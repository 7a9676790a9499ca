"""Which environment variables a run file records: by name, each for a stated reason, never a secret.

A run file must say which settings the frameworks ran under (thread counts, allocator and XLA flags,
visible devices, oneDNN and cuDNN switches), and must never carry a credential. Capturing every
variable under a prefix did both (``TF_`` is also Terraform's prefix: ``TF_TOKEN_<host>``,
``TF_VAR_*``), so variables are captured by exact name (``BY_NAME``) or by a documented pattern
(``BY_PATTERN``, or a backend's own in its registry entry: ``backends.BackendEntry.env_vars``), each with
a one-line reason. Whatever the rule, a variable whose name looks
secret is withheld, and a value that looks like a credential is replaced by ``<redacted>``
(``harness.redaction``); the run file lists both, with why (``capture``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from tribench import backends
from tribench.harness.redaction import REDACTED, credential_value_reason, secret_name_reason

BY_NAME: dict[str, str] = {
    # threads and affinity of the CPU runtimes every framework uses
    "OMP_NUM_THREADS": "OpenMP threads (PyTorch's intra-op pool, oneDNN)",
    "OMP_PROC_BIND": "OpenMP thread binding",
    "OMP_PLACES": "OpenMP thread places",
    "OMP_WAIT_POLICY": "OpenMP spin or sleep while idle",
    "OMP_DYNAMIC": "OpenMP may shrink its pools",
    "MKL_NUM_THREADS": "MKL threads",
    "MKL_DYNAMIC": "MKL may shrink its pools",
    "MKL_ENABLE_INSTRUCTIONS": "MKL's instruction-set ceiling",
    "MKL_CBWR": "MKL's conditional numerical reproducibility (kernel choice)",
    "OPENBLAS_NUM_THREADS": "OpenBLAS threads",
    "OPENBLAS_CORETYPE": "OpenBLAS kernel choice",
    "KMP_AFFINITY": "Intel OpenMP thread affinity",
    "KMP_BLOCKTIME": "Intel OpenMP spin time before sleeping",
    "KMP_HW_SUBSET": "Intel OpenMP cores used",
    "GOMP_CPU_AFFINITY": "GNU OpenMP thread affinity",
    "GOMP_SPINCOUNT": "GNU OpenMP spin count",
    # devices a framework may see
    "CUDA_VISIBLE_DEVICES": "the GPUs CUDA frameworks see",
    "CUDA_DEVICE_ORDER": "how CUDA numbers the GPUs",
    "CUDA_LAUNCH_BLOCKING": "synchronous kernel launches (slow, for debugging)",
    "CUDA_MODULE_LOADING": "lazy or eager CUDA module loading",
    "CUDA_DEVICE_MAX_CONNECTIONS": "CUDA hardware work queues",
    "NVIDIA_VISIBLE_DEVICES": "the GPUs a container sees",
    "NVIDIA_TF32_OVERRIDE": "switches TF32 off in cuBLAS/cuDNN for every framework",
    "HIP_VISIBLE_DEVICES": "the GPUs ROCm frameworks see",
    "ROCR_VISIBLE_DEVICES": "the GPUs the ROCm runtime sees",
    "TPU_VISIBLE_CHIPS": "the TPU chips a process sees",
    "TPU_CHIPS_PER_PROCESS_BOUNDS": "TPU chips per process",
    "TPU_PROCESS_BOUNDS": "TPU process grid",
    # XLA (JAX, TensorFlow's jit_compile)
    "XLA_FLAGS": "XLA compiler and runtime flags",
    "XLA_PYTHON_CLIENT_PREALLOCATE": "whether JAX preallocates device memory",
    "XLA_PYTHON_CLIENT_MEM_FRACTION": "the share of device memory JAX takes",
    "XLA_PYTHON_CLIENT_ALLOCATOR": "JAX's device allocator",
    # TensorFlow
    "TF_ENABLE_ONEDNN_OPTS": "TensorFlow's oneDNN CPU kernels on or off",
    "TF_XLA_FLAGS": "TensorFlow's XLA auto-clustering",
    "TF_GPU_ALLOCATOR": "TensorFlow's GPU allocator",
    "TF_FORCE_GPU_ALLOW_GROWTH": "TensorFlow's GPU memory growth",
    "TF_GPU_THREAD_MODE": "TensorFlow's GPU launch threads",
    "TF_GPU_THREAD_COUNT": "TensorFlow's GPU launch thread count",
    "TF_NUM_INTRAOP_THREADS": "TensorFlow intra-op threads",
    "TF_NUM_INTEROP_THREADS": "TensorFlow inter-op threads",
    "TF_DETERMINISTIC_OPS": "deterministic (often slower) TensorFlow kernels",
    "TF_CUDNN_DETERMINISTIC": "deterministic cuDNN algorithms in TensorFlow",
    "TF_USE_LEGACY_KERAS": "which Keras TensorFlow loads",
    "TF_CPP_MIN_LOG_LEVEL": "TensorFlow's log level",
    # JAX
    "JAX_PLATFORMS": "the platforms JAX may use",
    "JAX_ENABLE_X64": "64-bit types in JAX",
    "JAX_DEFAULT_MATMUL_PRECISION": "JAX's matmul precision (TF32, bf16 passes)",
    "JAX_DISABLE_JIT": "jax.jit switched off",
    # PyTorch
    "PYTORCH_CUDA_ALLOC_CONF": "PyTorch's CUDA caching allocator settings",
    "PYTORCH_NO_CUDA_MEMORY_CACHING": "PyTorch's CUDA caching allocator off",
    "PYTORCH_ENABLE_MPS_FALLBACK": "PyTorch's CPU fallback for MPS ops",
    "PYTORCH_MPS_HIGH_WATERMARK_RATIO": "PyTorch's MPS memory ceiling",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "TF32 matmuls in PyTorch",
    "TORCH_CUDNN_V8_API_ENABLED": "PyTorch's cuDNN v8 API",
    "TORCH_LOGS": "PyTorch compiler logging",
    "TORCH_COMPILE_DEBUG": "PyTorch compiler debug output",
    # oneDNN, Keras, NCCL, and tribench itself
    "DNNL_MAX_CPU_ISA": "oneDNN's instruction-set ceiling",
    "ONEDNN_MAX_CPU_ISA": "oneDNN's instruction-set ceiling",
    "DNNL_DEFAULT_FPMATH_MODE": "oneDNN's implicit down-conversion (bf16 math)",
    "ONEDNN_DEFAULT_FPMATH_MODE": "oneDNN's implicit down-conversion (bf16 math)",
    "DNNL_VERBOSE": "oneDNN's verbose log",
    "KERAS_BACKEND": "the framework Keras runs on",
    "TRIBENCH_EXTRA_BACKENDS": "out-of-tree backends tribench loaded",
}

BY_PATTERN: tuple[tuple[str, str], ...] = (
    (r"TORCHINDUCTOR_[A-Z0-9_]+", "TorchInductor compiler settings (torch.compile)"),
    (r"NCCL_[A-Z0-9_]+", "NCCL collective settings (data-parallel GPUs)"),
    (r"[A-Z0-9_]+_NUM_THREADS", "a runtime's thread count"),
)


@dataclass
class Captured:
    """The variables to store, those withheld (name -> why), and those whose value was redacted (name -> why)."""

    values: dict[str, str] = field(default_factory=dict)
    withheld: dict[str, str] = field(default_factory=dict)
    redacted: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, dict[str, str]]:
        """What the run file keeps beside the values: what was left out or redacted, and why."""
        return {"withheld": self.withheld, "redacted": self.redacted}


def reason_to_capture(name: str) -> str | None:
    """Why ``name`` is recorded (its entry in BY_NAME, or a pattern of BY_PATTERN or of a backend's registry entry),
    or None."""
    if name in BY_NAME:
        return BY_NAME[name]
    patterns = BY_PATTERN + backends.env_var_reasons()
    return next((why for pattern, why in patterns if re.fullmatch(pattern, name)), None)


def capture(environ: Mapping[str, str]) -> Captured:
    """The variables of ``environ`` a run file records, with everything secret kept out (module docstring)."""
    captured = Captured()
    for name in sorted(environ):
        if reason_to_capture(name) is None:
            continue
        secret_name = secret_name_reason(name)
        if secret_name:
            captured.withheld[name] = secret_name
            continue
        value = environ[name]
        credential = credential_value_reason(value)
        if credential:
            captured.values[name] = REDACTED
            captured.redacted[name] = credential
        else:
            captured.values[name] = value
    return captured
