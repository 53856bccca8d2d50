"""A PyTorch demo that proves the runtime's GPU works, and teaches define-by-run on the way.

Each check asserts a real property and reports ``passed``, ``failed`` or ``skipped`` with a
one-line detail: devices (GPU only), ``view`` vs ``reshape``, ``mm`` vs ``matmul``, autograd
against an analytic gradient, ``gradcheck``, a module with its own ``nn.Parameter`` trained by
``optimizer.step()``, a graph that changes with the data, and matmul throughput (the CPU as the
baseline; the GPU in fp32, fp16 and bf16 with the speed-up and the fraction of the card's peak).

Every check takes its premises as keyword parameters with correct defaults, so a test can hand
one a wrong premise (a broken gradient, an optimizer with lr=0, a "reshape" that does not copy)
and see it reported as failed. A check that raises unexpectedly is reported as failed with the
exception's one-line text.

Three ways to run it:

- ``python demo.py [--gpu] [--json]`` on the runtime: a table (or one JSON document) on
  stdout, progress on stderr;
- ``colabssh demo`` on the laptop, which runs this module with the runtime's python
  (the package cached on the runtime by the cell, or sent: see ship.py);
- in a notebook cell, after the colabssh cell: ``from colab_bootstrap import demo;
  demo.main(["--gpu"])``, or ``demo.run_demo()`` for the report as a dict.

Standard library only at module level (torch is imported inside the functions), and no
imports from the rest of the package: ``python demo.py`` runs this one file as a script.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"

# Exit codes of `python demo.py` (colabssh demo maps them to its own).
EXIT_OK = 0
EXIT_FAILED = 1  # at least one check failed
EXIT_USAGE = 2
EXIT_NO_CUDA = 3  # --gpu on a runtime without a CUDA GPU
EXIT_NO_TORCH = 4  # the python that runs the demo has no (working) torch

NO_CUDA_MESSAGE = "no CUDA GPU on the runtime: Runtime > Change runtime type > GPU"
NO_CUDA_HINT = "choose a GPU runtime in Colab, run the colabssh cell again and connect the new code"
NO_TORCH_HINT = "install it on the runtime: `pip install torch` (Colab's GPU runtimes come with it)"
USAGE = "usage: demo.py [--gpu] [--json]"

Say = Callable[[str], None]


# --- peak throughput of known cards -----------------------------------------------------------


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


# --- running checks -----------------------------------------------------------------------------


class CheckFailed(Exception):
    """A check's property does not hold; the message says which, in one line."""


class Skipped(Exception):
    """A check that does not apply here (a GPU-only check on the CPU)."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str
    detail: str


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def require(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def run_check(name: str, check: Callable[..., str], *args: Any, **kwargs: Any) -> CheckResult:
    """Run one check; whatever happens becomes passed/failed/skipped with a one-line detail."""
    try:
        detail = check(*args, **kwargs)
    except Skipped as exc:
        return CheckResult(name, SKIPPED, one_line(str(exc)))
    except CheckFailed as exc:
        return CheckResult(name, FAILED, one_line(str(exc)))
    except Exception as exc:  # any other exception is the check failing, said in one line
        text = one_line(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        return CheckResult(name, FAILED, f"raised {type(exc).__name__}" + (f": {text}" if text else ""))
    return CheckResult(name, PASSED, one_line(detail))


def _storage(tensor: Any) -> int:
    return int(tensor.untyped_storage().data_ptr())


def _is_cuda(device: Any) -> bool:
    return str(device).startswith("cuda")


# --- the checks ---------------------------------------------------------------------------------


def check_devices(device: str = "cuda", *, copy: Callable[[Any, Any], Any] | None = None) -> str:
    """A tensor made on the CPU, copied to DEVICE and back, is equal; mixing devices raises."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise Skipped("no CUDA GPU: CPU<->GPU copies not tried")
    copy = copy or (lambda tensor, where: tensor.to(where))
    target = torch.device(device)
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    on_device = copy(x, target)
    require(on_device.device.type == target.type,
            f"the copy landed on {on_device.device}, not on {target}")
    back = copy(on_device, torch.device("cpu"))
    require(back.device.type == "cpu", f"the copy back landed on {back.device}, not on the CPU")
    require(torch.equal(back, x), "CPU -> device -> CPU changed the values")
    try:
        x + on_device
    except RuntimeError:
        pass
    else:
        raise CheckFailed(f"adding a CPU tensor to a tensor on {on_device.device} did not raise")
    return f"CPU -> {on_device.device} -> CPU equal; mixing CPU and {target.type} tensors raises RuntimeError"


