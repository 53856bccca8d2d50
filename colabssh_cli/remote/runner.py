"""The remote seam: every remote command the CLI runs goes through here.

OpenSSH (``ssh -F /abs/home/.ssh/config ALIAS ...``) through the very config that
VS Code uses (the user's config, which includes colabssh's own file), so what works
for `colabssh status` works for VS Code. ``-F`` is always given with an absolute
path because ssh finds ``~`` through the password database, not ``$HOME``. The
Host block's connection sharing (ControlMaster/ControlPath/ControlPersist; not on
Windows) lets every command after the first skip the handshake. Remote exit codes
become advice (255: ssh itself failed; 127: a command missing on the runtime), as
sshuttle does. Files go up through stdin (`write_file`) or scp (`upload`).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import BAD_INPUT, FAILURE, MISSING_TOOL, UNREACHABLE, ColabsshError
from ..paths import Paths
from ..session import Login, Session, resolve
from . import process
from .advice import explain_ssh_stderr
from .colab_log import colab_context
from .process import LineSink

CONTROL_TIMEOUT = 15.0  # seconds for an `ssh -O` answer from a shared connection
PID_MARKER = "colabssh-pid "  # the first stderr line of a stoppable command: its process id on the runtime
STOP_TIMEOUT = 5.0  # seconds for the runtime to answer the stop of an interrupted command
# What became of a stoppable command after Ctrl-C (RemoteInterrupted.state).
STOPPED, NOT_STARTED, UNCONFIRMED = "stopped", "not started", "unconfirmed"
# Run on the runtime after Ctrl-C (PID: the interrupted command's): SIGTERM to it and its process group (sshd makes
# each session's command a group of its own), SIGKILL after a second, and say whether it has ended (a zombie has).
_STOP_SCRIPT = """p={pid}; kill -s TERM -- -$p $p 2>/dev/null; n=0
while kill -0 $p 2>/dev/null && [ "$(sed -n 's/^.*) \\([A-Z]\\).*/\\1/p' /proc/$p/stat 2>/dev/null)" != Z ]; do
  n=$((n+1)); [ $n -eq 20 ] && kill -s KILL -- -$p $p 2>/dev/null; [ $n -ge 40 ] && {{ echo running; exit 0; }}
  sleep 0.05
done; echo ended"""
_CONFIG_MISSING = re.compile(r"Can't open user config file (.+?): (.+)")


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


def ssh_binary() -> str:
    return process.require("ssh", "OpenSSH's ssh client is not installed",
                           "install it (Debian/Ubuntu: apt-get install openssh-client; Windows: the "
                           "OpenSSH Client optional feature)")


def scp_binary() -> str:
    return process.require("scp", "OpenSSH's scp is not installed", "install the OpenSSH client")


def shares_connections() -> bool:
    """OpenSSH's connection sharing needs Unix sockets; OpenSSH for Windows has none."""
    return os.name != "nt"


def ssh_config_file(paths: Paths) -> Path:
    """The config every ssh call is given with -F: the user's own, which includes colabssh's file."""
    return paths.user_config


def ssh_base(paths: Paths, program: Optional[str] = None) -> list[str]:
    """Every OpenSSH call starts so: the program (ssh unless given, e.g. scp) and ``-F`` with the user's config."""
    return [program or ssh_binary(), "-F", str(ssh_config_file(paths))]


def control_command(paths: Paths, alias: str, command: str, extra: Sequence[str] = (),
                    timeout: Optional[float] = None) -> process.Finished:
    """``ssh -O COMMAND [EXTRA] ALIAS`` (check, exit, forward, cancel) against the alias's shared connection.

    A master that does not answer within TIMEOUT (default CONTROL_TIMEOUT) comes back as ssh's own failure
    (exit 255), never as an exception.
    """
    timeout = CONTROL_TIMEOUT if timeout is None else timeout
    argv = [*ssh_base(paths), "-O", command, *extra, alias]
    try:
        return process.run(argv, timeout=timeout)
    except process.TimedOut:
        return process.Finished(argv, 255, "", f"ssh -O {command}: the shared connection did not answer "
                                               f"within {timeout:.0f} s\n")


