"""The demo as a program (``python -m colab_bootstrap.demo``): run directly, and started by the runtime's python
over the real sshd (plain OpenSSH with an explicit config, the host key pinned from the connection code)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from colab_bootstrap import demo
from tests.fakes import REPO, STANDINS

pytestmark = pytest.mark.slow  # runs torch, and the demo over a real sshd

ROOT = Path(demo.__file__).parents[2]  # the checkout that holds colab_bootstrap
DEMO = ["-m", "colab_bootstrap.demo"]
# what the runtime's python runs on stdin: this checkout's demo (how colabssh ships it is not tested here)
LAUNCHER = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from colab_bootstrap.demo import main; sys.exit(main())\n"
NO_CUDA = "no CUDA GPU on the runtime: Runtime > Change runtime type > GPU"


def python_without_torch(folder: Path) -> Path:
    """A runtime python that has no torch: this very python with site-packages switched off (-S)."""
    wrapper = folder / "python-without-torch"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def ssh_to(runtime, home: Path, tmp_path: Path) -> list[str]:
    info = runtime.info
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{info.host}]:{info.port} {info.hostkey}\n")
    key = home / ".ssh" / "colabssh" / "id_ed25519"
    return ["ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}", "-p", str(info.port),
            f"{info.user}@{info.host}"]


def run_shipped(ssh: list[str], python: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ssh, python, "-", *args], input=LAUNCHER, capture_output=True, text=True, timeout=120)


def test_script_prints_one_json_document_and_progress_on_stderr():
    result = subprocess.run([sys.executable, *DEMO, "--json"], capture_output=True, text=True, timeout=120,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # the whole of stdout is one document
    assert result.stdout.count("\n") == 1
    assert {c["status"] for c in report["checks"]} == {"passed", "skipped"}
    assert "demo: [11/11] matmul GPU bf16: skipped" in result.stderr


def test_script_usage_error_is_one_line():
    result = subprocess.run([sys.executable, *DEMO, "--fast"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == demo.EXIT_USAGE
    assert result.stdout == "" and "unknown argument '--fast'" in result.stderr
    assert "Traceback" not in result.stderr


def test_script_without_torch_says_so(tmp_path):
    python = python_without_torch(tmp_path)
    result = subprocess.run([str(python), *DEMO, "--json"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == demo.EXIT_NO_TORCH
    assert json.loads(result.stdout)["error"] == "no-torch"
    assert "PyTorch is not installed" in result.stderr and "Traceback" not in result.stderr


def test_script_gpu_without_a_gpu_says_so_before_looking_for_torch(tmp_path):
    # a python without torch on a machine without a GPU: the missing GPU is what --gpu is told, torch never looked for
    python = python_without_torch(tmp_path)
    result = subprocess.run([str(python), "-X", "importtime", *DEMO, "--gpu", "--json"], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert result.returncode == demo.EXIT_NO_CUDA, result.stderr
    assert json.loads(result.stdout) == {"error": "no-cuda", "message": NO_CUDA, "hint": demo.NO_CUDA_HINT}
    assert "colab_bootstrap.demo.run" in result.stderr  # importtime's lines are there ...
    assert " torch" not in result.stderr  # ... and none of them is torch
    assert result.stderr.splitlines()[-2:] == [f"demo: error: {NO_CUDA}", f"  hint: {demo.NO_CUDA_HINT}"]


def test_demo_over_real_sshd_with_the_runtimes_python(runtime, isolated_home, tmp_path):
    info = runtime.info
    assert os.path.isabs(info.python)
    result = run_shipped(ssh_to(runtime, isolated_home, tmp_path), info.python, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    passed = [c["name"] for c in report["checks"] if c["status"] == "passed"]
    assert len(passed) >= 6 and not [c for c in report["checks"] if c["status"] == "failed"]
    assert report["device"] == "cpu"
    assert "demo: torch" in result.stderr


def test_demo_gpu_over_sshd_on_a_cpu_runtime_runs_nothing(runtime, isolated_home, tmp_path):
    result = run_shipped(ssh_to(runtime, isolated_home, tmp_path), runtime.info.python, "--gpu", "--json")
    assert result.returncode == demo.EXIT_NO_CUDA
    assert json.loads(result.stdout) == {"error": "no-cuda", "message": NO_CUDA, "hint": demo.NO_CUDA_HINT}
    assert NO_CUDA in result.stderr and "demo: [" not in result.stderr and "Traceback" not in result.stderr


def test_demo_over_sshd_with_a_python_without_torch(runtime, isolated_home, tmp_path):
    wrapper = python_without_torch(tmp_path)
    result = run_shipped(ssh_to(runtime, isolated_home, tmp_path), str(wrapper), "--json")
    assert result.returncode == demo.EXIT_NO_TORCH
    assert json.loads(result.stdout)["error"] == "no-torch"
    assert "Traceback" not in result.stderr


def test_the_gpu_check_script_runs_the_whole_road_and_fails_only_for_want_of_a_gpu(tmp_path):
    # scripts/gpu_demo_check.sh on this CPU machine, with the nvidia-smi stand-in (a T4) on PATH:
    # everything up to the GPU works, then `demo --gpu` refuses and the script says so and cleans up.
    script = REPO / "scripts" / "gpu_demo_check.sh"
    standins = STANDINS
    env = {**os.environ, "PATH": f"{standins}:{os.environ['PATH']}", "PYTHON": sys.executable,
           "TMPDIR": str(tmp_path), "DEMO_JSON": str(tmp_path / "demo.json")}
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "ssh gpu works (checked with OpenSSH)" in out
    assert f"colabssh: error: {NO_CUDA}" in out and "Traceback" not in out.split("=== ssh gpu python3")[0]
    assert json.loads((tmp_path / "demo.json").read_text())["error"] == "no-cuda"
    assert f"{sys.executable}: False" in out  # the runtime's python answered over ssh: torch, but no CUDA
    assert not list(tmp_path.glob("colabssh-gpu.*")), "the script left its temp folder"