def check_view_reshape(device: str = "cpu", *, view: Callable[[Any, Sequence[int]], Any] | None = None,
                       reshape: Callable[[Any, Sequence[int]], Any] | None = None) -> str:
    """Contiguous: view and reshape share storage. After transpose: view raises, reshape copies."""
    import torch

    view = view or (lambda tensor, shape: tensor.view(*shape))
    reshape = reshape or (lambda tensor, shape: tensor.reshape(*shape))
    x = torch.arange(24, dtype=torch.float32, device=device).reshape(2, 3, 4)
    require(x.is_contiguous(), "a fresh tensor is not contiguous")
    v, r = view(x, (6, 4)), reshape(x, (6, 4))
    require(tuple(v.shape) == (6, 4) and tuple(r.shape) == (6, 4), "view/reshape gave the wrong shape")
    require(_storage(v) == _storage(x), "view of a contiguous tensor does not share its storage")
    require(_storage(r) == _storage(x), "reshape of a contiguous tensor copied it (it should be a view)")
    t = x.transpose(1, 2)
    require(not t.is_contiguous() and _storage(t) == _storage(x),
            "transpose should be a non-contiguous view of the same storage")
    try:
        view(t, (2, 12))
    except RuntimeError:
        pass
    else:
        raise CheckFailed("view of a transposed (non-contiguous) tensor did not raise")
    copied = reshape(t, (2, 12))
    require(tuple(copied.shape) == (2, 12), f"reshape gave shape {tuple(copied.shape)}, not (2, 12)")
    require(_storage(copied) != _storage(x), "reshape of a transposed tensor shares storage (no copy)")
    require(torch.equal(copied, t.contiguous().view(2, 12)), "reshape of a transposed tensor has wrong values")
    copied.zero_()
    require(bool(x.abs().sum() > 0), "writing into reshape's copy changed the original")
    return "contiguous: view and reshape share storage; after transpose view raises, reshape copies"


def check_mm_matmul(device: str = "cpu", *, mm: Callable[[Any, Any], Any] | None = None,
                    matmul: Callable[[Any, Any], Any] | None = None,
                    bmm: Callable[[Any, Any], Any] | None = None) -> str:
    """mm rejects batched 3-D input; matmul broadcasts (B,n,m) @ (m,p) and equals bmm."""
    import torch

    mm, matmul, bmm = mm or torch.mm, matmul or torch.matmul, bmm or torch.bmm
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(5, 3, 4, generator=generator, dtype=torch.float64).to(device)
    w = torch.randn(4, 2, generator=generator, dtype=torch.float64).to(device)
    try:
        mm(a, w)
    except RuntimeError:
        pass
    else:
        raise CheckFailed("mm accepted a batched 3-D tensor (it takes 2-D matrices only)")
    out = matmul(a, w)
    require(tuple(out.shape) == (5, 3, 2), f"matmul (5,3,4) @ (4,2) gave {tuple(out.shape)}, not (5, 3, 2)")
    expected = bmm(a, w.expand(5, 4, 2))
    require(torch.allclose(out, expected, rtol=1e-10, atol=1e-12),
            "matmul with a broadcast operand differs from bmm with the operand expanded")
    require(torch.allclose(out[2], mm(a[2], w), rtol=1e-10, atol=1e-12), "matmul's batch 2 differs from mm")
    return "mm rejects (5,3,4); matmul broadcasts (5,3,4) @ (4,2) -> (5,3,2), equal to bmm"


def _default_function(x: Any) -> Any:
    return (x ** 3 - 2 * x + x * x.sin()).sum()


def _default_gradient(x: Any) -> Any:
    return 3 * x ** 2 - 2 + x.sin() + x * x.cos()


