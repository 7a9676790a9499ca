"""Vendor datasheet peaks of common accelerators, for "% of spec" beside "% of measured peak".

Every figure is DENSE (NVIDIA's datasheets print tensor-core figures "with sparsity"; those are
halved here), per GPU or per TPU chip, in FLOP/s and bytes/s. ``None`` means the vendor
publishes no such figure or the device has no such math; the lookup says which. A device is
found by the name a backend reports (``torch.cuda.get_device_name()``, JAX ``device_kind``,
TensorFlow's device details, NVML), e.g. "NVIDIA H200", "NVIDIA A100-SXM4-80GB", "Tesla T4",
"TPU v4", "TPU v5 lite". Nothing here measures anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

T = 1e12
GB = 1e9


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    includes: tuple[str, ...]                 # each pattern must match a whole word of the reported name
    excludes: tuple[str, ...]                 # no word may match any of these
    flops: dict[str, float | None]            # precision -> dense FLOP/s (None: not published / no such math)
    bandwidth: float                          # memory bandwidth, bytes/s
    source: str
    absent: dict[str, str]                    # precision -> why there is no figure


NO_TF32_BF16 = {"tf32": "no TF32 tensor cores before Ampere", "bf16": "no bf16 tensor cores before Ampere"}
TPU_ABSENT = {"fp32": "Google publishes no fp32 matmul peak for TPUs (the MXU multiplies in bf16)",
              "tf32": "TPUs have no TF32 mode", "fp16": "TPUs have no fp16 arithmetic"}

SPECS: tuple[DeviceSpec, ...] = (
    # NVIDIA V100 datasheet (Tesla V100, r5): SXM2 15.7 fp32 / 125 tensor TFLOPS, 900 GB/s;
    # PCIe 14 / 112 TFLOPS, 900 GB/s.
    # https://images.nvidia.com/content/technologies/volta/pdf/volta-v100-datasheet-update-us-1165301-r5.pdf
    DeviceSpec("NVIDIA V100 SXM2", ("v100", "sxm2"), (), {"fp32": 15.7 * T, "tf32": None, "bf16": None,
               "fp16": 125 * T}, 900 * GB, "NVIDIA Tesla V100 datasheet (SXM2)", NO_TF32_BF16),
    DeviceSpec("NVIDIA V100 PCIe", ("v100", "pcie"), ("v100s",), {"fp32": 14 * T, "tf32": None, "bf16": None,
               "fp16": 112 * T}, 900 * GB, "NVIDIA Tesla V100 datasheet (PCIe)", NO_TF32_BF16),
    # NVIDIA A100 datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4): fp32 19.5, TF32 156 (312 sparse),
    # BF16/FP16 312 (624 sparse) TFLOPS; 40GB SXM 1,555 GB/s, 80GB SXM 2,039 GB/s.
    # https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf
    DeviceSpec("NVIDIA A100 40GB SXM", ("a100", r"sxm\d*", "40gb"), (), {"fp32": 19.5 * T, "tf32": 156 * T,
               "bf16": 312 * T, "fp16": 312 * T}, 1555 * GB, "NVIDIA A100 datasheet (40GB SXM)", {}),
    DeviceSpec("NVIDIA A100 80GB SXM", ("a100", r"sxm\d*", "80gb"), (), {"fp32": 19.5 * T, "tf32": 156 * T,
               "bf16": 312 * T, "fp16": 312 * T}, 2039 * GB, "NVIDIA A100 datasheet (80GB SXM)", {}),
    # NVIDIA H100 datasheet (H100 SXM): fp32 67, TF32 989 sparse -> 494.7 dense, BF16/FP16 1,979 sparse
    # -> 989.4 dense TFLOPS; 3.35 TB/s. torch reports the SXM part as "NVIDIA H100 80GB HBM3".
    # https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet
    DeviceSpec("NVIDIA H100 SXM", ("h100",), ("pcie", "nvl"), {"fp32": 67 * T, "tf32": 494.7 * T,
               "bf16": 989.4 * T, "fp16": 989.4 * T}, 3350 * GB, "NVIDIA H100 datasheet (SXM)", {}),
    # NVIDIA H200 datasheet (H200 SXM): same GH100 compute as H100 SXM (fp32 67, TF32 989 sparse,
    # BF16/FP16 1,979 sparse TFLOPS), 141 GB HBM3e at 4.8 TB/s. https://www.nvidia.com/en-us/data-center/h200/
    DeviceSpec("NVIDIA H200 SXM", ("h200",), ("nvl",), {"fp32": 67 * T, "tf32": 494.7 * T, "bf16": 989.4 * T,
               "fp16": 989.4 * T}, 4800 * GB, "NVIDIA H200 datasheet (SXM)", {}),
    # NVIDIA L4 datasheet: fp32 30.3, TF32 120 sparse -> 60, BF16/FP16 242 sparse -> 121 TFLOPS; 300 GB/s.
    # https://resources.nvidia.com/en-us-data-center-overview/l4-gpu-datasheet
    DeviceSpec("NVIDIA L4", ("l4",), (), {"fp32": 30.3 * T, "tf32": 60 * T, "bf16": 121 * T, "fp16": 121 * T},
               300 * GB, "NVIDIA L4 datasheet", {}),
    # NVIDIA T4 datasheet: single precision 8.1 TFLOPS, mixed precision (FP16/FP32) 65 TFLOPS, 320+ GB/s.
    # https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/tesla-t4/t4-tensor-core-datasheet-951643.pdf
    DeviceSpec("NVIDIA T4", ("t4",), (), {"fp32": 8.1 * T, "tf32": None, "bf16": None, "fp16": 65 * T},
               320 * GB, "NVIDIA T4 datasheet", {"tf32": "no TF32 on Turing", "bf16": "no bf16 on Turing"}),
    # Google Cloud TPU v4 system architecture: 275 TFLOPS bf16 per chip, 32 GiB HBM2 at 1,200 GBps.
    # https://cloud.google.com/tpu/docs/v4
    DeviceSpec("Google TPU v4", ("tpu", "v4"), ("lite",), {"fp32": None, "tf32": None, "bf16": 275 * T,
               "fp16": None}, 1200 * GB, "Google Cloud TPU v4 documentation", TPU_ABSENT),
    # Google Cloud TPU v5e: 197 TFLOPS bf16 per chip, 16 GB HBM2 at 819 GBps. JAX names it "TPU v5 lite".
    # https://cloud.google.com/tpu/docs/v5e
    DeviceSpec("Google TPU v5e", ("tpu", r"v5e?", r"v5e|lite"), (), {"fp32": None, "tf32": None, "bf16": 197 * T,
               "fp16": None}, 819 * GB, "Google Cloud TPU v5e documentation", TPU_ABSENT),
)


def _words(name: str) -> list[str]:
    return [word for word in re.split(r"[\s\-_/,()]+", name.lower()) if word]


def _any_word(pattern: str, words: list[str]) -> bool:
    return any(re.fullmatch(pattern, word) for word in words)


def lookup(device_name: str | None) -> DeviceSpec | None:
    """The datasheet entry for a reported device name, or None when the table has none."""
    if not device_name:
        return None
    words = _words(device_name)
    for spec in SPECS:
        if all(_any_word(p, words) for p in spec.includes) and not any(_any_word(p, words) for p in spec.excludes):
            return spec
    return None


def spec_flops(device_name: str | None, precision: str) -> tuple[float | None, str]:
    """(dense FLOP/s, source) from the datasheet, or (None, why not)."""
    spec = lookup(device_name)
    if spec is None:
        return None, f"no datasheet entry for {device_name or 'an unnamed device'} (harness/datasheet.py)"
    value = spec.flops.get(precision)
    if value is None:
        why = spec.absent.get(precision, "not published")
        return None, f"{spec.name} datasheet has no dense {precision} figure: {why}"
    return value, f"{spec.source}: dense {precision} {value / T:g} TFLOP/s"


def spec_bandwidth(device_name: str | None) -> tuple[float | None, str]:
    """(bytes/s, source) from the datasheet, or (None, why not)."""
    spec = lookup(device_name)
    if spec is None:
        return None, f"no datasheet entry for {device_name or 'an unnamed device'} (harness/datasheet.py)"
    return spec.bandwidth, f"{spec.source}: memory bandwidth {spec.bandwidth / GB:g} GB/s"
