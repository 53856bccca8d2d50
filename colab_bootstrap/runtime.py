"""What the pasted cell does, in order: terms, Drive, GPU, sshd, tunnel, connect line, serve."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from . import colab, conncode, gpu, session_env, sshd
from .errors import BootstrapError
from .pubkey import authorised_key_line
from .settings import Settings
from .tunnels import Tunnel, open_tunnel

TERMS = """\
colabssh: Colab's terms allow SSH shells and remote desktops only on paid runtimes (a paid plan with a
positive compute-unit balance); on free runtimes they are disallowed and may be terminated without
warning. Google's own `colab ssh --proxy-mode` (google-colab-cli) is the supported road for billable
runtimes; this cell is the road for a notebook you already have open."""

HEARTBEAT_SECONDS = 60.0
PUBKEY_SECRET = "COLABSSH_PUBKEY"


def say(line: str) -> None:
    print(line, flush=True)


@dataclass
class Runtime:
    """What one run of the cell started; ``stop`` ends exactly that and nothing else."""

    settings: Settings
    server: sshd.SshdProcess
    tunnel: Tunnel
    code: str
    drive: Path | None

    def stop(self) -> None:
        self.tunnel.close()
        self.server.stop()

    def healthy(self) -> str:
        """'' when all is well, else what died."""
        if self.server.process.poll() is not None:
            return "sshd stopped"
        if not self.tunnel.alive():
            return f"the {self.tunnel.kind} tunnel stopped"
        return ""


def public_key_for(settings: Settings, environ: Mapping[str, str]) -> str:
    text = settings.public_key or colab.get_secret(PUBKEY_SECRET) or environ.get(PUBKEY_SECRET, "")
    if not text:
        raise BootstrapError("no public key to authorise",
                             "render the cell with `colabssh bootstrap`, or store your public key in the "
                             "Colab Secret COLABSSH_PUBKEY")
    return authorised_key_line(text)


def session_environment(settings: Settings, drive: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    env = session_env.carried_environment(environ)
    env.update({"COLABSSH_CONTENT": str(settings.content), "COLABSSH_STATE": str(settings.state),
                "COLABSSH_PYTHON": sys.executable})
    if drive is not None:
        env["COLABSSH_DRIVE"] = str(drive)
    return dict(sorted(env.items()))


def start(options: Mapping[str, object], environ: Mapping[str, str] | None = None,
          out: Callable[[str], None] = say) -> Runtime:
    environ = os.environ if environ is None else environ
    out(TERMS)
    settings = Settings.from_options(options, environ)
    key_line = public_key_for(settings, environ)
    settings.content.mkdir(parents=True, exist_ok=True)
    drive = colab.resolve_drive(settings.drive_override, out)
    card = gpu.gpu_name(out)
    settings.state.mkdir(parents=True, exist_ok=True)
    env = session_environment(settings, drive, environ)
    session_env.write_env_file(env, settings.state / session_env.ENV_FILE_NAME)
    snippet = session_env.install_profile_snippet(settings.profile_d)
    server = sshd.start(settings.state, settings.port, key_line, env, out)
    out(f"sshd: listening on 127.0.0.1:{server.port} (key only; "
        f"login shells get the kernel's environment{' via ' + str(snippet) if snippet else ''})")
    try:
        tunnel = open_tunnel(settings.tunnel, server.port, settings.state, out)
        info = conncode.ConnectionInfo(
            host=tunnel.host, port=tunnel.port, user=_user_name(), hostkey=server.host_key,
            tunnel=tunnel.kind, content=str(settings.content), drive=str(drive or ""),
            python=sys.executable, gpu=card)
        code = conncode.encode(info)
    except BaseException:
        server.stop()
        raise
    runtime = Runtime(settings=settings, server=server, tunnel=tunnel, code=code, drive=drive)
    out(f"host key fingerprint: {info.fingerprint}")
    out("On your laptop, run:")
    out(f"colabssh connect {code}")
    return runtime


def _user_name() -> str:
    import getpass

    return getpass.getuser()


def serve_foreground(runtime: Runtime, out: Callable[[str], None] = say) -> int:
    """Keep serving until SIGINT/SIGTERM; then stop what this run started."""
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        out("serving; press Ctrl-C to stop")
        while not stop.wait(HEARTBEAT_SECONDS if HEARTBEAT_SECONDS > 0 else None):
            problem = runtime.healthy()
            if problem:
                out(f"colabssh: {problem}; run the cell again")
                code = 1
                break
            out(f"colabssh: serving ({time.strftime('%H:%M:%S')})")
    finally:
        runtime.stop()
        for sig, old in previous.items():
            signal.signal(sig, old)
        out("colabssh: stopped sshd and the tunnel")
    return code


def serve_in_background(runtime: Runtime) -> None:
    """In a notebook the cell returns; sshd and the tunnel live on as children of the kernel.

    A daemon thread writes a heartbeat line to ``runtime.log`` in the state folder every
    minute, and says there (and in the notebook's output) if sshd or the tunnel stopped.
    """
    log = runtime.settings.state / "runtime.log"

    def beat() -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            problem = runtime.healthy()
            with open(log, "a") as handle:
                handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {problem or 'serving'}\n")
            if problem:
                say(f"colabssh: {problem}; run the cell again")
                return

    threading.Thread(target=beat, name="colabssh-heartbeat", daemon=True).start()


def main(options: Mapping[str, object]) -> int:
    """The cell's entry point. As a script: serve until a signal. In a notebook: return.

    A re-run stops the sshd and tunnel of the earlier run first (their pid files in the
    state folder), so there is never a second sshd or tunnel.
    """
    in_notebook = "ipykernel" in sys.modules
    try:
        runtime = start(options)
    except BootstrapError as exc:
        say(f"colabssh: error: {exc}")
        return 1
    if in_notebook:
        serve_in_background(runtime)
        say("colabssh: serving in the background; run this cell again to restart, "
            "or Runtime > Restart session to stop")
        return 0
    return serve_foreground(runtime)
