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

The checks by topic: ``tensors`` (devices, view vs reshape), ``matmul`` (mm vs matmul), ``autograd``
(autograd, gradcheck, define-by-run), ``training``, ``throughput`` (with the cards' ``peaks``);
``checks`` runs one check and draws the table; ``run`` runs them all and is the command line.

Three ways to run it:

- ``python -m colab_bootstrap.demo [--gpu] [--json]`` on the runtime: a table (or one JSON
  document) on stdout, progress on stderr;
- ``colabssh demo`` on the laptop, which runs it with the runtime's python over SSH;
- in a notebook cell, after the colabssh cell: ``from colab_bootstrap import demo;
  demo.main(["--gpu"])``, or ``demo.run_demo()`` for the report as a dict.

Standard library only at module level (torch is imported inside the functions), and no
imports from the rest of colab_bootstrap: the demo package stands on its own.
"""

from __future__ import annotations

from .autograd import check_autograd, check_define_by_run, check_gradcheck, data_dependent, data_dependent_gradient
from .checks import (
    FAILED,
    PASSED,
    SKIPPED,
    CheckFailed,
    CheckResult,
    Skipped,
    failed_checks,
    format_table,
    one_line,
    require,
    run_check,
)
from .matmul import check_mm_matmul
from .peaks import PEAK_TOLERANCE, PEAKS, Peak, peak_for
from .run import (
    EXIT_FAILED,
    EXIT_NO_CUDA,
    EXIT_NO_TORCH,
    EXIT_OK,
    EXIT_USAGE,
    GPU_DEVICE_PREFIXES,
    NO_CUDA_HINT,
    NO_CUDA_MESSAGE,
    NO_TORCH_HINT,
    USAGE,
    DemoError,
    cuda_status,
    gpu_device_present,
    import_torch,
    main,
    run_demo,
)
from .tensors import check_devices, check_view_reshape
from .throughput import Throughput, check_cpu_throughput, check_gpu_throughput, measure_matmul, tf32_matmul
from .training import check_parameter_training

__all__ = [
    "EXIT_FAILED", "EXIT_NO_CUDA", "EXIT_NO_TORCH", "EXIT_OK", "EXIT_USAGE", "FAILED", "GPU_DEVICE_PREFIXES",
    "NO_CUDA_HINT",
    "NO_CUDA_MESSAGE", "NO_TORCH_HINT", "PASSED", "PEAKS", "PEAK_TOLERANCE", "SKIPPED", "USAGE", "CheckFailed",
    "CheckResult", "DemoError", "Peak", "Skipped", "Throughput", "check_autograd", "check_cpu_throughput",
    "check_define_by_run", "check_devices", "check_gpu_throughput", "check_gradcheck", "check_mm_matmul",
    "check_parameter_training", "check_view_reshape", "cuda_status", "data_dependent", "data_dependent_gradient",
    "failed_checks", "format_table", "gpu_device_present", "import_torch", "main", "measure_matmul", "one_line",
    "peak_for", "require", "run_check", "run_demo", "tf32_matmul",
]