def check_autograd(device: str = "cpu", *, function: Callable[[Any], Any] | None = None,
                   gradient: Callable[[Any], Any] | None = None) -> str:
    """backward() on f(x) = sum(x^3 - 2x + x sin x) matches 3x^2 - 2 + sin x + x cos x."""
    import torch

    function, gradient = function or _default_function, gradient or _default_gradient
    x = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64, device=device, requires_grad=True)
    y = function(x)
    require(y.requires_grad and y.grad_fn is not None, "the result has no graph to differentiate")
    y.backward()
    require(x.grad is not None, "backward() left no gradient on x")
    expected = gradient(x.detach())
    error = float((x.grad - expected).abs().max())
    require(error < 1e-9, f"autograd's gradient differs from the analytic one by up to {error:.3g}")
    return f"x.grad equals the analytic derivative (max error {error:.1e}, float64)"


def _default_composite(x: Any, w: Any) -> Any:
    import torch

    return torch.tanh(x @ w).pow(2).sum(dim=1) * x[:, 0].exp()


def check_gradcheck(device: str = "cpu", *, function: Callable[..., Any] | None = None,
                    dtype: Any = None) -> str:
    """torch.autograd.gradcheck: analytic and finite-difference Jacobians agree in float64."""
    import torch

    function = function or _default_composite
    dtype = dtype or torch.float64
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    w = torch.randn(4, 2, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    inputs = (x.requires_grad_(), w.requires_grad_())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gradcheck warns about non-double inputs; the result says it
        ok = torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=False)
    require(ok, f"gradcheck failed: the analytic Jacobian differs from finite differences ({dtype})")
    return "gradcheck: analytic Jacobian of tanh(x @ w)^2 * exp(x) equals finite differences (float64)"


def check_parameter_training(device: str = "cpu", *, lr: float = 0.1, steps: int = 150,
                             optimizer: Callable[..., Any] | None = None,
                             as_parameter: bool = True) -> str:
    """A module with its own nn.Parameter, fitted by optimizer.step() on y = X w + b + noise."""
    import torch
    from torch import nn

    class Linear(nn.Module):
        def __init__(self, features: int) -> None:
            super().__init__()
            weight, bias = torch.zeros(features), torch.zeros(())
            # An nn.Parameter is registered (module.parameters()) and requires grad; a plain tensor is neither.
            self.weight = nn.Parameter(weight) if as_parameter else weight
            self.bias = nn.Parameter(bias) if as_parameter else bias

        def forward(self, x: Any) -> Any:
            return x @ self.weight + self.bias

    generator = torch.Generator().manual_seed(2)
    true_w, true_b = torch.tensor([2.0, -3.0, 0.5]), torch.tensor(1.0)
    x = torch.randn(256, 3, generator=generator)
    y = x @ true_w + true_b + 0.01 * torch.randn(256, generator=generator)
    x, y, true_w, true_b = x.to(device), y.to(device), true_w.to(device), true_b.to(device)
    model = Linear(3).to(device)
    params = list(model.parameters())
    require(len(params) == 2, f"the module registers {len(params)} parameters, not 2 "
                              "(only nn.Parameter attributes are registered)")
    require(all(p.requires_grad for p in params), "a parameter does not require grad")
    make = optimizer or torch.optim.SGD
    opt = make(params, lr=lr)
    loss_fn = nn.MSELoss()
    first = last = float("nan")
    for step in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if step == 0:
            first = loss.item()
        last = loss.item()
    drop = 1 - last / first if first > 0 else 0.0
    require(math.isfinite(last), f"the loss diverged ({first:.3g} -> {last:.3g}): the step size is too large")
    require(drop >= 0.9,
            f"the loss fell only {drop:.0%} ({first:.3g} -> {last:.3g}); it should fall by at least 90%")
    w_error = float((model.weight.detach() - true_w).abs().max())
    b_error = abs(float(model.bias.detach() - true_b))
    require(w_error < 0.05 and b_error < 0.05,
            f"the parameters did not approach the true ones (errors {w_error:.3g}, {b_error:.3g})")
    return (f"loss {first:.3g} -> {last:.2g} (down {math.floor(drop * 10000) / 100:g}%) in {steps} steps; "
            f"w, b within {max(w_error, b_error):.1g} of the truth")


