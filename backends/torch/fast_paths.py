"""Which of PyTorch's implementations each case uses, by a stated rule, and the record of it.

The record is ``build.fast_paths`` of every process: one entry per choice the case involves, each
``{"implementation": ..., "rule": ...}``. The rules (measured with ``benchmarks/torch_fast_paths.py``;
the figures are in the README's "Fast paths" section):

* ``memory_format`` (CNNs): channels-last on CUDA and on the CPU (``devices.uses_channels_last``).
* ``optimizer`` (training): Adam ``fused=True``, one kernel for all parameters, on every device.
* ``attention`` (transformers): ``F.scaled_dot_product_attention`` with the kernel PyTorch picks for
  the device, dtype and shapes (flash, memory-efficient, cuDNN or math). The record names the kernel
  it picked for this case's shapes, asked of PyTorch's own dispatcher at build.
* ``recurrent`` (LSTMs): ``nn.LSTM``, which PyTorch runs with cuDNN on CUDA and with oneDNN on a CPU
  when its conditions hold (fp32 or bf16 inputs; fp16 only without autograd); recorded as decided.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.attention import SDPBackend

from tribench.backends.torch import devices

ADAM_RULE = "Adam(fused=True) on every device: measured no slower than foreach on this project's CPU runs"
ATTENTION_RULE = "F.scaled_dot_product_attention: PyTorch picks the kernel for the device, dtype and shapes"
MEMORY_FORMAT_RULE = "channels-last for CNNs on CUDA and CPU (measured faster on both); NCHW elsewhere"
RECURRENT_RULE = "nn.LSTM: PyTorch dispatches to cuDNN on CUDA, to oneDNN on a CPU where its conditions hold"

# torch._fused_sdp_choice returns an SDPBackend value; these are the names the record uses
_SDPA_KERNELS = {
    int(SDPBackend.MATH): "math",
    int(SDPBackend.FLASH_ATTENTION): "flash",
    int(SDPBackend.EFFICIENT_ATTENTION): "memory-efficient",
    int(SDPBackend.CUDNN_ATTENTION): "cudnn",
}


def adam_options() -> dict[str, bool]:
    """The keyword that picks Adam's implementation (see ``ADAM_RULE``)."""
    return {"fused": True}


def picked_attention_kernel(batch: int, heads: int, length: int, head_dim: int, dtype: torch.dtype,
                            device: torch.device, train: bool, kv_heads: int | None = None,
                            causal: bool = False) -> str:
    """The kernel ``F.scaled_dot_product_attention`` dispatches to for these shapes, asked of PyTorch
    (``kv_heads`` fewer than ``heads``: grouped-query attention, ``enable_gqa``; ``causal``: ``is_causal``).

    ``torch._fused_sdp_choice`` is the function SDPA itself calls to choose; it is private, so a torch
    without it gives a reason instead of a name.
    """
    choose = getattr(torch, "_fused_sdp_choice", None)
    if choose is None:
        return f"unavailable: torch {torch.__version__} has no torch._fused_sdp_choice to ask"
    query = torch.empty(batch, heads, length, head_dim, dtype=dtype, device=device, requires_grad=train)
    kv_heads = kv_heads or heads
    key = torch.empty(batch, kv_heads, length, head_dim, dtype=dtype, device=device, requires_grad=train)
    picked = int(choose(query, key, key, is_causal=causal, enable_gqa=kv_heads != heads))
    return _SDPA_KERNELS.get(picked, f"SDPBackend value {picked}")


def lstm_implementation(device_type: str, dtype: torch.dtype, train: bool) -> str:
    """What ``nn.LSTM`` runs on: PyTorch's own dispatch conditions (ATen's ``use_cudnn``/``use_mkldnn``)."""
    if device_type == "cuda":
        return "cuDNN LSTM" if torch.backends.cudnn.is_available() else "ATen LSTM cells (no cuDNN)"
    if device_type == "cpu":
        onednn_dtype = dtype in (torch.float32, torch.bfloat16) or (dtype == torch.float16 and not train)
        if torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled and onednn_dtype:
            return "oneDNN LSTM"
        return "ATen LSTM cells"
    return f"ATen LSTM on {device_type}"


def record(*, cnn: bool, train: bool, attention_kernel: str | None, lstm: str | None,
           device_type: str) -> dict[str, dict[str, Any]]:
    """``build.fast_paths``: the choices this case involves, each with its implementation and rule."""
    paths: dict[str, dict[str, Any]] = {}
    if cnn:
        channels_last = devices.uses_channels_last(device_type, cnn)
        paths["memory_format"] = {"implementation": "channels_last" if channels_last else "contiguous",
                                  "rule": MEMORY_FORMAT_RULE}
    if attention_kernel is not None:
        paths["attention"] = {"implementation": f"scaled_dot_product_attention ({attention_kernel})",
                              "rule": ATTENTION_RULE}
    if lstm is not None:
        paths["recurrent"] = {"implementation": lstm, "rule": RECURRENT_RULE}
    if train:
        fused = adam_options().get("fused", False)
        paths["optimizer"] = {"implementation": "Adam (fused)" if fused else "Adam (foreach)", "rule": ADAM_RULE}
    return paths
