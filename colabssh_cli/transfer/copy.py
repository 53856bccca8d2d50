"""The laptop side of `colabssh pull` and `push` (no typer, no rich: commands/ renders).

They copy between the laptop and the runtime with the laptop's rsync over the same pinned OpenSSH connection
(``rsync -e "ssh -F <config>"``), or with scp where there is no rsync (Windows).
"""

from __future__ import annotations

import os
import posixpath
import shlex
import shutil
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from colab_bootstrap.files import file_kind
from colab_bootstrap.sync import protocol as sync_protocol

from ..errors import BAD_INPUT, FAILURE, MISSING_TOOL, ColabsshError
from ..remote import process
from ..remote.runner import Remote, explain_ssh_failure
from .client import EventSink, SyncInterrupted, noop, printable, run_runner


@dataclass
class TransferOutcome:
    tool: str  # rsync | scp
    source: str
    target: str
    files_copied: int = 0
    bytes_copied: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def remote_path(path: str, content: str) -> str:
    """A path on the runtime: absolute as given, relative to the content root otherwise."""
    if not path or any(ord(ch) < 32 for ch in path):
        raise ColabsshError(f"the runtime path {path!r} is empty or has a control character", "", BAD_INPUT)
    return posixpath.normpath(path if path.startswith("/") else posixpath.join(content, path))


def _needs_rsync_installed(stderr: str) -> bool:
    return "rsync: not found" in stderr or "rsync: command not found" in stderr or \
        ("rsync" in stderr and "No such file or directory" in stderr and "exec" in stderr)


def install_remote_rsync(remote: Remote) -> None:
    if run_runner(remote, ["ensure-rsync"], timeout=600) != 0:
        raise ColabsshError("rsync is not installed on the runtime and could not be installed",
                            "install it there: apt-get install rsync", MISSING_TOOL)


def transfer(remote: Remote, direction: str, local: Path, runtime_path: str,
             on_event: EventSink = noop) -> TransferOutcome:
    """Copy LOCAL to RUNTIME_PATH (push: into that folder) or RUNTIME_PATH into LOCAL (pull: a folder)."""
    target = remote_path(runtime_path, remote.session.content)
    if direction == "push":
        check_pushable(local)
    else:
        if local.exists() and not local.is_dir():
            raise ColabsshError(f"{local} is not a folder", "pull into a folder (default: the current one)",
                                BAD_INPUT)
        make_local_folder(local)
    started = time.monotonic()
    rsync = shutil.which("rsync")
    outcome: Optional[TransferOutcome]
    if rsync is None:
        outcome = _scp(remote, direction, local, target)
    else:
        outcome = _rsync(remote, rsync, direction, local, target, on_event)
        if outcome is None:  # the runtime had no rsync: install it there, then once more
            install_remote_rsync(remote)
            outcome = _rsync(remote, rsync, direction, local, target, on_event)
    if outcome is None:
        raise ColabsshError("rsync is missing on the runtime", "install it there: apt-get install rsync",
                            MISSING_TOOL)
    outcome.seconds = round(time.monotonic() - started, 3)
    return outcome


def check_pushable(local: Path) -> None:
    """LOCAL must be a file or a folder (a link to one is fine): a FIFO would block the copy, a device such as
    /dev/zero would never end (scp reads what rsync skips)."""
    try:
        mode = os.stat(local).st_mode
    except FileNotFoundError:
        raise ColabsshError(f"{local} does not exist", "give an existing file or folder to push", BAD_INPUT) from None
    except OSError as exc:
        raise ColabsshError(f"cannot read {local}: {exc.strerror or exc}", "give a file or folder you can read",
                            BAD_INPUT) from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ColabsshError(f"{printable(local)} is {file_kind(mode)}, not a file or folder",
                            "push regular files and folders (special files are never copied)", BAD_INPUT)


def transfer_interrupted(direction: str, tool: str) -> SyncInterrupted:
    """Ctrl-C during pull or push: what the copy left, and what to run."""
    where = "on the runtime" if direction == "push" else "here"
    if tool == "scp":
        return SyncInterrupted(f"interrupted: the {direction} stopped part-way; what scp had copied stays {where}, "
                               "and the file it was writing may be incomplete",
                               f"run the same `colabssh {direction}` again to copy it whole")
    return SyncInterrupted(f"interrupted: the {direction} stopped part-way; the files already copied are complete "
                           f"{where}, and the one being copied was not kept",
                           f"run the same `colabssh {direction}` again to finish (it skips what is already there)")