def shared_connection_alive(paths: Paths, alias: str) -> bool:
    if not shares_connections() or not ssh_config_file(paths).exists():
        return False
    try:
        return control_command(paths, alias, "check").returncode == 0
    except OSError:
        return False


def close_shared_connection(paths: Paths, alias: str) -> bool:
    """Close the alias's shared connection if one is open (so nothing reaches an old runtime); True if closed."""
    if not shared_connection_alive(paths, alias):
        return False
    try:
        return control_command(paths, alias, "exit").returncode == 0
    except OSError:
        return False


def explain_ssh_failure(alias: str, returncode: int, stderr: str, shown: bool = False) -> ColabsshError:
    """Turn ssh's own failure (exit 255) or a missing remote command into advice.

    SHOWN: the user has seen STDERR already (`colabssh ssh` shows it as it comes), so the advice does not quote
    its lines again; it points at them."""
    text = stderr.strip()
    last = text.splitlines()[-1] if text else ""
    said = "ssh said why, above" if shown and last else last
    if returncode == 255:
        missing_config = _CONFIG_MISSING.search(text)
        if missing_config:
            return ColabsshError(f"{alias}: ssh cannot open its config file {missing_config.group(1)} "
                                 f"({missing_config.group(2)})",
                                 f"it holds the Include that makes '{alias}' work: run `colabssh connect` again "
                                 "with the code the cell printed (`colabssh doctor` shows what else is missing)",
                                 BAD_INPUT)
        via_colab = explain_ssh_stderr(alias, text, *colab_context(Paths.from_env(), alias), shown=shown)
        if via_colab is not None:
            return via_colab
        if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
            return ColabsshError(f"{alias}: the runtime's host key is not the one pinned for this session",
                                 "if you restarted the runtime, run the cell again and `colabssh connect` "
                                 "the new code; otherwise someone may be in the middle", UNREACHABLE)
        if "Permission denied" in text:
            return ColabsshError(f"{alias}: the runtime refused colabssh's key",
                                 "the cell was made for another key: render it again with `colabssh "
                                 "bootstrap` and re-run it", UNREACHABLE)
        if "cloudflared" in text and ("not found" in text or "No such file" in text):
            return ColabsshError(f"{alias}: cloudflared is not installed on this machine",
                                 "install cloudflared, then try again", MISSING_TOOL)
        relayed = relay_failure(alias, text if shown else "")
        if relayed is not None:
            return relayed
        return ColabsshError(f"{alias}: the runtime did not answer ({said or 'ssh failed'})",
                             "the tunnel is down or the runtime is gone: re-run the cell in Colab, then "
                             "`colabssh connect` the new code", UNREACHABLE)
    if returncode == 127:
        return ColabsshError(f"{alias}: a command is missing on the runtime ({last or 'exit 127'})",
                             "re-run the cell (it installs what colabssh needs)", FAILURE)
    return ColabsshError(f"{alias}: the remote command failed with exit code {returncode}"
                         + (f": {last}" if last else ""), "", FAILURE)


def relay_failure(alias: str, shown: str = "") -> Optional[ColabsshError]:
    """What the session's relay (a Drive folder's ProxyCommand) said when it last found no runtime, as advice.

    SHOWN: what the user has seen of ssh's stderr; a reason the relay said there is pointed at, not said again."""
    from ..comeback import notes

    lines = notes.recent(Paths.from_env(), alias)
    if not lines:
        return None
    hint = next((line[len("hint: "):] for line in lines if line.startswith("hint: ")), "")
    reasons = [line for line in lines if not line.startswith("hint: ")]
    reason = next((line for line in reasons if "not the pinned" in line),
                  next((line for line in reversed(reasons) if line.startswith("no runtime")), reasons[-1]))
    if reason in shown:
        return ColabsshError(f"{alias}: the relay reached no runtime (it said why, above)", hint, UNREACHABLE)
    return ColabsshError(f"{alias}: {reason}", hint, UNREACHABLE)


