"""The demo's checks, run in-process on the CPU with real torch: each passes on its true premise and
is reported as failed when handed a wrong one."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from colab_bootstrap import demo
from colab_bootstrap.demo import FAILED, PASSED, SKIPPED, Peak, run_check

DEMO = Path(demo.__file__).parent  # the colab_bootstrap.demo package


class WrongTanh(torch.autograd.Function):
    """tanh with a broken backward: the sign of the tanh^2 term is flipped."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        y = x.tanh()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return grad * (1 + y * y)


def assert_failed(result, *words: str) -> None:
    assert result.status == FAILED, result
    assert "\n" not in result.detail
    for word in words:
        assert word in result.detail, result.detail


# --- every check passes on its true premise -----------------------------------------------------

@pytest.mark.parametrize("check", [demo.check_view_reshape, demo.check_mm_matmul, demo.check_autograd,
                                   demo.check_gradcheck, demo.check_parameter_training,
                                   demo.check_define_by_run])
def test_each_check_passes_on_the_cpu(check):
    result = run_check(check.__name__, check, "cpu")
    assert result.status == PASSED, result
    assert result.detail and "\n" not in result.detail


def test_gpu_only_checks_are_skipped_without_cuda():
    assert not torch.cuda.is_available()
    figures: dict = {}
    assert run_check("devices", demo.check_devices).status == SKIPPED
    for precision in ("fp32", "fp16", "bf16"):
        result = run_check(precision, demo.check_gpu_throughput, figures, precision)
        assert result.status == SKIPPED and "no CUDA GPU" in result.detail
    assert figures == {}


# --- and fails on a wrong one -------------------------------------------------------------------

def test_devices_fails_when_mixing_devices_does_not_raise():
    # the CPU as the "accelerator": the round trip holds, but adding across "devices" works
    assert_failed(run_check("devices", demo.check_devices, "cpu"), "did not raise")


def test_devices_fails_when_the_copy_changes_the_values():
    assert_failed(run_check("devices", demo.check_devices, "cpu", copy=lambda t, where: t.to(where) + 1),
                  "changed the values")


def test_devices_reports_an_unexpected_exception_in_one_line():
    # a meta tensor has no data: copying it back raises NotImplementedError inside the check
    result = run_check("devices", demo.check_devices, "meta")
    assert_failed(result, "raised NotImplementedError", "meta")
    assert "Traceback" not in result.detail


def test_view_reshape_fails_with_a_reshape_that_does_not_copy():
    def no_copy(tensor, shape):  # a "reshape" that never copies: strides made up over the same storage
        return tensor.as_strided(shape, (shape[1], 1))

    assert_failed(run_check("v", demo.check_view_reshape, "cpu", reshape=no_copy), "shares storage")


def test_view_reshape_fails_with_a_view_that_copies():
    assert_failed(run_check("v", demo.check_view_reshape, "cpu", view=lambda t, s: t.contiguous().reshape(*s).clone()),
                  "view of a contiguous tensor does not share")


def test_view_reshape_fails_with_a_view_that_accepts_non_contiguous_input():
    # contiguous() first: shares storage on a contiguous tensor, silently copies after transpose
    assert_failed(run_check("v", demo.check_view_reshape, "cpu", view=lambda t, s: t.contiguous().view(*s)),
                  "did not raise")


def test_mm_matmul_fails_when_mm_accepts_batches():
    assert_failed(run_check("m", demo.check_mm_matmul, "cpu", mm=torch.matmul), "mm accepted")


def test_mm_matmul_fails_with_a_matmul_that_does_not_broadcast_right():
    def wrong(a, b):
        return torch.matmul(a, b.flip(1))

    assert_failed(run_check("m", demo.check_mm_matmul, "cpu", matmul=wrong), "differs from bmm")


def test_autograd_fails_with_a_wrong_analytic_derivative():
    def forgot_product_rule(x):
        return 3 * x ** 2 - 2 + x.cos()

    assert_failed(run_check("a", demo.check_autograd, "cpu", gradient=forgot_product_rule), "differs")


def test_autograd_fails_with_a_broken_backward():
    result = run_check("a", demo.check_autograd, "cpu", function=lambda x: WrongTanh.apply(x).sum(),
                       gradient=lambda x: 1 - x.tanh() ** 2)
    assert_failed(result, "differs from the analytic one")


