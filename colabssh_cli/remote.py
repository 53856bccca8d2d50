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
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional

from colab_bootstrap.processes import stop_child

from .colab_cli_errors import explain_ssh_stderr
from .errors import BAD_INPUT, FAILURE, MISSING_TOOL, UNREACHABLE, ColabsshError
from .paths import Paths
from .sessions import Session, resolve

LineSink = Callable[[str], None]
CONTROL_TIMEOUT = 15.0  # seconds for an `ssh -O` answer from a shared connection
_CONFIG_MISSING = re.compile(r"Can't open user config file (.+?): (.+)")


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


def ssh_binary() -> str:
    found = shutil.which("ssh")
    if not found:
        raise ColabsshError("OpenSSH's ssh client is not installed",
                            "install it (Debian/Ubuntu: apt-get install openssh-client; Windows: the "
                            "OpenSSH Client optional feature)", MISSING_TOOL)
    return found


def scp_binary() -> str:
    found = shutil.which("scp")
    if not found:
        raise ColabsshError("OpenSSH's scp is not installed", "install the OpenSSH client", MISSING_TOOL)
    return found


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
                    timeout: Optional[float] = None) -> subprocess.CompletedProcess[str]:
    """``ssh -O COMMAND [EXTRA] ALIAS`` (check, exit, forward, cancel) against the alias's shared connection.

    A master that does not answer within TIMEOUT (default CONTROL_TIMEOUT) comes back as ssh's own failure
    (exit 255), never as an exception.
    """
    timeout = CONTROL_TIMEOUT if timeout is None else timeout
    argv = [*ssh_base(paths), "-O", command, *extra, alias]
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 255, "", f"ssh -O {command}: the shared connection did not answer "
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


def explain_ssh_failure(alias: str, returncode: int, stderr: str) -> ColabsshError:
    """Turn ssh's own failure (exit 255) or a missing remote command into advice."""
    text = stderr.strip()
    last = text.splitlines()[-1] if text else ""
    if returncode == 255:
        missing_config = _CONFIG_MISSING.search(text)
        if missing_config:
            return ColabsshError(f"{alias}: ssh cannot open its config file {missing_config.group(1)} "
                                 f"({missing_config.group(2)})",
                                 f"it holds the Include that makes '{alias}' work: run `colabssh connect` again "
                                 "with the code the cell printed (`colabssh doctor` shows what else is missing)",
                                 BAD_INPUT)
        colab_road = explain_ssh_stderr(alias, text)  # sessions through Google's `colab ssh --proxy-mode`
        if colab_road is not None:
            return colab_road
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
        return ColabsshError(f"{alias}: the runtime did not answer ({last or 'ssh failed'})",
                             "the tunnel is down or the runtime is gone: re-run the cell in Colab, then "
                             "`colabssh connect` the new code", UNREACHABLE)
    if returncode == 127:
        return ColabsshError(f"{alias}: a command is missing on the runtime ({last or 'exit 127'})",
                             "re-run the cell (it installs what colabssh needs)", FAILURE)
    return ColabsshError(f"{alias}: the remote command failed with exit code {returncode}"
                         + (f": {last}" if last else ""), "", FAILURE)


