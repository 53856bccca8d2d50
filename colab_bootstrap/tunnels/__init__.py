"""The tunnel from the internet to the runtime's sshd: ngrok, cloudflared or none."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import processes

TUNNEL_PID_NAME = "tunnel.pid"


@dataclass
class Tunnel:
    kind: str
    host: str
    port: int
    close: Callable[[], None] = field(default=lambda: None, repr=False)
    process: object | None = field(default=None, repr=False)  # a Popen, for liveness checks

    def alive(self) -> bool:
        poll = getattr(self.process, "poll", None)
        return poll is None or poll() is None


def open_tunnel(kind: str, port: int, state: Path, say: Callable[[str], None], host_key: str = "") -> Tunnel:
    """The tunnel to the sshd on PORT; an ngrok tunnel is tagged with HOST_KEY's fingerprint (the ngrok API shows
    it to the laptop's relay)."""
    stop_leftover_tunnel(state, say)
    if kind == "local":
        say(f"tunnel: none (local): sshd on 127.0.0.1:{port}")
        return Tunnel(kind="local", host="127.0.0.1", port=port)
    if kind == "ngrok":
        from .ngrok import open_ngrok
        return open_ngrok(port, state, say, host_key)
    from .cloudflared import open_cloudflared
    return open_cloudflared(port, state, say)


def record_tunnel_pid(state: Path, pid: int, marker: str) -> None:
    """Remember the agent so that a re-run of the cell can stop it (and nothing else)."""
    (state / TUNNEL_PID_NAME).write_text(f"{pid}\n{marker}\n")


def forget_tunnel_pid(state: Path, pid: int) -> None:
    """Remove the record, unless a later run of the cell has written its own there."""
    path = state / TUNNEL_PID_NAME
    try:
        if path.read_text().split()[:1] == [str(pid)]:
            path.unlink()
    except OSError:
        pass


def stop_leftover_tunnel(state: Path, say: Callable[[str], None], whose: str = "of an earlier run") -> None:
    """Stop the agent an earlier run left behind: the recorded pid, if its argv still names our marker.

    Waits until it is gone, so that ngrok's one-agent-per-account limit (ERR_NGROK_108) is not hit
    by our own leftover.
    """
    path = state / TUNNEL_PID_NAME
    try:
        pid_text, marker = path.read_text().splitlines()[:2]
        pid = int(pid_text)
    except (OSError, ValueError):
        return
    if processes.runs_with(pid, marker):
        say(f"stopping the tunnel {whose} (pid {pid})")
        processes.terminate(pid)
    path.unlink(missing_ok=True)
