"""Running the cell again, stopping it, and the notebook mode where the cell returns and the tunnel lives on."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.cellrunner import CONNECT_PREFIX, cell_env
from tests.fakes import (
    FAKE_NGROK,
    STANDINS,
    TOKEN,
    alive,
    client_key_path,
    ngrok_env,
    pids_with,
    ssh,
    ssh_argv,
    sshd_listeners,
    wait_until,
)

pytestmark = pytest.mark.slow  # each test starts the cell and its sshd


def _agent_pids(state: Path) -> list[int]:
    return pids_with(str(state / "ngrok.yml"))


def _decoy(tmp_path: Path) -> subprocess.Popen[bytes]:
    """An unrelated ngrok agent (same binary, another config) that nothing of colabssh may stop."""
    other = tmp_path / "someone-else"
    other.mkdir()
    (other / "ngrok.yml").write_text(f'version: "3"\nagent:\n  authtoken: {TOKEN}\n')
    decoy = subprocess.Popen([str(FAKE_NGROK), "start", "--none", "--log", "stdout", "--config",
                              str(other / "ngrok.yml")], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert decoy.stdout is not None
    for line in decoy.stdout:  # wait until it is up
        if b"tunnel session started" in line:
            break
    return decoy


def test_rerun_after_sigkill_leaves_one_sshd_and_one_agent_and_sigterm_stops_exactly_those(
        start_runtime, isolated_home, tmp_path):
    where = tmp_path / "runtime"
    env = ngrok_env(tmp_path)
    first = start_runtime("ngrok", env, where=where)
    state = first.state
    [sshd1] = sshd_listeners(state)
    [agent1] = _agent_pids(state)
    first.process.kill()  # SIGKILL: no clean-up runs
    first.process.wait()
    assert alive(sshd1) and alive(agent1)  # left behind, as a crashed or killed cell leaves them

    decoy = _decoy(tmp_path)
    try:
        second = start_runtime("ngrok", env, where=where)
        assert f"stopping the sshd of an earlier run (pid {sshd1})" in second.output
        assert f"stopping the tunnel of an earlier run (pid {agent1})" in second.output
        [sshd2] = sshd_listeners(state)
        [agent2] = _agent_pids(state)
        assert sshd2 != sshd1 and agent2 != agent1
        assert not alive(sshd1) and not alive(agent1)
        result = ssh(second.info, client_key_path(isolated_home), "echo second-run", pin=tmp_path / "pin")
        assert result.returncode == 0 and result.stdout.strip() == "second-run", result.stderr

        assert second.stop(signal.SIGTERM) == 0
        assert "colabssh: stopped sshd and the ngrok tunnel" in second.output
        wait_until(lambda: not alive(sshd2) and not alive(agent2), what="sshd and the agent to stop")
        assert sshd_listeners(state) == [] and _agent_pids(state) == []
        assert decoy.poll() is None  # the unrelated agent lives on
    finally:
        decoy.terminate()
        decoy.wait()


def test_ctrl_c_stops_a_local_runtime(start_runtime):
    running = start_runtime("local")
    [pid] = sshd_listeners(running.state)
    assert running.stop(signal.SIGINT) == 0
    assert running.wait_for(lambda line: False) is None  # every line read
    assert running.output.rstrip().endswith("colabssh: stopped sshd")  # a local runtime has no tunnel to stop
    wait_until(lambda: not alive(pid), what="sshd to stop")
    assert not (running.state / "sshd.pid").exists()


def test_a_second_run_beside_a_live_one_takes_over_cleanly(start_runtime, isolated_home, tmp_path):
    where = tmp_path / "runtime"
    first = start_runtime("local", {"COLABSSH_HEARTBEAT": "0.2"}, where=where)
    [sshd1] = sshd_listeners(first.state)
    second = start_runtime("local", where=where)
    assert first.wait_for(lambda line: "a later run of the cell took over" in line) is not None
    first.process.wait(timeout=30)
    assert first.process.returncode == 0
    assert first.wait_for(lambda line: False) is None  # every line read, to the end of its output
    assert first.output.rstrip().endswith("colabssh: this run has ended; the later run serves SSH now")
    assert "stopped sshd and the tunnel" not in first.output
    [sshd2] = sshd_listeners(second.state)
    assert sshd2 != sshd1 and not alive(sshd1)
    assert (second.state / "sshd.pid").read_text().strip() == str(sshd2)  # the first run's exit kept it
    result = ssh(second.info, client_key_path(isolated_home), "echo ok")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_stale_pid_files_never_stop_an_unrelated_process(start_runtime, tmp_path):
    """A pid from an earlier boot may now belong to someone else: only a process that still runs our config
    or our tunnel's marker is stopped."""
    bystander = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        state = tmp_path / "runtime" / "state"
        state.mkdir(parents=True)
        (state / "sshd.pid").write_text(f"{bystander.pid}\n")
        (state / "tunnel.pid").write_text(f"{bystander.pid}\n{state / 'ngrok.yml'}\n")
        running = start_runtime("local", where=tmp_path / "runtime")
        assert "of an earlier run" not in running.output
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_the_heartbeat_notices_a_dead_sshd(start_runtime):
    running = start_runtime("local", {"COLABSSH_HEARTBEAT": "0.2"})
    [pid] = sshd_listeners(running.state)
    os.kill(pid, signal.SIGKILL)
    line = running.wait_for(lambda text: "run the cell again" in text, timeout=30)
    assert line is not None and "sshd stopped" in line
    running.process.wait(timeout=30)
    assert running.process.returncode == 1