def test_gradcheck_fails_with_a_broken_backward():
    result = run_check("g", demo.check_gradcheck, "cpu", function=lambda x, w: WrongTanh.apply(x @ w))
    assert_failed(result, "gradcheck failed")


def test_gradcheck_fails_in_single_precision():
    # finite differences with eps=1e-6 drown in float32 rounding: the lesson of "gradcheck in float64"
    assert_failed(run_check("g", demo.check_gradcheck, "cpu", dtype=torch.float32), "gradcheck failed")


def test_training_fails_with_a_zero_learning_rate():
    assert_failed(run_check("t", demo.check_parameter_training, "cpu", lr=0.0), "fell only 0%")


def test_training_fails_when_the_loss_diverges():
    assert_failed(run_check("t", demo.check_parameter_training, "cpu", lr=1e6), "diverged")


def test_training_fails_when_the_weights_are_plain_tensors():
    assert_failed(run_check("t", demo.check_parameter_training, "cpu", as_parameter=False),
                  "registers 0 parameters")


def test_training_fails_with_too_few_steps_to_reach_the_truth():
    assert_failed(run_check("t", demo.check_parameter_training, "cpu", steps=3), "fell only")


def test_define_by_run_fails_when_the_graph_ignores_the_data():
    def fixed(x):
        return (x * 2).sum()

    result = run_check("d", demo.check_define_by_run, "cpu", function=fixed,
                       gradient=lambda x: torch.full_like(x, 2.0))
    assert_failed(result, "same graph")


def test_define_by_run_fails_with_a_gradient_that_forgets_the_doublings():
    result = run_check("d", demo.check_define_by_run, "cpu", gradient=lambda x: 2 * x if x.sum() > 0 else x.cos())
    assert_failed(result, "off by")


def test_cpu_throughput_passes_and_records_the_baseline():
    figures: dict = {}
    result = run_check("c", demo.check_cpu_throughput, figures, size=128, seconds=0.05)
    assert result.status == PASSED, result
    assert figures["cpu_fp32_tflops"] > 0 and figures["cpu_matmul_size"] == 128
    assert "GFLOP/s" in result.detail or "TFLOP/s" in result.detail


def test_cpu_throughput_fails_with_a_wrong_matmul():
    result = run_check("c", demo.check_cpu_throughput, {}, size=128, seconds=0.05,
                       matmul=lambda a, b: torch.matmul(a, b.t()))
    assert_failed(result, "product is wrong")


def test_throughput_above_the_peak_is_reported_as_unsynchronised_timing():
    # The timing logic of the GPU check, run on the CPU with a made-up card slower than this CPU.
    tiny = Peak("tiny card", 1e-6, None, 1e-6, None, "test")
    figures = {"cpu_fp32_tflops": 0.001}
    result = run_check("g", demo.check_gpu_throughput, figures, "fp32", device="cpu", size=128, seconds=0.05,
                       peak=tiny)
    assert_failed(result, "above the tiny card's peak", "synchronize")


def test_throughput_within_the_peak_reports_speedup_and_fraction():
    roomy = Peak("roomy card", 1000.0, None, 1000.0, None, "test")
    figures = {"cpu_fp32_tflops": 0.001}
    result = run_check("g", demo.check_gpu_throughput, figures, "fp32", device="cpu", size=128, seconds=0.05,
                       peak=roomy)
    assert result.status == PASSED, result
    assert "of the roomy card's 1000 TFLOP/s peak" in result.detail
    assert figures["gpu_fp32_fraction_of_peak"] < 0.01
    assert figures["gpu_fp32_speedup"] == pytest.approx(figures["gpu_fp32_tflops"] / 0.001, rel=0.1)


def test_a_check_that_raises_is_failed_in_one_line():
    def boom(device):
        raise ValueError("first line\nsecond line")

    result = run_check("boom", boom, "cpu")
    assert result == demo.CheckResult("boom", FAILED, "raised ValueError: first line")


# --- peaks --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, card", [
    ("Tesla T4", "T4"), ("NVIDIA L4", "L4"), ("NVIDIA L40S", "L40S"), ("NVIDIA A10G", "A10G"),
    ("NVIDIA A10", "A10"), ("NVIDIA A100-SXM4-40GB", "A100"), ("NVIDIA A100 80GB PCIe", "A100"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200 SXM"), ("Tesla V100-SXM2-16GB", "V100 SXM2"), ("Tesla V100-PCIE-32GB", "V100 PCIe"),
    ("Tesla P100-PCIE-16GB", "P100 PCIe"),
])
def test_known_cards_have_a_peak(name, card):
    peak = demo.peak_for(name)
    assert peak is not None and peak.card == card
    assert peak.fp32 > 0 and peak.source
    if peak.fp16:
        assert peak.fp16 >= peak.fp32


