"""Matmul throughput: the CPU as the baseline; the GPU in fp32, fp16 and bf16, with the speed-up over the CPU
and the fraction of the card's peak (a rate above the peak means the timing did not wait for the GPU)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .checks import Skipped, require
from .peaks import PEAK_TOLERANCE, Peak, peak_for


def _is_cuda(device: Any) -> bool:
    return str(device).startswith("cuda")


BATCHES = 5  # timed batches of matrix products per measurement


@dataclass(frozen=True)
class Throughput:
    tflops: float
    size: int
    iterations: int
    seconds: float


def measure_matmul(device: str = "cpu", dtype: Any = None, size: int = 384, *, seconds: float = 0.25,
                   max_iterations: int = 200, synchronize: Callable[[], None] | None = None,
                   matmul: Callable[[Any, Any], Any] | None = None) -> Throughput:
    """The best rate over a few timed batches of SIZE x SIZE products, each batch ended by a synchronize.

    One block of the product is checked against float64 first.
    """
    import torch

    dtype = dtype or torch.float32
    matmul = matmul or torch.matmul
    if synchronize is None:
        synchronize = torch.cuda.synchronize if _is_cuda(device) else (lambda: None)
    generator = torch.Generator(device=device).manual_seed(3)  # made where they are used: no big copies
    a = torch.randn(size, size, generator=generator, device=device).to(dtype)
    b = torch.randn(size, size, generator=generator, device=device).to(dtype)
    c = matmul(a, b)  # warm-up: library initialisation, kernel choice
    synchronize()
    block = min(size, 64)
    reference = a[:block].double() @ b[:, :block].double()
    error = float((c[:block, :block].double() - reference).abs().max() / reference.abs().max())
    tolerance = {torch.float16: 1e-2, torch.bfloat16: 5e-2}.get(dtype, 1e-2 if _is_cuda(device) else 1e-4)
    require(error < tolerance, f"the {size}x{size} product is wrong (relative error {error:.2g})")
    start = time.perf_counter()
    matmul(a, b)
    synchronize()
    once = max(time.perf_counter() - start, 1e-6)
    per_batch = max(1, min(max_iterations, int(seconds / BATCHES / once)))
    best = total_seconds = 0.0
    for _ in range(BATCHES):  # the best batch: a busy machine slows some batches, never speeds one up
        start = time.perf_counter()
        for _ in range(per_batch):
            matmul(a, b)
        synchronize()
        elapsed = max(time.perf_counter() - start, 1e-9)
        total_seconds += elapsed
        best = max(best, 2 * size ** 3 * per_batch / elapsed / 1e12)
    return Throughput(tflops=best, size=size, iterations=per_batch * BATCHES, seconds=total_seconds)


def tf32_matmul(torch: Any) -> bool:
    """Whether fp32 matrix products may use TF32 tensor cores (off by default in PyTorch)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # newer torch suggests its fp32_precision API instead
        return bool(torch.backends.cuda.matmul.allow_tf32)


def _figure(value: float) -> float:
    return float(f"{value:.4g}")


def _rate(tflops: float) -> str:
    return f"{tflops * 1000:.1f} GFLOP/s" if tflops < 1 else f"{tflops:.1f} TFLOP/s"


def check_cpu_throughput(figures: dict[str, Any], *, size: int = 384, seconds: float = 0.25,
                         matmul: Callable[[Any, Any], Any] | None = None) -> str:
    """The CPU's fp32 matmul rate: the baseline for the GPU's speed-up."""
    import torch

    result = measure_matmul("cpu", torch.float32, size, seconds=seconds, matmul=matmul)
    require(result.tflops > 0 and math.isfinite(result.tflops), "the CPU timing gave no rate")
    figures["cpu_fp32_tflops"] = _figure(result.tflops)
    figures["cpu_matmul_size"] = size
    figures["cpu_threads"] = torch.get_num_threads()
    threads = torch.get_num_threads()
    return f"{_rate(result.tflops)} fp32 ({size}x{size}, {result.iterations} products, {threads} threads)"


def check_gpu_throughput(figures: dict[str, Any], precision: str = "fp32", *, device: str = "cuda",
                         size: int | None = None, seconds: float = 0.3, peak: Peak | None = None,
                         synchronize: Callable[[], None] | None = None,
                         matmul: Callable[[Any, Any], Any] | None = None) -> str:
    """GPU matmul rate in PRECISION, with the speed-up over the CPU and the fraction of the card's peak.

    The rate must not exceed the card's peak: a rate above it means the clock stopped before
    the GPU finished (no torch.cuda.synchronize), the classic mistake with asynchronous kernels.
    """
    import torch

    if _is_cuda(device) and not torch.cuda.is_available():
        raise Skipped("no CUDA GPU")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    if precision == "bf16" and _is_cuda(device) and torch.cuda.get_device_capability(torch.device(device))[0] < 8:
        raise Skipped("this GPU has no native bfloat16 (compute capability below 8.0)")
    size = size or (4096 if precision == "fp32" else 8192)
    result = measure_matmul(device, dtype, size, seconds=seconds, synchronize=synchronize, matmul=matmul)
    figures[f"gpu_{precision}_tflops"] = _figure(result.tflops)
    figures[f"gpu_{precision}_size"] = size
    parts = [f"{_rate(result.tflops)} {precision} ({size}x{size}, {result.iterations} products)"]
    cpu = figures.get("cpu_fp32_tflops")
    if cpu:
        speedup = result.tflops / cpu
        figures[f"gpu_{precision}_speedup"] = _figure(speedup)
        parts.append(f"{speedup:,.0f}x the CPU")
    if peak is None and _is_cuda(device):
        peak = peak_for(torch.cuda.get_device_name(torch.device(device)))
    tf32 = precision == "fp32" and tf32_matmul(torch)
    peak_value = None
    if peak is not None:
        peak_value = {"fp32": peak.tf32 if tf32 and peak.tf32 else peak.fp32,
                      "fp16": peak.fp16, "bf16": peak.bf16}[precision]
    if peak is not None and peak_value:
        fraction = result.tflops / peak_value
        figures[f"gpu_{precision}_peak_tflops"] = peak_value
        figures[f"gpu_{precision}_fraction_of_peak"] = _figure(fraction)
        require(fraction <= PEAK_TOLERANCE,
                f"{_rate(result.tflops)} is above the {peak.card}'s peak of {peak_value:g} TFLOP/s: "
                "the timing did not wait for the GPU (torch.cuda.synchronize)")
        parts.append(f"{fraction:.0%} of the {peak.card}'s {peak_value:g} TFLOP/s peak"
                     + (" (TF32)" if tf32 and peak.tf32 else ""))
    if cpu and _is_cuda(device):
        require(result.tflops > cpu, f"the GPU ({_rate(result.tflops)}) is not faster than the CPU ({_rate(cpu)})")
    return "; ".join(parts)
