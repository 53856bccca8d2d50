"""The whole demo: import torch, run every check in order, and ``main``: one JSON document or a table."""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from .autograd import check_autograd, check_define_by_run, check_gradcheck
from .checks import CheckResult, Say, failed_checks, format_table, one_line, run_check
from .matmul import check_mm_matmul
from .peaks import peak_for
from .tensors import check_devices, check_view_reshape
from .throughput import check_cpu_throughput, check_gpu_throughput, tf32_matmul
from .training import check_parameter_training

# Exit codes of `python -m colab_bootstrap.demo` (colabssh demo maps them to its own).
EXIT_OK = 0
EXIT_FAILED = 1  # at least one check failed
EXIT_USAGE = 2
EXIT_NO_CUDA = 3  # --gpu on a runtime without a CUDA GPU
EXIT_NO_TORCH = 4  # the python that runs the demo has no (working) torch

NO_CUDA_MESSAGE = "no CUDA GPU on the runtime: Runtime > Change runtime type > GPU"
NO_CUDA_HINT = "choose a GPU runtime in Colab, run the colabssh cell again and connect the new code"
NO_TORCH_HINT = "install it on the runtime: `pip install torch` (Colab's GPU runtimes come with it)"
USAGE = "usage: demo.py [--gpu] [--json]"  # worded as when the demo was one file, demo.py
# The device files through which torch.cuda reaches a GPU on Linux: NVIDIA's driver (/dev/nvidia0, nvidiactl),
# Jetson's (nvhost-*, nvmap), WSL2's (dxg) and ROCm's (kfd: a ROCm torch answers torch.cuda too).
GPU_DEVICE_PREFIXES = ("nvidia", "nvhost", "nvmap", "dxg", "kfd")


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


def gpu_device_present(dev: str = "/dev") -> bool:
    """Whether the machine shows a device file that CUDA could use; True where that cannot be told so cheaply.

    It costs one directory listing, where importing torch costs seconds (more on a cold disk), so `--gpu` on a
    runtime without a GPU is refused at once. Only a clear no counts: another system than Linux, or a /dev that
    cannot be read, leaves the answer to torch."""
    if not sys.platform.startswith("linux"):
        return True
    try:
        names = os.listdir(dev)
    except OSError:
        return True
    return any(name.startswith(GPU_DEVICE_PREFIXES) for name in names)


def cuda_status(torch: Any) -> tuple[bool, str]:
    """Whether CUDA is usable, and torch's own warning when it is not (a driver or environment problem)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = bool(torch.cuda.is_available())
    note = next((one_line(str(w.message), 200) for w in caught), "")
    return available, ("" if available else note)


def _quiet(_line: str) -> None:
    pass


def run_demo(require_gpu: bool = False, say: Say = _quiet, *, cpu_seconds: float = 0.25,
             gpu_seconds: float = 0.3, dev: str = "/dev") -> dict[str, Any]:
    """Run every check; return ``{"device", "torch", "checks", "figures"}``. Raises DemoError.

    REQUIRE_GPU is checked first, before torch is imported, when DEV shows no GPU device (``gpu_device_present``)."""
    if require_gpu and not gpu_device_present(dev):
        raise DemoError("no-cuda", NO_CUDA_MESSAGE, NO_CUDA_HINT, EXIT_NO_CUDA)
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


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m colab_bootstrap.demo [--gpu] [--json]``: one JSON document (with --json) or a table on stdout."""
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