class Kernel:
    """The notebook-kernel stand-in running the printed cell, with its output lines in a queue."""

    def __init__(self, cell: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, str(STANDINS / "notebook-kernel"), str(cell)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env, start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.wait_for("KERNEL: ready")

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, prefix: str, timeout: float = 60) -> str:
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {prefix!r} line in {timeout} s:\n{''.join(self.lines)}") from None
            if line is None:
                raise AssertionError(f"the kernel ended before {prefix!r}:\n{''.join(self.lines)}")
            if line.startswith(prefix):
                return line

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def run_cell(self) -> str:
        """Run the cell; return its connection code once the cell has returned."""
        self.send("run")
        code = self.wait_for(CONNECT_PREFIX)[len(CONNECT_PREFIX):].strip()
        self.wait_for("colabssh: serving in the background")
        self.wait_for("KERNEL: cell finished")
        return code


def test_in_a_notebook_the_cell_returns_and_the_tunnel_lives_on(render, isolated_home, tmp_path):
    from colab_bootstrap import conncode

    tmp = tmp_path / "runtime"
    (tmp / "drive").mkdir(parents=True)
    env = cell_env(tmp, {**ngrok_env(tmp_path), "COLABSSH_HEARTBEAT": "0.2"})
    state = Path(env["COLABSSH_STATE"])
    kernel = Kernel(render("ngrok"), env)
    try:
        first = conncode.decode(kernel.run_cell())
        # the cell has returned; sshd and the agent that pyngrok started keep serving
        result = ssh(first, client_key_path(isolated_home), "echo after-the-cell-returned")
        assert result.returncode == 0 and result.stdout.strip() == "after-the-cell-returned", result.stderr
        [sshd1] = sshd_listeners(state)
        [agent1] = _agent_pids(state)

        second = conncode.decode(kernel.run_cell())  # the same cell again, in the same kernel
        [sshd2] = sshd_listeners(state)
        [agent2] = _agent_pids(state)
        assert (sshd2, agent2) != (sshd1, agent1) and not alive(sshd1) and not alive(agent1)
        result = ssh(second, client_key_path(isolated_home), "echo second")
        assert result.returncode == 0 and result.stdout.strip() == "second", result.stderr
        log = state / "runtime.log"
        wait_until(lambda: log.exists() and log.read_text().count("serving") >= 5, what="heartbeats")
        assert "run the cell again" not in "".join(kernel.lines)  # the first run's heartbeat stood down

        kernel.send("exec colabssh_stop()")  # the cell defines it in the notebook's namespace
        kernel.wait_for("colabssh: stopped; run the cell again")
        kernel.wait_for("KERNEL: cell finished")
        assert not alive(sshd2) and not alive(agent2)
        assert sshd_listeners(state) == [] and _agent_pids(state) == []

        third = conncode.decode(kernel.run_cell())
        [sshd3] = sshd_listeners(state)
        [agent3] = _agent_pids(state)
        result = ssh(third, client_key_path(isolated_home), "echo third")
        assert result.returncode == 0 and result.stdout.strip() == "third", result.stderr
        kernel.send("exit")  # a kernel shutdown: our atexit stops sshd, pyngrok's (and ours) the agent
        kernel.process.wait(timeout=30)
        wait_until(lambda: not alive(sshd3) and not alive(agent3), what="sshd and the agent to stop")
    finally:
        if kernel.process.poll() is None:
            kernel.process.kill()
            kernel.process.wait()
        for pid in sshd_listeners(state) + _agent_pids(state):
            os.kill(pid, signal.SIGKILL)


def test_stopping_the_runtime_also_ends_the_connections_it_was_serving(start_runtime, isolated_home):
    """Each connection's sshd calls setsid(); a stopped runtime must not keep serving it."""
    running = start_runtime("local")
    running.wait_for(lambda line: line.startswith("serving"))
    client = subprocess.Popen([*ssh_argv(running.info, client_key_path(isolated_home)), "echo up; exec cat"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert client.stdout is not None
    assert client.stdout.readline() == b"up\n"  # the session is established
    assert running.stop(signal.SIGTERM) == 0
    assert client.wait(timeout=20) != 0 or client.stdout.read() == b""  # the connection was closed
    assert not [pid for pid in pids_with(str(running.state / "sshd_config")) if alive(pid)]


def test_colabssh_stop_also_ends_the_periodic_sync(start_runtime, tmp_path):
    """Review item 9: the timer runs while STATE/sync/periodic.id names it; colabssh_stop() must remove it."""
    from colab_bootstrap import runtime as cell_runtime

    running = start_runtime("local", {"COLABSSH_SYNC_EVERY": "3600"})  # the variable turns on what the cell has off
    marker = running.state / "sync" / "periodic.id"
    wait_until(marker.exists, what="the periodic sync's token")
    assert "every 3600 s" in running.output
    [pid] = sshd_listeners(running.state)
    said: list[str] = []
    cell_runtime.stop_serving(said.append, environ={"COLABSSH_STATE": str(running.state), "COLABSSH_PROFILE_D": ""})
    assert not marker.exists()
    assert not alive(pid) and said[-1].startswith("colabssh: stopped")
