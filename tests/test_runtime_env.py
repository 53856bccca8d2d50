"""The kernel's environment reaches SSH sessions: `ssh HOST cmd` (SetEnv) and login shells (profile snippet)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from tests.fakes import STANDINS, TOKEN, client_key_path, ssh

MARKER = "marker-7f3a9c-from-the-kernel"
QUOTED = "it's \"quoted\" and spaced"  # SetEnv cannot carry this: only the env file can


def _kernel_env(tmp_path: Path, **extra: str) -> tuple[dict[str, str], Path]:
    """A kernel environment like Colab's: a CUDA bin folder on PATH (with nvidia-smi), CUDA variables."""
    cuda_bin = tmp_path / "usr-local-nvidia" / "bin"
    cuda_bin.mkdir(parents=True)
    (cuda_bin / "nvidia-smi").symlink_to(STANDINS / "nvidia-smi")
    env = {"COLAB_TEST_MARKER": MARKER, "COLAB_TEST_QUOTED": QUOTED,
           "PATH": f"{cuda_bin}:{os.environ['PATH']}", "LD_LIBRARY_PATH": "/usr/lib64-nvidia:/usr/local/cuda/lib64",
           "CUDA_VERSION": "12.4.1", "NVIDIA_VISIBLE_DEVICES": "all",
           "NGROK_AUTHTOKEN": TOKEN, "COLAB_API_TOKEN": "not-for-ssh-sessions", **extra}
    return env, cuda_bin


def _env_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.replace("\r", "").splitlines() if "=" in line)


def test_kernel_environment_reaches_ssh_commands(start_runtime, render, isolated_home, tmp_path):
    env, cuda_bin = _kernel_env(tmp_path)
    running = start_runtime("local", env)
    key = client_key_path(isolated_home)

    result = ssh(running.info, key, "env")
    assert result.returncode == 0, result.stderr
    seen = _env_lines(result.stdout)
    assert seen["COLAB_TEST_MARKER"] == MARKER
    assert seen["LD_LIBRARY_PATH"] == env["LD_LIBRARY_PATH"]
    assert seen["CUDA_VERSION"] == "12.4.1" and seen["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert str(cuda_bin) in seen["PATH"].split(":")
    assert seen["COLABSSH_CONTENT"] == str(running.content)
    assert seen["COLABSSH_ENV_FILE"] == str(running.state / "session-env.sh")
    # secrets are never handed on, nor written where sessions read
    assert "NGROK_AUTHTOKEN" not in seen and "COLAB_API_TOKEN" not in seen
    for name in ("sshd_config", "session-env.sh"):
        text = (running.state / name).read_text()
        assert TOKEN not in text and "not-for-ssh-sessions" not in text

    # what the variables are for: the GPU tools work inside SSH sessions
    gpu = ssh(running.info, key, "nvidia-smi --query-gpu=name --format=csv,noheader")
    assert gpu.returncode == 0, gpu.stderr
    assert gpu.stdout.strip() == "Tesla T4"
    assert running.info.gpu == "Tesla T4"  # the cell saw the same card

    # values come from the kernel at run time: none is baked into the printed cell
    cell_text = render("local").read_text()
    assert MARKER not in cell_text and str(cuda_bin) not in cell_text


def test_login_shells_get_the_kernel_environment_back_after_etc_profile(start_runtime, isolated_home, tmp_path):
    """A real login shell (`bash -l`, on a pty) runs /etc/profile, which resets PATH; the snippet restores it.

    The snippet goes to a temp profile.d (COLABSSH_PROFILE_D) instead of /etc/profile.d, and a temp HOME's
    .bash_profile sources that folder the way /etc/profile sources /etc/profile.d.
    """
    profile_d = tmp_path / "profile.d"
    profile_d.mkdir()
    env, cuda_bin = _kernel_env(tmp_path, COLABSSH_PROFILE_D=str(profile_d))
    running = start_runtime("local", env)
    snippet = profile_d / "colabssh-env.sh"
    assert snippet.is_file() and snippet.stat().st_mode & 0o777 == 0o644
    login_home = tmp_path / "login-home"
    login_home.mkdir()
    (login_home / ".bash_profile").write_text(
        'echo "BEFORE_PROFILE_D=$PATH"\n'
        f'for i in {shlex.quote(str(profile_d))}/*.sh; do . "$i"; done\n')
    inner = 'echo "SHELL_IS_LOGIN=$(shopt -q login_shell && echo yes)"; echo "MARK=$COLAB_TEST_MARKER"; ' \
            'echo "QUOTED=$COLAB_TEST_QUOTED"; echo "AFTER=$PATH"; nvidia-smi --query-gpu=name --format=csv,noheader'
    command = f"HOME={shlex.quote(str(login_home))} exec bash -l -c {shlex.quote(inner)}"
    result = ssh(running.info, client_key_path(isolated_home), command, "-tt")
    assert result.returncode == 0, result.stdout + result.stderr
    seen = _env_lines(result.stdout)
    assert seen["SHELL_IS_LOGIN"] == "yes"
    assert str(cuda_bin) not in seen["BEFORE_PROFILE_D"].split(":")  # /etc/profile did reset PATH
    assert str(cuda_bin) in seen["AFTER"].split(":")
    assert seen["MARK"] == MARKER
    assert seen["QUOTED"] == QUOTED  # only the env file can carry this value
    assert "Tesla T4" in result.stdout
    assert "COLAB_TEST_QUOTED" not in (running.state / "sshd_config").read_text()


def test_the_profile_snippet_does_nothing_outside_colabssh_sessions(start_runtime, tmp_path):
    profile_d = tmp_path / "profile.d"
    profile_d.mkdir()
    start_runtime("local", {"COLABSSH_PROFILE_D": str(profile_d), "COLAB_TEST_MARKER": MARKER})
    snippet = profile_d / "colabssh-env.sh"
    env = {k: v for k, v in os.environ.items() if k != "COLABSSH_ENV_FILE"}
    result = subprocess.run(["bash", "-c", f'. {shlex.quote(str(snippet))}; echo "MARK=${{COLAB_TEST_MARKER:-}}"'],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0 and result.stdout.strip() == "MARK="