def make_local_folder(local: Path) -> None:
    """LOCAL as a folder (made with its parents if missing); a file in the way is bad input, not a traceback."""
    try:
        local.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in (local, *local.parents) if p.exists() or p.is_symlink()), None)
        if blocker is not None and not blocker.is_dir():
            raise ColabsshError(f"cannot pull into {local}: {blocker} is a file, not a folder",
                                "pull into a folder (default: the current one)", BAD_INPUT) from None
        raise ColabsshError(f"cannot create the folder {local}: {exc.strerror or exc}",
                            "pull into a folder you can write to (default: the current one)", FAILURE) from None


def _rsync(remote: Remote, rsync: str, direction: str, local: Path, target: str,
           on_event: EventSink) -> Optional[TransferOutcome]:
    argv = [rsync, "-rlt", "--protect-args", "--itemize-changes", "--8-bit-output", "--info=progress2,stats2",
            "-e", shlex.join(remote.transport_argv())]
    if direction == "push":
        argv += ["--rsync-path", f"mkdir -p -- {shlex.quote(target)} && rsync",
                 "--", str(local), f"{remote.alias}:{target}/"]
        source, destination = str(local), f"{remote.alias}:{target}/"
    else:
        argv += ["--", f"{remote.alias}:{target}", f"{local}/"]
        source, destination = f"{remote.alias}:{target}", f"{local}/"
    parser = sync_protocol.LogParser(on_event)
    stderr: list[bytes] = []
    child = process.spawn(argv, stdout=process.PIPE, stderr=process.PIPE, env={**os.environ, "LC_ALL": "C"})
    assert child.stdout is not None and child.stderr is not None
    reader = threading.Thread(target=lambda: stderr.append(child.stderr.read()), daemon=True)  # type: ignore
    reader.start()
    try:
        while True:
            chunk = child.stdout.read1(1 << 16)  # type: ignore[attr-defined]
            if not chunk:
                break
            parser.feed(chunk)
        code = child.wait()
    except KeyboardInterrupt:
        process.stop(child, grace=1.0)  # a Ctrl-C never waits long for rsync
        raise transfer_interrupted(direction, "rsync") from None
    reader.join()
    parser.close()
    text = b"".join(stderr).decode("utf-8", errors="replace")
    if code != 0:
        if _needs_rsync_installed(text):
            return None
        if code == 255 or "connection unexpectedly closed" in text and "ssh:" in text:
            raise explain_ssh_failure(remote.alias, 255, text)
        last = printable(next((line for line in reversed(text.splitlines()) if line.strip()), f"exit code {code}"))
        if "No such file or directory" in text and direction == "pull":
            raise ColabsshError(f"{target} does not exist on the runtime", "check the path (relative paths start "
                                f"at the content root, {remote.session.content})", BAD_INPUT)
        raise ColabsshError(f"{direction} failed: {last}", sync_protocol.advice_for(code),
                            code if 0 < code < 64 else FAILURE)
    return TransferOutcome("rsync", source, destination, parser.stats.get("files_copied", 0),
                           parser.stats.get("bytes_copied", 0))


def _scp(remote: Remote, direction: str, local: Path, target: str) -> TransferOutcome:
    scp = shutil.which("scp")
    if scp is None:
        raise ColabsshError("neither rsync nor scp is installed on this machine",
                            "install rsync, or the OpenSSH client (scp)", MISSING_TOOL)
    options = [arg for arg in remote.transport_argv()[1:] if arg != "-T"]
    if direction == "push":
        made = remote.run(shlex.join(["mkdir", "-p", "--", target]), timeout=60)
        if made.returncode != 0:
            raise ColabsshError(f"could not create {target} on the runtime", "", FAILURE)
        argv = [scp, *options, "-r", "-p", "--", str(local), f"{remote.alias}:{target}/"]
        source, destination = str(local), f"{remote.alias}:{target}/"
    else:
        argv = [scp, *options, "-r", "-p", "--", f"{remote.alias}:{target}", f"{local}/"]
        source, destination = f"{remote.alias}:{target}", f"{local}/"
    try:
        result = process.run_bytes(argv)
    except KeyboardInterrupt:  # process.run_bytes has killed scp
        raise transfer_interrupted(direction, "scp") from None
    if result.returncode != 0:
        text = result.stderr.decode("utf-8", errors="replace")
        if result.returncode == 255 and "scp:" not in text:
            raise explain_ssh_failure(remote.alias, 255, text)
        last = printable(next((line for line in reversed(text.splitlines()) if line.strip()),
                              f"exit {result.returncode}"))
        raise ColabsshError(f"{direction} failed: {last}", "check the paths", FAILURE)
    return TransferOutcome("scp", source, destination)