def test_unknown_cards_have_none():
    assert demo.peak_for("NVIDIA GeForce GTX 1080") is None
    assert demo.peak_for("") is None


# --- the whole demo -----------------------------------------------------------------------------

def test_run_demo_on_the_cpu_passes_at_least_six_and_fails_none():
    lines: list[str] = []
    report = demo.run_demo(say=lines.append, cpu_seconds=0.05)
    assert set(report) == {"device", "torch", "checks", "figures"}
    assert report["device"] == "cpu" and report["torch"] == torch.__version__
    statuses = [check["status"] for check in report["checks"]]
    assert FAILED not in statuses
    assert statuses.count(PASSED) >= 6
    assert {c["name"] for c in report["checks"] if c["status"] == SKIPPED} == {
        "devices", "matmul GPU fp32", "matmul GPU fp16", "matmul GPU bf16"}
    assert report["figures"]["cpu_fp32_tflops"] > 0
    assert len(lines) == len(report["checks"]) + 1 and lines[0].startswith("demo: torch")
    json.dumps(report)  # machine-readable as it is


def test_run_demo_with_require_gpu_runs_nothing_without_cuda():
    lines: list[str] = []
    with pytest.raises(demo.DemoError) as info:
        demo.run_demo(require_gpu=True, say=lines.append)
    assert info.value.message == "no CUDA GPU on the runtime: Runtime > Change runtime type > GPU"
    assert info.value.exit_code == demo.EXIT_NO_CUDA
    assert lines == []


def test_require_gpu_is_refused_before_torch_is_imported_when_no_gpu_device_shows(monkeypatch, tmp_path):
    assert not demo.gpu_device_present(str(tmp_path))  # this machine's /dev has no GPU either (the next case)
    assert not demo.gpu_device_present()
    monkeypatch.setitem(sys.modules, "torch", None)  # an `import torch` now fails: the no-GPU answer must come first
    with pytest.raises(demo.DemoError) as info:
        demo.run_demo(require_gpu=True, dev=str(tmp_path))
    assert (info.value.kind, info.value.message, info.value.hint) == ("no-cuda", demo.NO_CUDA_MESSAGE,
                                                                      demo.NO_CUDA_HINT)


@pytest.mark.parametrize("device", ["nvidia0", "nvidiactl", "nvhost-ctrl-gpu", "dxg", "kfd"])
def test_with_a_gpu_device_showing_torch_decides(monkeypatch, tmp_path, device):
    (tmp_path / device).touch()
    assert demo.gpu_device_present(str(tmp_path))
    with pytest.raises(demo.DemoError) as info:  # torch (CPU-only here) is asked, and says no
        demo.run_demo(require_gpu=True, dev=str(tmp_path))
    assert info.value.kind == "no-cuda"
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(demo.DemoError) as info:  # proof that it went on to torch
        demo.run_demo(require_gpu=True, dev=str(tmp_path))
    assert info.value.kind == "no-torch"


def test_a_dev_that_cannot_be_read_or_another_system_leaves_it_to_torch(monkeypatch, tmp_path):
    assert demo.gpu_device_present(str(tmp_path / "missing"))
    monkeypatch.setattr(sys, "platform", "darwin")
    assert demo.gpu_device_present(str(tmp_path))


def test_main_in_a_notebook_prints_a_table_and_returns(capsys):
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("torch ") and "view vs reshape" in out and "0 failed" in out


def test_the_module_imports_no_torch_at_module_level():
    code = ("import sys; import colab_bootstrap.demo as d; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('colabssh_cli', 'typer', 'rich', 'paramiko'));"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=DEMO.parents[1])


def test_the_package_is_self_contained():
    # the demo stands on its own: its modules import one another and the standard library, nothing else of ours
    for path in sorted(DEMO.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1 and (node.level == 1 or not (node.module or "").startswith("colab_bootstrap")), \
                    f"{path.name} line {node.lineno}"
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
                assert not any(name.startswith("colab_bootstrap") for name in names), f"{path.name} line {node.lineno}"