class Remote:
    """A session's runtime, reached with OpenSSH through colabssh's own config file."""

    def __init__(self, session: Session, paths: Optional[Paths] = None) -> None:
        self.session = session
        self.paths = paths or Paths.from_env()

    @classmethod
    def for_alias(cls, alias: Optional[str]) -> Remote:
        paths = Paths.from_env()
        return cls(resolve(alias, paths), paths)

    @property
    def alias(self) -> str:
        return self.session.alias

    def _batch_mode(self) -> list[str]:
        """Key sessions never prompt (a password session's ssh asks for the password)."""
        return ["-o", "BatchMode=yes"] if self.session.auth == "key" else []

    def ssh_argv(self, remote_command: Optional[str] = None, *, tty: bool = False,
                 options: Sequence[str] = ()) -> list[str]:
        argv = ssh_base(self.paths) + self._batch_mode()
        argv += ["-t" if tty else "-T", *options, self.alias]
        if remote_command is not None:
            argv += ["--", remote_command]
        return argv

    def run(self, command: str, *, input: Optional[bytes] = None, timeout: Optional[float] = None,
            check: bool = True) -> Completed:
        """Run a remote shell command; with check, ssh failures and exit 127 raise advice."""
        try:
            result = subprocess.run(self.ssh_argv(command), input=input, capture_output=True, timeout=timeout,
                                    stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ColabsshError(f"{self.alias}: the runtime did not answer within {timeout:.0f} s",
                                "the tunnel may be down: re-run the cell in Colab", UNREACHABLE) from None
        if check and result.returncode in (255, 127):
            raise explain_ssh_failure(self.alias, result.returncode, result.stderr.decode(errors="replace"))
        return Completed(result.returncode, result.stdout, result.stderr)

    def stream(self, command: str, *, input: Optional[bytes] = None, on_stdout: Optional[LineSink] = None,
               on_stderr: Optional[LineSink] = None, check: bool = True, timeout: Optional[float] = None) -> int:
        """Run a remote command, handing each output line to a callback as it arrives; return its exit code.

        Past TIMEOUT seconds ssh is killed and the runtime's silence raised as advice (as ``run`` does)."""
        process = subprocess.Popen(self.ssh_argv(command), stdin=subprocess.PIPE if input is not None
                                   else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stderr_tail: list[str] = []
        sink_errors: list[BaseException] = []

        def pump(pipe: IO[bytes], sink: Optional[LineSink], keep: Optional[list[str]]) -> None:
            """Hand each line to SINK; a sink that fails is dropped, but the pipe is read to its end, or
            ssh would block on a full pipe and never end. The failure is raised once ssh has ended."""
            for raw in pipe:
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                if keep is not None:
                    keep.append(line)
                    del keep[:-50]
                if sink is not None:
                    try:
                        sink(line)
                    except BaseException as exc:  # noqa: BLE001 - kept for the caller's thread
                        sink_errors.append(exc)
                        sink = None

        assert process.stdout is not None and process.stderr is not None
        threads = [threading.Thread(target=pump, args=(process.stdout, on_stdout, None), daemon=True),
                   threading.Thread(target=pump, args=(process.stderr, on_stderr, stderr_tail), daemon=True)]
        for thread in threads:
            thread.start()
        if input is not None:
            assert process.stdin is not None
            try:
                process.stdin.write(input)
                process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            returncode = process.wait(timeout)
        except KeyboardInterrupt:  # Ctrl-C is answered within 2 s: ssh gets half a second to go, then SIGKILL
            stop_child(process, grace=0.5)
            raise
        except subprocess.TimeoutExpired:  # the pipes are not waited on: a shared connection's master may hold them
            process.kill()
            process.wait()
            raise ColabsshError(f"{self.alias}: the runtime did not answer within {timeout:.0f} s",
                                "the tunnel may be down: re-run the cell in Colab", UNREACHABLE) from None
        for thread in threads:
            thread.join()
        if sink_errors:
            raise sink_errors[0]
        if check and returncode in (255, 127):
            raise explain_ssh_failure(self.alias, returncode, "\n".join(stderr_tail))
        return returncode

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
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True)
        if result.returncode != 0:
            stderr = result.stderr.decode(errors="replace")
            if result.returncode == 255 or "Connection closed" in stderr or "Permission denied (" in stderr:
                raise explain_ssh_failure(self.alias, 255, stderr)
            last = (stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
            raise ColabsshError(f"{self.alias}: could not copy {local} to {remote_path}: {last}", "", FAILURE)

    def interactive(self, command: Sequence[str] = ()) -> int:
        """Run OpenSSH with the alias on this terminal (a shell, or COMMAND); return ssh's exit code."""
        argv = [*ssh_base(self.paths), self.alias]
        if command:
            argv += ["--", *command]
        return subprocess.run(argv).returncode

    def shared_connection_alive(self) -> bool:
        return shared_connection_alive(self.paths, self.alias)
