"""What only Colab has, through the stand-ins: Drive mounting, Secrets, and the GPU that nvidia-smi reports."""

from __future__ import annotations

from pathlib import Path

from tests.cellrunner import RunningCell
from tests.fakes import (
    TOKEN,
    assert_clean_failure,
    client_key_path,
    colab_env,
    ngrok_env,
    path_with_standins,
    ssh,
    sshd_listeners,
)


def _finish(running: RunningCell, timeout: float = 60) -> tuple[int, str]:
    running.process.wait(timeout=timeout)
    running.wait_for(lambda line: False, timeout=timeout)
    return running.process.returncode, running.output


def test_drive_is_mounted_under_the_content_root_and_named_in_the_code(start_runtime, isolated_home, tmp_path):
    where = tmp_path / "runtime"
    env = colab_env(tmp_path, COLABSSH_DRIVE="")  # no override: mount Google Drive
    running = start_runtime("local", env, where=where)
    mountpoint = running.content / "drive"
    assert f"Mounted at {mountpoint}" in running.output
    assert running.info.drive == str(mountpoint / "MyDrive")
    # a file written over SSH into the code's Drive folder lands in the (fake) Google account
    result = ssh(running.info, client_key_path(isolated_home), f"echo backed-up > {running.info.drive}/note.txt")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "google-account" / "MyDrive" / "note.txt").read_text() == "backed-up\n"

    running.stop()
    again = start_runtime("local", env, where=where)  # Drive stays mounted between runs of the cell
    assert f"Drive already mounted at {mountpoint}" in again.output
    assert again.info.drive == running.info.drive


def test_a_failed_drive_mount_is_explained(start_runtime, tmp_path):
    for failure, text in (("timeout", "timeout during initial read of root folder"),
                          ("denied", "credential propagation was unsuccessful")):
        env = colab_env(tmp_path, COLABSSH_DRIVE="", FAKE_COLAB_DRIVE_FAIL=failure)
        running = start_runtime("local", env, where=tmp_path / failure, expect_code=False)
        code, output = _finish(running)
        assert code == 1
        assert_clean_failure(output)
        error = output[output.index("colabssh: error"):]
        assert error.startswith("colabssh: error: mounting Google Drive failed: ") and text in error
        assert "hint: run the cell again and allow access, or set COLABSSH_DRIVE" in output
        assert sshd_listeners(running.state) == []


def test_the_gpu_is_reported_and_named_in_the_code(start_runtime):
    running = start_runtime("local", {"PATH": path_with_standins()})
    assert "GPU: Tesla T4, 15360 MiB, driver 550.54.15" in running.output
    assert running.info.gpu == "Tesla T4"
    assert "WARNING" not in running.output


def test_no_gpu_is_a_loud_warning_and_the_cell_goes_on(start_runtime):
    running = start_runtime("local", {"PATH": path_with_standins(), "FAKE_NVIDIA_SMI_FAIL": "1"})
    assert "!! WARNING: no NVIDIA GPU on this runtime" in running.output
    assert "Runtime > Change runtime type > GPU" in running.output
    assert running.info.gpu == ""


def test_a_secret_without_notebook_access_is_pointed_out(start_runtime, isolated_home, tmp_path):
    env = {**ngrok_env(tmp_path), **colab_env(tmp_path, {"NGROK_AUTHTOKEN": None})}  # exists, no access
    running = start_runtime("ngrok", env)
    assert "the Colab Secret NGROK_AUTHTOKEN exists but this notebook may not read it" in running.output
    assert TOKEN not in running.output
    # it went on with the token from the environment
    result = ssh(running.info, client_key_path(isolated_home), "echo ok")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_the_colab_stand_in_refuses_to_mount_off_colab(tmp_path):
    """Without FAKE_COLAB_ROOT the stand-in behaves like google.colab outside a Colab VM."""
    import subprocess
    import sys

    env = colab_env(tmp_path)
    env.pop("FAKE_COLAB_ROOT")
    script = f"from google.colab import drive; drive.mount({str(tmp_path / 'mnt')!r})"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", **env})
    assert result.returncode == 1 and "NotImplementedError: Mounting drive is unsupported" in result.stderr
    assert not Path(tmp_path / "mnt").exists()


def test_on_colab_is_the_release_tag_or_the_vm_s_hostname_file(tmp_path, monkeypatch):
    from colab_bootstrap import colab

    marker = tmp_path / "hostname"
    monkeypatch.setattr(colab, "COLAB_HOSTNAME_FILE", marker)
    assert colab.on_colab({"COLAB_RELEASE_TAG": "release-colab_20250101"}) is True
    assert colab.on_colab({}) is False
    marker.write_text("colab-vm\n")
    assert colab.on_colab({}) is True
