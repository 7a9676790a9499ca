"""Which device and precision a PyTorch case may run on: pure rules over plain facts.

Nothing here imports torch, so the CUDA, ROCm and MPS branches are tested on any
machine. The adapter gathers the facts (``DeviceFacts``) from the real device and
asks these rules; a non-``None`` answer is the reason the case is skipped.

Devices: tribench's ``gpu`` is torch's ``cuda`` device type, which a ROCm build
(``torch.version.hip``) also serves; ``mps`` is Apple's GPU; ``tpu`` needs
torch_xla, which tribench does not use.

Precision is mixed precision via ``torch.autocast`` (parameters and optimizer state
stay fp32; fp16 training scales the loss with ``torch.amp.GradScaler``). Rules:

* fp32 runs everywhere.
* CUDA: bf16 needs native bf16 (``torch.cuda.is_bf16_supported(including_emulation=False)``,
  i.e. compute capability >= 8.0); below that torch emulates it, which benchmarks the
  emulation. fp16 needs compute capability >= 7.0 (tensor cores). The same thresholds
  as the JAX backend, so a case means the same thing in every framework.
* ROCm: fp16 and bf16 both run (``torch.cuda.is_bf16_supported()`` is True on every ROCm arch).
* MPS: fp16 runs; bf16 needs macOS 14 or newer (the MPS autocast refuses it before).
* CPU: a low precision runs only when the CPU has instructions for it (x86 AVX512-BF16 /
  AMX-BF16 or Arm BF16 for bf16; AVX512-FP16 / AMX-FP16 or Arm FP16 for fp16).
  Without them oneDNN converts to fp32 and back. Measured on torch 2.13 (CPU build,
  AVX512 without AVX512-FP16): fp16 autocast runs conv, matmul and SDPA, and
  ``GradScaler("cpu")`` works, but ``nn.LSTM`` fails outright ("could not create a
  primitive descriptor for the LSTM forward propagation primitive"), so fp16 on such a
  CPU is refused for every workload rather than for the LSTM alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from tribench.harness import cpuinfo, numerics

TORCH_DEVICE_TYPES = {"cpu": "cpu", "gpu": "cuda", "mps": "mps"}
LOW_PRECISIONS = ("bf16", "fp16")

CUDA_MIN_FP16_CAPABILITY = (7, 0)


@dataclass(frozen=True)
class DeviceFacts:
    """What the precision rules need to know about one torch device."""

    device_type: str                                  # "cpu" | "cuda" | "mps"
    name: str = ""                                    # for messages
    rocm: bool = False                                # a "cuda" device served by a ROCm (HIP) build
    compute_capability: tuple[int, int] | None = None  # CUDA only
    native_bf16: bool = False                         # CUDA: is_bf16_supported(including_emulation=False)
    macos_14: bool = False                            # MPS: bf16 autocast needs macOS >= 14
    cpu_flags: frozenset[str] = frozenset()           # instruction-set flags of the host CPU


def device_skip_reason(
    device: str, *, cuda_available: bool, mps_available: bool, build: str
) -> str | None:
    """Why ``device`` cannot run here; None if it can. ``build`` is torch.__version__ for messages."""
    if device == "tpu":
        return "the torch backend does not drive TPUs (that needs torch_xla, which tribench does not use)"
    if device not in TORCH_DEVICE_TYPES:
        return f"unknown device {device!r} for torch; it knows {', '.join(TORCH_DEVICE_TYPES)}"
    if device == "gpu" and not cuda_available:
        return f"no CUDA or ROCm GPU visible to torch {build} (torch.cuda.is_available() is False)"
    if device == "mps" and not mps_available:
        return f"no Apple MPS device visible to torch {build} (torch.backends.mps.is_available() is False)"
    return None


def torch_device_type(device: str) -> str:
    """The torch device type of a tribench device kind ('gpu' -> 'cuda')."""
    return TORCH_DEVICE_TYPES[device]


def _cuda_reason(precision: str, facts: DeviceFacts) -> str | None:
    gpu = facts.name or "this GPU"
    have = "unknown" if facts.compute_capability is None else "{}.{}".format(*facts.compute_capability)
    if precision == "bf16" and not facts.native_bf16:
        return (
            f"bf16 needs native bf16 math (CUDA compute capability >= 8.0); {gpu} has {have} "
            "and torch would only emulate it (torch.cuda.is_bf16_supported(including_emulation=False) is False)"
        )
    if precision == "fp16" and (facts.compute_capability or (0, 0)) < CUDA_MIN_FP16_CAPABILITY:
        return f"fp16 needs CUDA compute capability >= 7.0 (tensor cores); {gpu} has {have}"
    return None


def precision_skip_reason(precision: str, facts: DeviceFacts) -> str | None:
    """Why ``precision`` cannot run faithfully on the device ``facts`` describe; None if it can."""
    if precision == "fp32":
        return None
    if precision == numerics.TF32:
        kind = "gpu" if facts.device_type == "cuda" else facts.device_type
        return numerics.tf32_skip_reason(kind, facts.compute_capability, facts.rocm)
    if precision not in LOW_PRECISIONS:
        return f"unknown precision {precision!r}; torch runs fp32, tf32, bf16, fp16"
    if facts.device_type == "cuda":
        return None if facts.rocm else _cuda_reason(precision, facts)
    if facts.device_type == "mps":
        if precision == "bf16" and not facts.macos_14:
            return "bf16 on MPS needs macOS 14 or newer (torch.backends.mps.is_macos_or_newer(14, 0) is False)"
        return None
    if facts.device_type == "cpu":
        return cpuinfo.low_precision_skip_reason(precision, facts.cpu_flags, "torch")
    return f"unknown torch device type {facts.device_type!r}"


def uses_grad_scaler(precision: str, mode: str) -> bool:
    """fp16 training scales the loss (fp16's narrow range underflows small gradients); bf16 does not need it."""
    return precision == "fp16" and mode == "train"


CHANNELS_LAST_DEVICES = ("cuda", "cpu")


def uses_channels_last(device_type: str, is_cnn: bool) -> bool:
    """CNNs run NHWC where it is PyTorch's fast path: on CUDA (cuDNN's tensor-core convolutions are native in
    channels-last) and on the CPU (oneDNN's convolutions are; measured with ``benchmarks/torch_fast_paths.py
    --choice memory-format``: channels-last / NCHW step time 0.65 training and 0.32 inference at cnn-tiny, 0.93
    and 0.86 at cnn-small).
    MPS keeps NCHW: not measured there."""
    return is_cnn and device_type in CHANNELS_LAST_DEVICES
