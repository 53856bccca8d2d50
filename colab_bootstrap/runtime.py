"""What the pasted cell does, in order: terms, Drive, GPU, sshd, tunnel, connect line, serve (``serving``)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import colab, comeback, conncode, gpu, pack, session_env, sshd
from .errors import BootstrapError
from .pubkey import authorised_key_line
from .settings import Settings, profile_folder, state_folder
from .tunnels import Tunnel, open_tunnel, stop_leftover_tunnel

if TYPE_CHECKING:
    from .serving import Signals

TERMS = """\
colabssh: Colab's terms allow SSH shells and remote desktops only on paid runtimes (a paid plan with a
positive compute-unit balance); on free runtimes they are disallowed and may be terminated without
warning. Google's own `colab ssh --proxy-mode` (google-colab-cli) is the supported road for billable
runtimes; this cell is the road for a notebook you already have open."""

PUBKEY_SECRET = "COLABSSH_PUBKEY"
RUN_ID_NAME = "run.id"  # which run of the cell owns the state folder now
START_LOCK_NAME = "start.lock"  # held while a run of the cell starts (starting_alone)
START_LOCK_TIMEOUT = 120.0  # seconds a run waits for another one that is starting
PERIODIC_ID = Path("sync", "periodic.id")  # sync.periodic.start_periodic's timer runs while this names it


def say(line: str) -> None:
    """One status line on stdout (the notebook's output); a closed stdout is not an error."""
    try:
        print(line, flush=True)
    except (OSError, ValueError):
        pass


@dataclass
class Runtime:
    """What one run of the cell started; ``stop`` ends exactly that and nothing else."""

    settings: Settings
    server: sshd.SshdProcess
    tunnel: Tunnel
    code: str
    info: conncode.ConnectionInfo
    drive: Path | None
    run_id: str = ""
    snippet: Path | None = None  # the login-shell snippet, where this run installed one
    key_line: str = ""  # the authorised key: names this runtime's folder on Drive (drive_layout.runtime_folder)

    def stop(self) -> None:
        """Stop this run's tunnel and sshd; its periodic sync too, unless a later run owns the folder now;
        the login-shell snippet too, once no run of the cell on this machine needs it."""
        if self.is_current():
            forget_periodic_sync(self.settings.state)
        self.tunnel.close()
        self.server.stop()
        release_profile_snippet(self.snippet)

    def is_current(self) -> bool:
        """False once a later run of the cell has taken over the state folder."""
        try:
            return (self.settings.state / RUN_ID_NAME).read_text().strip() == self.run_id
        except OSError:
            return False

    def healthy(self) -> str:
        """'' when all is well, else what died."""
        if self.server.process.poll() is not None:
            return "sshd stopped"
        if not self.tunnel.alive():
            return f"the {self.tunnel.kind} tunnel stopped"
        return ""


def public_key_for(settings: Settings, environ: Mapping[str, str], out: Callable[[str], None] = say) -> str:
    text = settings.public_key or colab.get_secret(PUBKEY_SECRET, out) or environ.get(PUBKEY_SECRET, "")
    if not text:
        raise BootstrapError("no public key to authorise",
                             "render the cell with `colabssh bootstrap`, or store your public key in the "
                             "Colab Secret COLABSSH_PUBKEY")
    return authorised_key_line(text)


def session_environment(settings: Settings, drive: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    env = session_env.carried_environment(environ)
    env.update({"COLABSSH_CONTENT": str(settings.content), "COLABSSH_STATE": str(settings.state),
                "COLABSSH_PYTHON": sys.executable, "COLABSSH_HOME": str(settings.home)})
    if drive is not None:
        env["COLABSSH_DRIVE"] = str(drive)
    return dict(sorted(env.items()))


def start(options: Mapping[str, object], environ: Mapping[str, str] | None = None,
          out: Callable[[str], None] = say) -> Runtime:
    environ = os.environ if environ is None else environ
    out(TERMS)
    settings = Settings.from_options(options, environ)
    if settings.tunnel == "ngrok":  # before anything starts: off Colab a missing pyngrok stops the cell here
        from .tunnels.ngrok import require_pyngrok

        require_pyngrok(out)
    key_line = public_key_for(settings, environ, out)
    settings.content.mkdir(parents=True, exist_ok=True)
    drive = colab.resolve_drive(settings.drive_override, settings.content, out)
    card = gpu.gpu_name(out)
    sshd.prepare_state(settings.state)
    pack.cache_running_bundle({"COLABSSH_STATE": str(settings.state)})  # the cell's code, for laptop commands
    comeback.restore_at_start(settings.content, drive, settings.home, settings.state, settings.restore, out)
    with starting_alone(settings.state, out):
        return _start_locked(settings, key_line, drive, card, environ, out)


@contextmanager
def starting_alone(state: Path, out: Callable[[str], None], timeout: float = START_LOCK_TIMEOUT) -> Iterator[None]:
    """One start at a time per state folder: a second run of the cell started meanwhile waits, then takes over
    from the first like any re-run (two starts side by side could each stop the other's sshd)."""
    try:
        fd = os.open(state / START_LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        raise BootstrapError(f"cannot use the start lock in {state}: {exc.strerror or exc}",
                             "set COLABSSH_STATE to a folder of your own") from None
    try:
        deadline, told = time.monotonic() + timeout, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BootstrapError("another run of the cell is still starting with this state folder",
                                         "wait for it, or stop it (colabssh_stop()), then run the cell again") from None
                if not told:
                    out("colabssh: another run of the cell is starting; waiting for it, then taking over")
                    told = True
                time.sleep(0.05)  # a lock held by another process: nothing to wait on but time
        yield
    finally:
        os.close(fd)  # releases the lock


def _start_locked(settings: Settings, key_line: str, drive: Path | None, card: str, environ: Mapping[str, str],
                  out: Callable[[str], None]) -> Runtime:
    env = session_environment(settings, drive, environ)
    snippet = session_env.snippet_path(settings.profile_d)
    prepared = sshd.prepare(settings.state, settings.port, key_line, env, out, settings.sshd, snippet,
                            kept=sshd.kept_folder(drive, key_line), fresh_host_key=settings.fresh_host_key)
    # checked: from here on the earlier run (if any) stands down and its sshd is stopped
    run_id = f"{os.getpid()}-{time.time_ns()}"
    (settings.state / RUN_ID_NAME).write_text(run_id + "\n")
    session_env.write_env_file(env, settings.state / session_env.ENV_FILE_NAME)
    try:
        server = sshd.launch(prepared, out)
    except BaseException:
        release_profile_snippet(snippet)  # the earlier run's, if that run's sshd was stopped
        raise
    tunnel: Tunnel | None = None
    try:
        snippet = session_env.install_profile_snippet(settings.profile_d)  # once our sshd names it (see stop)
        out(f"sshd: listening on 127.0.0.1:{server.port} (key only); SSH sessions get the kernel's environment")
        if snippet is None:
            out("sshd: no login-shell snippet (COLABSSH_PROFILE_D is empty or not writable): login shells "
                "keep /etc/profile's PATH")
        tunnel = open_tunnel(settings.tunnel, server.port, settings.state, out, server.host_key)
        info = conncode.ConnectionInfo(
            host=tunnel.host, port=tunnel.port, user=sshd.login_name(), hostkey=server.host_key,
            tunnel=tunnel.kind, content=str(settings.content), drive=str(drive or ""),
            python=sys.executable, gpu=card)
        return Runtime(settings=settings, server=server, tunnel=tunnel, code=conncode.encode(info), info=info,
                       drive=drive, run_id=run_id, snippet=snippet, key_line=key_line)
    except conncode.CodeError as exc:
        _stop_quietly(tunnel, server, snippet)
        raise BootstrapError(f"this runtime cannot be described in a connection code: {exc}",
                             "set COLABSSH_CONTENT/COLABSSH_DRIVE to plain absolute paths") from None
    except BaseException:
        _stop_quietly(tunnel, server, snippet)
        raise


def announce(runtime: Runtime, out: Callable[[str], None] = say) -> None:
    """Start the periodic sync (when asked), save the code to Drive, then the lines the user copies: the
    fingerprint and the code.

    The sync comes first so that a failure there never follows a code for a runtime that then stops; the code
    is on Drive before it is printed, so a laptop that finds it there finds this runtime's.
    """
    from .sync import periodic  # the cell's own periodic backup to Drive when sync_every > 0 (issue 4)
    periodic.start_periodic(runtime.settings.content, runtime.drive, runtime.settings.state,
                               runtime.settings.sync_every, out, home=runtime.settings.home)
    sshd.save_code(runtime.drive, runtime.key_line, runtime.code, out)
    out(f"host key fingerprint: {runtime.info.fingerprint}")
    out("On your laptop, run:")
    out(f"colabssh connect {runtime.code}")


def _stop_quietly(tunnel: Tunnel | None, server: sshd.SshdProcess, snippet: Path | None) -> None:
    if tunnel is not None:
        tunnel.close()
    server.stop()
    release_profile_snippet(snippet)


def release_profile_snippet(snippet: Path | None) -> None:
    """Remove the login-shell snippet (only if it is exactly ours) once no live run of the cell on this
    machine names it in its sshd config; the cell's only footprint outside its state folder goes with it."""
    if snippet is not None and not sshd.snippet_in_use(snippet):
        session_env.remove_profile_snippet(snippet)


def forget_periodic_sync(state: Path) -> None:
    """Remove the periodic sync's token: its timer thread ends before its next backup."""
    try:
        (state / PERIODIC_ID).unlink(missing_ok=True)
    except OSError:
        pass  # e.g. "sync" is not a folder: then there is no timer either


def as_bootstrap_error(exc: BaseException) -> BootstrapError | None:
    """The one-line form of a failure the cell can explain; None for a bug (whose traceback is the report)."""
    if isinstance(exc, BootstrapError):
        return exc
    again = "run the cell again; if it fails the same way, the state folder's logs (COLABSSH_STATE) say more"
    if isinstance(exc, subprocess.CalledProcessError):
        program = os.path.basename(str(exc.cmd[0] if isinstance(exc.cmd, (list, tuple)) else exc.cmd))
        return BootstrapError(f"{program} failed with exit status {exc.returncode}", again)
    if isinstance(exc, subprocess.TimeoutExpired):
        program = os.path.basename(str(exc.cmd[0] if isinstance(exc.cmd, (list, tuple)) else exc.cmd))
        return BootstrapError(f"{program} did not finish within {exc.timeout:.0f} s", again)
    if isinstance(exc, subprocess.SubprocessError):
        return BootstrapError(f"a command failed: {exc}", again)
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return BootstrapError(f"{exc.strerror or type(exc).__name__}{where}",
                              "check that path's permissions and the free space (df -h), then run the cell again")
    return None


def stop_serving(out: Callable[[str], None] = say, environ: Mapping[str, str] | None = None) -> None:
    """Stop the sshd, tunnel and periodic sync of the cell's latest run; in a notebook: ``colabssh_stop()``.

    It goes by the pid and token files in the state folder, not by what this kernel remembers, so it also
    stops what a kernel lost to "Restart session" left behind.
    """
    environ = os.environ if environ is None else environ
    state = state_folder(environ)
    (state / RUN_ID_NAME).unlink(missing_ok=True)  # background heartbeats stand down
    forget_periodic_sync(state)  # and so does the periodic sync's timer
    sshd.stop_leftover(state, out, whose="this cell started")
    stop_leftover_tunnel(state, out, whose="this cell started")
    release_profile_snippet(session_env.snippet_path(profile_folder(environ)))
    out("colabssh: stopped; run the cell again for a new connection code")


def main(options: Mapping[str, object]) -> int:
    """The cell's entry point. As a script: serve until a signal. In a notebook: return.

    A re-run stops the sshd (with the connections it serves) and the tunnel of the earlier run
    first, found through the state folder's pid files and /proc, so there is never a second sshd
    or tunnel; a port held by anything else is refused before the earlier run is touched.
    """
    from .serving import Signals, serve_foreground  # serving imports this module

    if "ipykernel" in sys.modules:
        return _main_in_notebook(options)
    signals = Signals()
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, signals) for sig in handled}
    try:
        runtime = _start_and_announce(options, signals)
        if isinstance(runtime, int):
            return runtime
        return serve_foreground(runtime, signals.stop)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _start_and_announce(options: Mapping[str, object], signals: Signals | None = None) -> Runtime | int:
    """The running runtime, or the exit status of a start that failed (after stopping what had started).

    ``start`` cleans up after itself; a failure after it (in ``announce``) stops the runtime here, so a
    cell that ends never leaves sshd or the tunnel agent behind. A failure the cell can explain
    (BootstrapError, OSError, a failed command) is one line and a hint; only a bug shows a traceback.
    """
    runtime: Runtime | None = None
    try:
        runtime = start(options)
        if signals is not None:
            signals.serving = True
        announce(runtime)
        return runtime
    except KeyboardInterrupt:
        _stop_started(runtime)
        say("colabssh: interrupted while starting; stopped what had started")
        return 130
    except Exception as exc:
        _stop_started(runtime)
        error = as_bootstrap_error(exc)
        if error is None:
            raise
        say(f"colabssh: error: {error}")
        return 1


def _stop_started(runtime: Runtime | None) -> None:
    if runtime is not None:
        runtime.stop()


def _main_in_notebook(options: Mapping[str, object]) -> int:
    from .serving import serve_in_background

    runtime = _start_and_announce(options)
    if isinstance(runtime, int):
        return runtime
    serve_in_background(runtime)
    say("colabssh: serving in the background while this notebook's kernel runs; run this cell again "
        "for a fresh start, or colabssh_stop() to end SSH access")
    return 0
