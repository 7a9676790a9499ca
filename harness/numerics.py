"""One numeric policy on NVIDIA GPUs: ``fp32`` is IEEE fp32 math in every framework, ``tf32`` a precision of its own.

Left alone, the frameworks disagree on what fp32 means on Ampere and newer GPUs: PyTorch runs fp32
matmuls in full fp32 but cuDNN convolutions on TF32 tensor cores; TensorFlow and JAX run both on
TF32. A table of "fp32" cases would then compare different arithmetic. tribench sets each
framework's own switch for every case it builds on a GPU (``Backend.build``):

- ``fp32``, ``bf16``, ``fp16``: TF32 off, so fp32 matmuls and convolutions, including the fp32
  parts of a mixed-precision case (optimizer, loss, ops autocast leaves in fp32), are IEEE fp32;
- ``tf32``: fp32 tensors with TF32 tensor-core matmuls and convolutions on;

with ``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``,
``tf.config.experimental.enable_tensor_float_32_execution`` and JAX's ``jax_default_matmul_precision``
(``float32`` or ``tensorfloat32``). Every case records what it set (``build.numerics``).

Elsewhere: on a CPU fp32 is IEEE already and ``tf32`` does not exist (a tf32 case is skipped with the
reason, as on a GPU older than Ampere or served by ROCm); a TPU keeps its frameworks' default for
fp32 matmuls (bf16 passes), which its peak record states (``fp32_case_math``).
"""

from __future__ import annotations

from tribench.harness.peak_measure import tf32_skip_reason

TF32 = "tf32"

__all__ = ["TF32", "tf32_skip_reason", "uses_tf32", "gpu_numerics", "host_numerics"]


def uses_tf32(precision: str) -> bool:
    """Whether a case of ``precision`` runs its fp32 matmuls and convolutions on TF32 tensor cores (GPU only)."""
    return precision == TF32


def gpu_numerics(precision: str, how: str) -> dict[str, str]:
    """The ``build.numerics`` record of a GPU case: what its fp32 math is, and which switch set it."""
    return {"fp32_math": "tf32" if uses_tf32(precision) else "ieee-fp32", "how": how,
            "policy": "harness.numerics: fp32 is IEEE fp32 on GPUs in every framework; tf32 is its own precision"}


def host_numerics(device: str) -> dict[str, str]:
    """The record of a case off NVIDIA GPUs, where tribench sets nothing."""
    if device == "tpu":
        return {"fp32_math": "the framework's TPU default (bf16 passes)", "how": "nothing set"}
    return {"fp32_math": "ieee-fp32", "how": f"nothing set: fp32 on {device} is IEEE fp32"}
