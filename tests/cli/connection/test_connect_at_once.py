"""Two or more `colabssh connect`s at once in one home (a double click, a script run twice) take turns under
colabssh's lock from the repair to the last check: none sees another's half-made change and none takes it for a
stranger's host key. The CLI as processes, a real runtime, real OpenSSH."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import close_shared_connection


@pytest.mark.slow
def test_four_connects_at_once_all_succeed_and_leave_one_session(runtime, isolated_home) -> None:
    argv = [sys.executable, "-m", "colabssh_cli", "connect", runtime.code, "--no-open"]
    runs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=dict(os.environ)) for _ in range(4)]
    try:
        outcomes = [run.communicate(timeout=120) for run in runs]
    finally:
        close_shared_connection(Paths.from_env(), "colab")
    for run, (_out, err) in zip(runs, outcomes, strict=True):
        assert run.returncode == 0, err
        assert "host key is not the one pinned" not in err and "Traceback" not in err
    paths = Paths.from_env()
    assert paths.config.read_text().count("Host colab\n") == 1
    assert sum(line.startswith("colabssh-colab ") for line in paths.known_hosts.read_text().splitlines()) == 1
