"""Which device and precision a PaddlePaddle case may run on: pure rules over plain facts.

Nothing here imports paddle, so the GPU branches are tested on any machine. The adapter gathers the
facts (``DeviceFacts``) from the live device and asks these rules; a non-``None`` answer is the reason
the case is skipped.

Devices: tribench's ``gpu`` is Paddle's ``gpu`` place (a CUDA build, or a ROCm one:
``paddle.is_compiled_with_rocm()``). Paddle also drives Kunlun XPUs (``paddle.is_compiled_with_xpu()``)
and custom devices such as Ascend NPUs (``paddle.device.get_all_custom_device_type()``): the adapter
finds and lists them (``tribench list backends``), but tribench's device axis (cpu, gpu, tpu, mps) has
no kind for them, so no case runs there. TPUs and Apple MPS are not Paddle devices.

Precision is mixed precision via ``paddle.amp.auto_cast`` (level O1: parameters and Adam state stay
fp32; white-listed ops such as matmul and convolution run in the low precision); fp16 training scales
the loss with ``paddle.amp.GradScaler``. The same thresholds as the other backends, so a case means the
same thing in every framework:

* fp32 runs everywhere; tf32 only on an NVIDIA GPU of compute capability >= 8.0 (``harness.numerics``).
* CUDA: bf16 needs compute capability >= 8.0 (native bf16 math), fp16 >= 7.0 (tensor cores).
* ROCm: fp16 and bf16 both run.
* CPU: never, whatever the CPU's instructions. Paddle 3.3's ``auto_cast`` switches itself off on a CPU
  place ("so it makes no effect", ``paddle/amp/auto_cast.py``), and its ``GradScaler`` too: a bf16 case
  would measure fp32 under a bf16 label (checked by a test that reads the output dtype under autocast).
"""

from __future__ import annotations

from dataclasses import dataclass

from tribench.harness import numerics

PADDLE_DEVICES = {"cpu": "cpu", "gpu": "gpu"}
LOW_PRECISIONS = ("bf16", "fp16")
CUDA_MIN_CAPABILITY = {"fp16": (7, 0), "bf16": (8, 0)}
WHY = {"fp16": "tensor cores", "bf16": "native bf16 math"}


@dataclass(frozen=True)
class DeviceFacts:
    """What the precision rules need to know about one Paddle device."""

    device_type: str                                   # "cpu" | "gpu"
    name: str = ""                                     # for messages
    rocm: bool = False                                 # a "gpu" place served by a ROCm build
    compute_capability: tuple[int, int] | None = None  # CUDA only
    cpu_flags: frozenset[str] = frozenset()            # instruction-set flags of the host CPU


def device_skip_reason(device: str, *, gpu_available: bool, build: str) -> str | None:
    """Why ``device`` cannot run here; None if it can. ``build`` is paddle.__version__ for messages."""
    if device == "tpu":
        return "the paddle backend does not drive TPUs (PaddlePaddle has no TPU device)"
    if device == "mps":
        return "the paddle backend does not drive Apple MPS (PaddlePaddle has no MPS device)"
    if device not in PADDLE_DEVICES:
        return f"unknown device {device!r} for paddle; it knows {', '.join(PADDLE_DEVICES)}"
    if device == "gpu" and not gpu_available:
        return (f"no CUDA or ROCm GPU visible to paddle {build} (a CPU build, or no GPU: "
                "paddle.device.cuda.device_count() is 0)")
    return None


def place_of(device: str, local_rank: int = 0) -> str:
    """The ``paddle.set_device`` string of a tribench device kind ('gpu' -> 'gpu:LOCAL_RANK')."""
    return "cpu" if device == "cpu" else f"{PADDLE_DEVICES[device]}:{local_rank}"


def _cuda_reason(precision: str, facts: DeviceFacts) -> str | None:
    needed = CUDA_MIN_CAPABILITY[precision]
    gpu = facts.name or "this GPU"
    if facts.compute_capability is None:
        return f"{precision} on CUDA needs a known compute capability; {gpu} reports none"
    if facts.compute_capability < needed:
        have = "{}.{}".format(*facts.compute_capability)
        return (f"{precision} needs CUDA compute capability >= {needed[0]}.{needed[1]} for {WHY[precision]}; "
                f"{gpu} has {have}")
    return None


def precision_skip_reason(precision: str, facts: DeviceFacts) -> str | None:
    """Why ``precision`` cannot run faithfully on the device ``facts`` describe; None if it can."""
    if precision == "fp32":
        return None
    if precision == numerics.TF32:
        return numerics.tf32_skip_reason(facts.device_type, facts.compute_capability, facts.rocm)
    if precision not in LOW_PRECISIONS:
        return f"unknown precision {precision!r}; paddle runs fp32, tf32, bf16, fp16"
    if facts.device_type == "gpu":
        return None if facts.rocm else _cuda_reason(precision, facts)
    if facts.device_type == "cpu":
        return CPU_AMP_REASON.format(precision=precision)
    return f"unknown paddle device type {facts.device_type!r}"


def uses_grad_scaler(precision: str, mode: str) -> bool:
    """fp16 training scales the loss (fp16's narrow range underflows small gradients); bf16 does not need it."""
    return precision == "fp16" and mode == "train"


AMP_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
CPU_AMP_REASON = ("{precision} on a CPU is not mixed precision in Paddle 3.3: paddle.amp.auto_cast switches itself "
                  "off on a CPU place, so the case would run fp32 under a {precision} label")


def amp_dtype(precision: str) -> str | None:
    """The ``paddle.amp.auto_cast`` dtype of a precision; None: no autocast (fp32, tf32)."""
    return AMP_DTYPES.get(precision)
