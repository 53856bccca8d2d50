"""The peak matmul throughput of known NVIDIA cards, for the fraction of peak a GPU check reports."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Peak:
    """A card's peak dense matmul throughput in TFLOP/s (None: no such unit on the card)."""

    card: str
    fp32: float  # CUDA cores, no tensor cores (PyTorch's default: TF32 off for matmuls)
    tf32: float | None  # tensor cores, for fp32 matmuls when TF32 is allowed
    fp16: float | None  # tensor cores where the card has them (P100: its FP16 rate)
    bf16: float | None
    source: str


# Peak figures as published by NVIDIA (datasheets and product pages) at boost clock, for dense
# matrices: where a datasheet gives only the 2:4-sparsity figure ("1,979 TFLOPS*"), it is halved.
# NVIDIA publishes no A10G datasheet; its figures come from Baseten's A10 vs A10G comparison.
# The first pattern that matches torch.cuda.get_device_name() wins; a name that names no form
# factor matches the fastest one, so a fraction of peak is never overstated.
_NV = "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/"


_T4 = "NVIDIA T4 Tensor Core GPU datasheet, " + _NV + "tesla-t4/t4-tensor-core-datasheet-951643.pdf"
_P100 = "NVIDIA Tesla P100 datasheet, https://images.nvidia.com/content/tesla/pdf/nvidia-tesla-p100-datasheet.pdf"
_V100 = ("NVIDIA V100 Tensor Core GPU datasheet, "
         "https://images.nvidia.com/content/technologies/volta/pdf/volta-v100-datasheet-update-us-1165301-r5.pdf")
_A100 = "NVIDIA A100 Tensor Core GPU datasheet, " + _NV + "a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"
_A10 = "NVIDIA A10 Tensor Core GPU datasheet, " + _NV + "a10/pdf/a10-datasheet.pdf"
_A10G = ("Baseten, 'NVIDIA A10 vs A10G for ML model inference', "
         "https://www.baseten.co/blog/nvidia-a10-vs-a10g-for-ml-model-inference/")
_L4 = "NVIDIA L4 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/l4/"
_L40S = "NVIDIA L40S GPU datasheet, https://www.nvidia.com/en-us/data-center/l40s/"
_H100 = "NVIDIA H100 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/h100/"
_H200 = "NVIDIA H200 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/h200/"
PEAKS: tuple[tuple[str, Peak], ...] = (
    (r"\bT4\b", Peak("T4", 8.1, None, 65.0, None, _T4)),
    (r"\bP100\b.*\bPCIE\b", Peak("P100 PCIe", 9.3, None, 18.7, None, _P100)),
    (r"\bP100\b", Peak("P100 SXM2", 10.6, None, 21.2, None, _P100)),
    (r"\bV100S\b", Peak("V100S PCIe", 16.4, None, 130.0, None, _V100)),
    (r"\bV100\b.*\bPCIE\b", Peak("V100 PCIe", 14.0, None, 112.0, None, _V100)),
    (r"\bV100\b", Peak("V100 SXM2", 15.7, None, 125.0, None, _V100)),
    (r"\bA100\b", Peak("A100", 19.5, 156.0, 312.0, 312.0, _A100)),
    (r"\bA10G\b", Peak("A10G", 35.0, 35.0, 70.0, 70.0, _A10G)),
    (r"\bA10\b", Peak("A10", 31.2, 62.5, 125.0, 125.0, _A10)),
    (r"\bL40S\b", Peak("L40S", 91.6, 183.0, 362.05, 362.05, _L40S)),
    (r"\bL4\b", Peak("L4", 30.3, 60.0, 121.0, 121.0, _L4)),
    (r"\bH100\b.*\bPCIE\b", Peak("H100 PCIe", 51.0, 378.0, 756.5, 756.5, _H100)),
    (r"\bH100\b.*\bNVL\b", Peak("H100 NVL", 60.0, 417.5, 835.5, 835.5, _H100)),
    (r"\bH100\b", Peak("H100 SXM", 67.0, 494.5, 989.5, 989.5, _H100)),
    (r"\bH200\b.*\bNVL\b", Peak("H200 NVL", 60.0, 417.5, 835.5, 835.5, _H200)),
    (r"\bH200\b", Peak("H200 SXM", 67.0, 494.5, 989.5, 989.5, _H200)),
)


# A measured rate above the card's peak by more than this means the timing is wrong
# (typically: the clock stopped before the GPU finished, without torch.cuda.synchronize).
PEAK_TOLERANCE = 1.10


def peak_for(name: str) -> Peak | None:
    for pattern, peak in PEAKS:
        if re.search(pattern, name or "", flags=re.IGNORECASE):
            return peak
    return None