def ensure_sharing_folder(paths: Paths) -> None:
    """Make this home's connection-sharing folders again when they are gone: ssh ends at once (exit 255, "cannot
    bind") when the folder of its ControlPath is missing. ``/tmp/colabssh-<uid>/...`` (for a home too long for
    ``~/.ssh/colabssh/cm``) goes with a reboot, or with another home's ``forget`` when it was empty. Each folder
    a Host block of colabssh's config names (read as text: no parsing of the whole plan) and that is colabssh's
    kind of folder is made; one that is there but not safely ours is left as it is (ssh then says so)."""
    if not hasattr(os, "geteuid"):  # OpenSSH for Windows: no connection sharing
        return
    from ..sshconfig.render import control_dirs_written, ensure_control_dir, short_control_dir

    try:
        text = paths.config.read_bytes()
    except OSError:
        return
    ours = (paths.control_dir, short_control_dir())
    for folder in control_dirs_written(text):
        if (folder in ours or folder.parent == ours[1]) and not folder.is_dir():
            try:
                ensure_control_dir(folder)
            except (ColabsshError, OSError):
                pass



class RemoteInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``Remote.stream(..., stop_on_interrupt=True)``: ssh has been stopped, and so has the command on
    the runtime. STATE: STOPPED (the runtime confirmed that it has ended), NOT_STARTED (it had not started there:
    there was nothing to stop), UNCONFIRMED (the runtime did not answer the stop in time, or a second Ctrl-C came).
    A KeyboardInterrupt still: a caller that does not catch it ends as any Ctrl-C does (exit 130)."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


