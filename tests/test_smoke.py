import subprocess


def test_runtime_gives_a_code_that_logs_in(runtime, isolated_home):
    info = runtime.info
    key = isolated_home / ".ssh" / "colabssh" / "id_ed25519"
    result = subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-p", str(info.port),
         f"{info.user}@{info.host}", "echo ok"], capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "ok", result.stderr
