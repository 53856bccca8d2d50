"""`colabssh demo` end to end: the printed cell's runtime, `colabssh connect`, the real sshd, OpenSSH,
and torch on the CPU."""

from __future__ import annotations

import dataclasses
import json
import sys

from colab_bootstrap import conncode
from colabssh_cli.app import main
from colabssh_cli.errors import FAILURE, MISSING_TOOL
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import close_shared_connection

NO_CUDA = "no CUDA GPU on the runtime: Runtime > Change runtime type > GPU"
CPU_CHECKS = ["view vs reshape", "mm vs matmul", "autograd", "gradcheck", "nn.Parameter training",
              "define-by-run", "matmul CPU"]


def test_demo_shows_a_table_of_checks_that_all_pass(connected, capsys):
    assert main(["demo"]) == 0
    captured = capsys.readouterr()
    for name in CPU_CHECKS:
        assert name in captured.out
    assert "7 passed, 0 failed, 4 skipped" in captured.out
    assert "demo: [11/11] matmul GPU bf16: skipped" in captured.err  # progress streamed on stderr
    assert "demo: [" not in captured.out and "Traceback" not in captured.err


def test_demo_json_prints_one_document_and_nothing_else(connected, capsys):
    assert main(["demo", "--json", "--name", connected.alias]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert set(report) == {"device", "torch", "checks", "figures"}
    assert report["device"] == "cpu" and report["torch"].startswith("2.")
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert all(statuses[name] == "passed" for name in CPU_CHECKS)
    assert "failed" not in statuses.values()
    assert report["figures"]["cpu_fp32_tflops"] > 0


def test_demo_gpu_on_a_cpu_runtime_runs_nothing_and_says_why(connected, capsys):
    assert main(["demo", "--gpu"]) == FAILURE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"colabssh: error: {NO_CUDA}\n" in captured.err
    assert captured.err.count(NO_CUDA) == 1  # the runtime's own error line is not repeated
    assert "demo: " not in captured.err and "Traceback" not in captured.err  # no step before the refusal

    assert main(["demo", "--gpu", "--json"]) == FAILURE
    captured = capsys.readouterr()
    assert json.loads(captured.out)["error"] == "no-cuda"


def test_demo_on_a_runtime_python_without_torch(runtime, tmp_path, capsys):
    # A runtime whose connection code names a python without torch: this python with site-packages off.
    wrapper = tmp_path / "python-without-torch"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    wrapper.chmod(0o755)
    code = conncode.encode(dataclasses.replace(runtime.info, python=str(wrapper)))
    assert main(["connect", code, "--no-open", "--name", "notorch"]) == 0
    try:
        capsys.readouterr()
        assert main(["demo", "--name", "notorch"]) == MISSING_TOOL
        captured = capsys.readouterr()
        assert "colabssh: error: PyTorch is not installed for the runtime's python" in captured.err
        assert "pip install torch" in captured.err and "Traceback" not in captured.err
        assert captured.out == ""
        assert main(["demo", "--gpu", "--name", "notorch"]) == FAILURE  # no GPU is said first: torch not looked for
        captured = capsys.readouterr()
        assert f"colabssh: error: {NO_CUDA}\n" in captured.err and "PyTorch" not in captured.err
        assert "demo: " not in captured.err
    finally:
        close_shared_connection(Paths.from_env(), "notorch")


def test_demo_with_an_unknown_session_is_one_line(isolated_home, capsys):
    assert main(["demo", "--name", "nope"]) != 0
    err = capsys.readouterr().err
    assert "colabssh: error: no session" in err and "Traceback" not in err