class Remote:
    """A session's runtime, reached with OpenSSH through colabssh's own config file."""

    def __init__(self, session: Session, paths: Optional[Paths] = None) -> None:
        self.session = session
        self.paths = paths or Paths.from_env()

    @classmethod
    def for_alias(cls, alias: Optional[str]) -> Remote:
        paths = Paths.from_env()
        session = resolve(alias, paths)
        ensure_sharing_folder(paths)
        return cls(session, paths)

    @property
    def alias(self) -> str:
        return self.session.alias

    def _batch_mode(self) -> list[str]:
        """Key sessions never prompt (a password session's ssh asks for the password)."""
        return ["-o", "BatchMode=yes"] if self.session.auth == Login.KEY else []

    def ssh_argv(self, remote_command: Optional[str] = None, *, tty: bool = False,
                 options: Sequence[str] = ()) -> list[str]:
        argv = self.transport_argv(tty=tty) + [*options, self.alias]
        if remote_command is not None:
            argv += ["--", remote_command]
        return argv

    def transport_argv(self, *, tty: bool = False) -> list[str]:
        """ssh with colabssh's config and options but no host: what rsync's ``-e`` runs (it adds the host)."""
        return ssh_base(self.paths) + self._batch_mode() + ["-t" if tty else "-T"]

    def run(self, command: str, *, input: Optional[bytes] = None, timeout: Optional[float] = None,
            advise: bool = True) -> Completed:
        """Run a remote shell command and return what it did, whatever its exit code.

        With ADVISE, ssh's own failure (exit 255) and a command missing on the runtime (127) raise a
        ColabsshError with advice instead (``explain_ssh_failure``); a timeout always does."""
        try:
            result = process.run_bytes(self.ssh_argv(command), input=input, timeout=timeout)
        except process.TimedOut:
            raise ColabsshError(f"{self.alias}: the runtime did not answer within {timeout:.0f} s",
                                "the tunnel may be down: re-run the cell in Colab", UNREACHABLE) from None
        if advise and result.returncode in (255, 127):
            raise explain_ssh_failure(self.alias, result.returncode, result.stderr.decode(errors="replace"))
        return Completed(result.returncode, result.stdout, result.stderr)

    def stream(self, command: str, *, input: Optional[bytes] = None, on_stdout: Optional[LineSink] = None,
               on_stderr: Optional[LineSink] = None, advise: bool = True, timeout: Optional[float] = None,
               stop_on_interrupt: bool = False) -> int:
        """Run a remote command, handing each output line to a callback as it arrives; return its exit code
        (with ADVISE, exits 255 and 127 raise advice as in ``run``). Past TIMEOUT seconds ssh is killed and
        the runtime's silence raised as advice (as ``run`` does).

        STOP_ON_INTERRUPT (COMMAND must then be one simple command: it is exec'd): Ctrl-C stops the command on the
        runtime too, and ``RemoteInterrupted`` says whether that is confirmed. ssh without a terminal does not pass
        Ctrl-C on, and a command whose ssh has gone runs on until it next writes; so the command first says its
        process id (PID_MARKER, a line the callbacks never see), and on Ctrl-C a second command stops it."""
        pid: list[int] = []
        if stop_on_interrupt:
            command = f"echo {PID_MARKER}$$ >&2; exec {command}"
            on_stderr = _catch_pid(pid, on_stderr)
        try:
            returncode, stderr_tail = process.stream(self.ssh_argv(command), input=input, on_stdout=on_stdout,
                                                     on_stderr=on_stderr, timeout=timeout)
        except process.TimedOut:
            raise ColabsshError(f"{self.alias}: the runtime did not answer within {timeout:.0f} s",
                                "the tunnel may be down: re-run the cell in Colab", UNREACHABLE) from None
        except KeyboardInterrupt:
            if not stop_on_interrupt:
                raise
            raise RemoteInterrupted(self.stop_process(pid[0]) if pid else NOT_STARTED) from None
        if advise and returncode in (255, 127):
            said = [line for line in stderr_tail if not line.startswith(PID_MARKER)]
            raise explain_ssh_failure(self.alias, returncode, "\n".join(said))
        return returncode

    def stop_process(self, pid: int) -> str:
        """Stop process PID on the runtime (and its process group), and wait for it to end: STOPPED when the runtime
        says it has, UNCONFIRMED when it does not answer within STOP_TIMEOUT (or a Ctrl-C comes meanwhile). It
        never asks for a password (BatchMode): after a Ctrl-C, a prompt would be a surprise."""
        argv = self.ssh_argv(_STOP_SCRIPT.format(pid=int(pid)), options=["-o", "BatchMode=yes"])
        try:
            result = process.run_bytes(argv, timeout=STOP_TIMEOUT)
        except (process.TimedOut, OSError, KeyboardInterrupt):
            return UNCONFIRMED
        return STOPPED if result.stdout.strip() == b"ended" else UNCONFIRMED

    def write_file(self, remote_path: str, data: bytes, *, mode: int = 0o644) -> None:
        """Write bytes to a file on the runtime through stdin: a temp file beside it, then a rename."""
        target = shlex.quote(remote_path)
        temp = shlex.quote(f"{remote_path}.colabssh-tmp")
        command = (f"umask 077 && cat > {temp} && chmod {mode:o} {temp} && mv -f {temp} {target}"
                   f" || {{ rc=$?; rm -f {temp}; exit $rc; }}")
        result = self.run(command, input=data)
        if result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip().splitlines()
            raise ColabsshError(f"{self.alias}: could not write {remote_path} on the runtime"
                                + (f": {detail[-1]}" if detail else ""), "", FAILURE)

    def upload(self, local: Path, remote_path: str) -> None:
        """Copy a local file to the runtime with scp (OpenSSH, same config, same shared connection)."""
        argv = ssh_base(self.paths, scp_binary()) + ["-q", "-p", *self._batch_mode(),
                                                      "--", str(local), f"{self.alias}:{remote_path}"]
        result = process.run_bytes(argv)
        if result.returncode != 0:
            stderr = result.stderr.decode(errors="replace")
            if result.returncode == 255 or "Connection closed" in stderr or "Permission denied (" in stderr:
                raise explain_ssh_failure(self.alias, 255, stderr)
            last = (stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
            raise ColabsshError(f"{self.alias}: could not copy {local} to {remote_path}: {last}", "", FAILURE)

    def interactive(self, command: Sequence[str] = ()) -> process.Attached:
        """Run OpenSSH with the alias on this terminal (a shell, or COMMAND): ssh's exit code and the end of its
        stderr (shown to the user as it came; kept for advice)."""
        argv = [*ssh_base(self.paths), self.alias]
        if command:
            argv += ["--", *command]
        return process.run_attached(argv)

    def shared_connection_alive(self) -> bool:
        return shared_connection_alive(self.paths, self.alias)


def _catch_pid(pid: list[int], sink: Optional[LineSink]) -> LineSink:
    """A stderr callback that keeps the PID_MARKER line's number in PID and hands every other line to SINK."""

    def catch(line: str) -> None:
        if not pid and line.startswith(PID_MARKER) and line[len(PID_MARKER):].strip().isdigit():
            pid.append(int(line[len(PID_MARKER):]))
        elif sink is not None:
            sink(line)

    return catch
