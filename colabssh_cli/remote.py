"""The remote seam: every remote command the CLI runs goes through here.

OpenSSH (``ssh -F ~/.ssh/colabssh/config ALIAS ...``) through the very Host block
that VS Code uses, so what works for `colabssh status` works for VS Code; the
block's connection sharing (ControlMaster) lets every command after the first
skip the handshake. Remote exit codes become advice (255: ssh itself failed;
127: a command missing on the runtime), as sshuttle does.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import IO, Callable, Optional, Sequence

from .errors import FAILURE, MISSING_TOOL, UNREACHABLE, ColabsshError
from .paths import Paths
from .sessions import Session, resolve

LineSink = Callable[[str], None]


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


def explain_ssh_failure(alias: str, returncode: int, stderr: str) -> ColabsshError:
    """Turn ssh's own failure (exit 255) or a missing remote command into advice."""
    text = stderr.strip()
    last = text.splitlines()[-1] if text else ""
    if returncode == 255:
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
    def for_alias(cls, alias: Optional[str]) -> "Remote":
        paths = Paths.from_env()
        return cls(resolve(alias, paths), paths)

    @property
    def alias(self) -> str:
        return self.session.alias

    def ssh_argv(self, remote_command: Optional[str] = None, *, tty: bool = False,
                 options: Sequence[str] = ()) -> list[str]:
        argv = [ssh_binary(), "-F", str(self.paths.config)]
        if self.session.auth == "key":
            argv += ["-o", "BatchMode=yes"]
        argv += ["-t" if tty else "-T", *options, self.alias]
        if remote_command is not None:
            argv += ["--", remote_command]
        return argv

    def python_command(self, args: Sequence[str] = ()) -> str:
        """The remote shell command that runs the runtime's python on a script from stdin."""
        return shlex.join([self.session.python, "-", *args])

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
               on_stderr: Optional[LineSink] = None, check: bool = True) -> int:
        """Run a remote command, handing each output line to a callback as it arrives; return its exit code."""
        process = subprocess.Popen(self.ssh_argv(command), stdin=subprocess.PIPE if input is not None
                                   else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stderr_tail: list[str] = []

        def pump(pipe: IO[bytes], sink: Optional[LineSink], keep: Optional[list[str]]) -> None:
            for raw in pipe:
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                if keep is not None:
                    keep.append(line)
                    del keep[:-50]
                if sink is not None:
                    sink(line)

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
            returncode = process.wait()
        except KeyboardInterrupt:
            process.terminate()
            process.wait()
            raise
        for thread in threads:
            thread.join()
        if check and returncode in (255, 127):
            raise explain_ssh_failure(self.alias, returncode, "\n".join(stderr_tail))
        return returncode

    def run_python(self, source: str, args: Sequence[str] = (), *, on_stdout: Optional[LineSink] = None,
                   on_stderr: Optional[LineSink] = None) -> int:
        """Ship a stdlib-only script as source and run it with the runtime's python (the cell's)."""
        return self.stream(self.python_command(args), input=source.encode("utf-8"),
                           on_stdout=on_stdout, on_stderr=on_stderr)
