"""The kernel's environment reaches SSH sessions: `ssh HOST cmd` (SetEnv) and login shells (profile snippet)."""

from __future__ import annotations

import os
import shlex
import signal
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
           "NGROK_AUTHTOKEN": TOKEN, **{name: "not-for-ssh-sessions" for name in SECRET_NAMES}, **extra}
    return env, cuda_bin


# Names a kernel may have that must never reach a session: Colab sets COLAB_JUPYTER_TOKEN; the rest match the
# carried prefixes and hold a secret word (COOKIE was once missing from the words).
SECRET_NAMES = ("COLAB_API_TOKEN", "COLAB_JUPYTER_TOKEN", "COLAB_SESSION_COOKIE", "TF_SERVING_AUTH_HEADER",
                "NVIDIA_API_KEY", "CUDA_CREDENTIALS_FILE", "TORCH_HUB_PASSWD", "JAX_COORDINATOR_SECRET")
# Every CUDA/NVIDIA/NCCL/TF/COLAB name of a real Colab GPU kernel's environment (2025): all carried.
COLAB_GPU_NAMES = ("NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "NVIDIA_REQUIRE_CUDA",
                   "NVIDIA_PRODUCT_NAME", "CUDA_VERSION", "NCCL_VERSION", "TF_FORCE_GPU_ALLOW_GROWTH", "COLAB_GPU",
                   "COLAB_RELEASE_TAG", "COLAB_BACKEND_VERSION", "COLAB_JUPYTER_IP", "COLAB_JUPYTER_TRANSPORT",
                   "COLAB_KERNEL_MANAGER_PROXY_HOST", "COLAB_KERNEL_MANAGER_PROXY_PORT", "COLAB_FILE_HANDLER_ADDR",
                   "COLAB_LANGUAGE_SERVER_PROXY", "COLAB_DEBUG_ADAPTER_MUX_PATH", "COLAB_WARMUP_DEFAULTS",
                   "COLAB_NOTEBOOK_ID", "LD_LIBRARY_PATH", "LIBRARY_PATH", "PATH", "PYTHONPATH", "MPLBACKEND",
                   "LANG", "LC_ALL")


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
    assert "NGROK_AUTHTOKEN" not in seen and not [name for name in SECRET_NAMES if name in seen]
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
    """A login shell (`bash -l`, on a pty) runs /etc/profile, which resets PATH; the snippet restores it.

    Nothing of this machine's own login files is read (its /etc/profile.d may hold a colabssh snippet of a
    real run, and root's ~/.bashrc may put pyenv first): the shell runs with --noprofile --norc and sources
    a profile of the test's own that does what Debian's /etc/profile does (reset PATH, then source every
    *.sh of a profile.d), with the snippet in a temp profile.d (COLABSSH_PROFILE_D).
    """
    profile_d = tmp_path / "profile.d"
    profile_d.mkdir()
    env, cuda_bin = _kernel_env(tmp_path, COLABSSH_PROFILE_D=str(profile_d))
    running = start_runtime("local", env)
    snippet = profile_d / "colabssh-env.sh"
    assert snippet.is_file() and snippet.stat().st_mode & 0o777 == 0o644
    etc_profile = tmp_path / "etc-profile"
    etc_profile.write_text(
        'PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"; export PATH\n'
        'echo "BEFORE_PROFILE_D=$PATH"\n'
        f'for i in {shlex.quote(str(profile_d))}/*.sh; do if [ -r "$i" ]; then . "$i"; fi; done\n')
    inner = f'. {shlex.quote(str(etc_profile))}; ' \
            'echo "SHELL_IS_LOGIN=$(shopt -q login_shell && echo yes)"; echo "MARK=$COLAB_TEST_MARKER"; ' \
            'echo "QUOTED=$COLAB_TEST_QUOTED"; echo "AFTER=$PATH"; nvidia-smi --query-gpu=name --format=csv,noheader'
    command = f"HOME={shlex.quote(str(tmp_path))} exec bash --noprofile --norc -l -c {shlex.quote(inner)}"
    result = ssh(running.info, client_key_path(isolated_home), command, "-tt")
    assert result.returncode == 0, result.stdout + result.stderr
    seen = _env_lines(result.stdout)
    assert seen["SHELL_IS_LOGIN"] == "yes"
    assert str(cuda_bin) not in seen["BEFORE_PROFILE_D"].split(":")  # the profile did reset PATH
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


def test_secret_looking_names_are_kept_out_by_pattern_in_any_case_and_colab_s_gpu_names_are_carried():
    from colab_bootstrap.session_env import carried_environment, looks_secret

    kernel = {name: "value" for name in (*SECRET_NAMES, *COLAB_GPU_NAMES)}
    carried = carried_environment(kernel)
    assert sorted(carried) == sorted(COLAB_GPU_NAMES)
    for name in ("colab_jupyter_token", "Colab_Session_Cookie", "my_api_key", "DB_Password", "GH_AUTH", "passwd",
                 "COLAB_PASS", "NVIDIA_PWD", "TF_CREDS", "TORCH_HUB_PAT", "PAT", "COLAB_SIGNING_SECRET",
                 "CUDA_BEARER", "TF_PRIVATE_THING"):  # found from outside: the first list missed the short ones
        assert looks_secret(name), name
    for name in ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "COLAB_PATCHED", "TORCH_HOME"):
        assert not looks_secret(name), name
    assert not [name for name in COLAB_GPU_NAMES if looks_secret(name)]


def test_the_snippet_goes_with_the_last_run_that_needs_it_and_only_if_it_is_ours(start_runtime, tmp_path):
    """The cell's one footprint outside its state folder: removed by the stop of the last live run that names it
    (the end of a script run, colabssh_stop()); a run without a snippet does not count; an edited file stays."""
    from colab_bootstrap import runtime as cell_runtime
    from colab_bootstrap.session_env import PROFILE_SNIPPET

    profile_d = tmp_path / "profile.d"
    profile_d.mkdir()
    snippet = profile_d / "colabssh-env.sh"
    uses_it = {"COLABSSH_PROFILE_D": str(profile_d)}
    start_runtime("local", where=tmp_path / "bystander")  # a live run of the cell without a snippet
    one = start_runtime("local", uses_it, where=tmp_path / "one")
    two = start_runtime("local", uses_it, where=tmp_path / "two")
    assert snippet.read_text() == PROFILE_SNIPPET
    assert one.stop(signal.SIGTERM) == 0
    assert snippet.read_text() == PROFILE_SNIPPET  # the other run's login shells still rely on it
    assert two.stop(signal.SIGTERM) == 0
    assert not snippet.exists()

    three = start_runtime("local", uses_it, where=tmp_path / "three")
    assert snippet.exists()
    said: list[str] = []
    cell_runtime.stop_serving(said.append, environ={"COLABSSH_STATE": str(three.state), **uses_it})
    assert not snippet.exists() and said[-1].startswith("colabssh: stopped")

    four = start_runtime("local", uses_it, where=tmp_path / "four")
    snippet.write_text(PROFILE_SNIPPET + "export EDITED_BY_ME=1\n")  # not ours any more
    assert four.stop(signal.SIGTERM) == 0
    assert snippet.read_text().endswith("export EDITED_BY_ME=1\n")