def data_dependent(x: Any) -> Any:
    """Control flow that depends on the values: double until |x|_1 >= 8, then branch on the sign."""
    y = x
    while y.detach().abs().sum().item() < 8.0:
        y = y * 2
    if y.detach().sum().item() > 0:
        return (y * y).sum()
    return y.sin().sum()


def data_dependent_gradient(x: Any) -> Any:
    """The analytic gradient of data_dependent, worked out by hand from the same decisions."""
    doublings = 0
    while float(x.abs().sum()) * 2 ** doublings < 8.0:
        doublings += 1
    scale = 2.0 ** doublings
    if float(x.sum()) > 0:
        return 2 * x * scale * scale
    return (x * scale).cos() * scale


def _graph_signature(output: Any) -> tuple[str, ...]:
    """The autograd nodes behind OUTPUT, in a fixed order (the graph this input built)."""
    seen: set[int] = set()
    names: list[str] = []
    stack = [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        names.append(type(node).__name__)
        stack.extend(child for child, _ in node.next_functions)
    return tuple(names)


def check_define_by_run(device: str = "cpu", *, function: Callable[[Any], Any] | None = None,
                        gradient: Callable[[Any], Any] | None = None) -> str:
    """A function whose control flow depends on the data builds a different graph per input."""
    import torch

    function, gradient = function or data_dependent, gradient or data_dependent_gradient
    inputs = [torch.tensor(values, dtype=torch.float64, device=device) for values in
              ([0.5, 0.25], [-3.0, 1.0])]
    signatures = []
    for x in inputs:
        x.requires_grad_()
        out = function(x)
        signatures.append(_graph_signature(out))
        out.backward()
        expected = gradient(x.detach())
        error = float((x.grad - expected).abs().max())
        require(error < 1e-9, f"the gradient for input {x.detach().tolist()} is off by {error:.3g}")
    require(signatures[0] != signatures[1], "both inputs built the same graph: the control flow ignored the data")
    return (f"two inputs built different graphs ({len(signatures[0])} and {len(signatures[1])} nodes); "
            "both gradients are right")


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


def cuda_status(torch: Any) -> tuple[bool, str]:
    """Whether CUDA is usable, and torch's own warning when it is not (a driver or environment problem)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = bool(torch.cuda.is_available())
    note = next((one_line(str(w.message), 200) for w in caught), "")
    return available, ("" if available else note)


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


# --- the whole demo ------------------------------------------------------------------------------


class DemoError(Exception):
    """The demo cannot run at all (no torch, no CUDA with --gpu): a message, a hint, an exit code."""

    def __init__(self, kind: str, message: str, hint: str, exit_code: int) -> None:
        super().__init__(message)
        self.kind, self.message, self.hint, self.exit_code = kind, message, hint, exit_code

    def document(self) -> dict[str, str]:
        return {"error": self.kind, "message": self.message, "hint": self.hint}


def import_torch() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Failed to initialize NumPy" on a torch without numpy
            import torch
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if missing in (None, "torch"):
            raise DemoError("no-torch", f"PyTorch is not installed for the runtime's python ({sys.executable})",
                            NO_TORCH_HINT, EXIT_NO_TORCH) from None
        raise DemoError("no-torch", f"PyTorch cannot be imported by {sys.executable}: {one_line(str(exc))}",
                        NO_TORCH_HINT, EXIT_NO_TORCH) from None
    except Exception as exc:  # a broken install: OSError from a missing CUDA library, and the like
        raise DemoError("no-torch", f"PyTorch cannot be imported by {sys.executable}: "
                        f"{type(exc).__name__}: {one_line(str(exc))}", NO_TORCH_HINT, EXIT_NO_TORCH) from None
    return torch


def _quiet(_line: str) -> None:
    pass


def run_demo(require_gpu: bool = False, say: Say = _quiet, *, cpu_seconds: float = 0.25,
             gpu_seconds: float = 0.3) -> dict[str, Any]:
    """Run every check; return ``{"device", "torch", "checks", "figures"}``. Raises DemoError."""
    torch = import_torch()
    cuda, note = cuda_status(torch)
    if require_gpu and not cuda:
        hint = NO_CUDA_HINT if not note else (
            f"torch says: {note}; if the notebook sees the GPU but SSH does not, run the cell again")
        raise DemoError("no-cuda", NO_CUDA_MESSAGE, hint, EXIT_NO_CUDA)
    device = "cuda" if cuda else "cpu"
    figures: dict[str, Any] = {"python": sys.version.split()[0]}
    if cuda:
        index = torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
        major, minor = torch.cuda.get_device_capability(index)
        figures.update({"gpu": name, "cuda": torch.version.cuda, "capability": f"{major}.{minor}",
                        "tf32_matmul": tf32_matmul(torch)})
        peak = peak_for(name)
        if peak is not None:
            figures["peak_source"] = peak.source
        say(f"demo: torch {torch.__version__} on {name} (CUDA {torch.version.cuda}, capability {major}.{minor})")
    else:
        say(f"demo: torch {torch.__version__} on the CPU (no CUDA GPU: the GPU checks are skipped)"
            + (f"; torch says: {note}" if note else ""))
    plan: list[tuple[str, Callable[..., str], tuple[Any, ...], dict[str, Any]]] = [
        ("devices", check_devices, ("cuda",), {}),
        ("view vs reshape", check_view_reshape, (device,), {}),
        ("mm vs matmul", check_mm_matmul, (device,), {}),
        ("autograd", check_autograd, (device,), {}),
        ("gradcheck", check_gradcheck, (device,), {}),
        ("nn.Parameter training", check_parameter_training, (device,), {}),
        ("define-by-run", check_define_by_run, (device,), {}),
        ("matmul CPU", check_cpu_throughput, (figures,), {"seconds": cpu_seconds}),
        ("matmul GPU fp32", check_gpu_throughput, (figures, "fp32"), {"seconds": gpu_seconds}),
        ("matmul GPU fp16", check_gpu_throughput, (figures, "fp16"), {"seconds": gpu_seconds}),
        ("matmul GPU bf16", check_gpu_throughput, (figures, "bf16"), {"seconds": gpu_seconds}),
    ]
    checks: list[CheckResult] = []
    for number, (name, check, args, kwargs) in enumerate(plan, start=1):
        started = time.perf_counter()
        result = run_check(name, check, *args, **kwargs)
        checks.append(result)
        say(f"demo: [{number}/{len(plan)}] {name}: {result.status} ({time.perf_counter() - started:.2f} s)")
    return {"device": device, "torch": torch.__version__,
            "checks": [asdict(check) for check in checks], "figures": figures}


def failed_checks(report: dict[str, Any]) -> list[str]:
    return [check["name"] for check in report["checks"] if check["status"] == FAILED]


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table of the checks (for a terminal or a notebook; colabssh draws its own)."""
    rows = [(check["name"], check["status"], check["detail"]) for check in report["checks"]]
    width = max(len(name) for name, _, _ in rows)
    lines = [f"torch {report['torch']} on {report['figures'].get('gpu') or report['device']}"]
    lines += [f"  {name:<{width}}  {status:<7}  {detail}" for name, status, detail in rows]
    counts = {status: sum(1 for _, s, _ in rows if s == status) for status in (PASSED, FAILED, SKIPPED)}
    lines.append(f"{counts[PASSED]} passed, {counts[FAILED]} failed, {counts[SKIPPED]} skipped")
    return "\n".join(lines)


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """``demo.py [--gpu] [--json]``: one JSON document (with --json) or a table on stdout."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    unknown = [arg for arg in args if arg not in ("--gpu", "--json")]
    try:
        if unknown:
            raise DemoError("usage", f"unknown argument {unknown[0]!r}", USAGE, EXIT_USAGE)
        try:
            report = run_demo(require_gpu="--gpu" in args, say=_stderr)
        except DemoError:
            raise
        except Exception as exc:  # outside the checks: still one line and one JSON document
            raise DemoError("crash", f"the demo stopped: {type(exc).__name__}: {one_line(str(exc))}",
                            "report this to colabssh with the lines above", EXIT_FAILED) from None
    except DemoError as exc:
        if as_json:
            print(json.dumps(exc.document()), flush=True)
        _stderr(f"demo: error: {exc.message}")
        _stderr(f"  hint: {exc.hint}")
        return exc.exit_code
    print(json.dumps(report) if as_json else format_table(report), flush=True)
    return EXIT_FAILED if failed_checks(report) else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
