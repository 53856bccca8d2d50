"""`colabssh try`: the whole journey on this machine, against a throwaway local runtime.

Everything happens in a sandbox folder: colabssh's own files live under a
temporary HOME (its key, config, known_hosts and sessions), OpenSSH is pointed at
that config with ``-F``, and the runtime's content root, Drive folder and state
folder are temporary too. The user's real ``~/.ssh`` is never read or written,
and the sandbox is removed at the end, whatever happened.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import console
from .errors import FAILURE, MISSING_TOOL, ColabsshError
from .remote import process

CONNECT_PREFIX = "colabssh connect "
SAMPLE_FILES = {
    "README.md": "# my Colab project\n\nThis folder stands in for /content on a Colab runtime.\n",
    "train.py": "import torch\nprint(torch.__version__)\n",
    "data/labels.csv": "id,label\n1,cat\n2,dog\n",
    "notes/ideas ü.txt": "names with spaces and non-ASCII letters sync too\n",
}


@dataclass
class Sandbox:
    root: Path
    home: Path = field(init=False)
    content: Path = field(init=False)
    drive: Path = field(init=False)
    state: Path = field(init=False)

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        self.content = self.root / "content"
        self.drive = self.root / "drive"
        self.state = self.root / "runtime-state"
        for folder in (self.home, self.content, self.drive):
            folder.mkdir(parents=True, exist_ok=True)
        for name, text in SAMPLE_FILES.items():
            path = self.content / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLABSSH_")}
        env["HOME"] = str(self.home)
        env["COLABSSH_OPENSSH_HOME"] = str(self.home)  # every ssh of the tour is given -F (openssh_home.py)
        return env

    def runtime_env(self) -> dict[str, str]:
        env = self.cli_env()
        env.update({"COLABSSH_CONTENT": str(self.content), "COLABSSH_DRIVE": str(self.drive),
                    "COLABSSH_STATE": str(self.state), "COLABSSH_PORT": "0", "COLABSSH_PROFILE_D": "",
                    "PYTHONUNBUFFERED": "1"})
        return env


class Tour:
    def __init__(self, say: Callable[[str], None], open_editor: bool, editor: str) -> None:
        self.say = say
        self.open_editor = open_editor
        self.editor = editor
        self.runtime: Optional[process.Child] = None
        self.sandbox: Optional[Sandbox] = None

    def step(self, title: str, fix: str, action: Callable[[], str]) -> None:
        self.say(f"==> {title}")
        started = time.monotonic()
        try:
            detail = action()
        except ColabsshError as exc:
            raise ColabsshError(f"step '{title}' failed: {exc.message}", exc.hint or fix, exc.exit_code) from None
        elapsed = time.monotonic() - started
        for line in detail.splitlines():
            self.say(f"    {line}")
        self.say(f"    done in {elapsed:.1f} s")

    def command(self, *args: str) -> tuple[list[str], dict[str, str]]:
        """The argv and environment that run this colabssh with ARGS in the sandbox."""
        assert self.sandbox is not None
        env = {**self.sandbox.cli_env(), "COLUMNS": str(max(60, shutil.get_terminal_size().columns - 4))}
        return [sys.executable, "-m", "colabssh_cli", *args], env

    def colabssh(self, *args: str, check: bool = True) -> process.Finished:
        """Run this colabssh as a child in the sandbox (its stderr merged into its stdout)."""
        argv, env = self.command(*args)
        result = process.run(argv, env=env, merge_stderr=True)
        if check and result.returncode != 0:
            last = (result.stdout.strip().splitlines() or [f"exit code {result.returncode}"])
            raise ColabsshError(" / ".join(line.strip() for line in last[-2:]), "", FAILURE)
        return result

    def run(self) -> None:
        with tempfile.TemporaryDirectory(prefix="colabssh-try-") as tmp:
            self.sandbox = Sandbox(Path(tmp))
            try:
                self._journey()
            finally:
                self._stop_runtime()

    def _journey(self) -> None:
        box = self.sandbox
        assert box is not None
        self.say(f"colabssh try: a throwaway runtime in {box.root} (your ~/.ssh is not touched)")
        cell = box.root / "cell.py"
        self.step("render the cell (local tunnel)", "",
                  lambda: self._render(cell))
        code_holder: list[str] = []
        self.step("run the cell: a local runtime with its own sshd", "install OpenSSH's server: "
                  "sudo apt-get install openssh-server", lambda: self._start_runtime(cell, code_holder))
        code = code_holder[0]
        self.step("colabssh connect CODE", "",
                  lambda: self._output(self.colabssh("connect", code, "--no-open")))
        self.step("a command over SSH: colabssh ssh -- uname -sr; ls", "",
                  lambda: self._output(self.colabssh("ssh", "--", f"uname -sr; ls {shlex.quote(str(box.content))}")))
        if self.open_editor:
            self.step(f"open {self.editor} on the throwaway runtime", "", self._open_editor)
        self.step("colabssh sync: back the content root up to the Drive folder", "",
                  self._sync)
        self.step("colabssh demo: tensors and autograd on the runtime", "", self._demo)
        self.step("colabssh forget colab", "", lambda: self._output(self.colabssh("forget", "colab")))
        self.step("stop the runtime", "", self._stop_runtime_step)
        console.result("colabssh try: all steps passed. On Colab: `colabssh bootstrap --notebook ~/colabssh.ipynb`, "
                       "upload it to Colab, Run all, then run the `colabssh connect CODE` line it prints "
                       "(docs/getting-started.md).")

    def _open_editor(self) -> str:
        """Open the editor in a profile of its own whose Remote-SSH reads the sandbox's ssh config.

        The user's own VS Code reads ~/.ssh/config, where the throwaway session is not (and must
        not be); a separate --user-data-dir with `remote.SSH.configFile` pointing into the sandbox
        lets the editor reach it without touching the user's settings or ssh config.
        """
        from .editor import EDITORS, editor_argv

        assert self.sandbox is not None
        spec = EDITORS[self.editor]
        profile = self.sandbox.root / "editor-profile"
        (profile / "User").mkdir(parents=True, exist_ok=True)
        settings = {"remote.SSH.configFile": str(self.sandbox.home / ".ssh" / "config"),
                    "remote.SSH.remotePlatform": {"colab": "linux"}}
        (profile / "User" / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        cli = shutil.which(spec.cli)
        argv = editor_argv(spec, "colab", str(self.sandbox.content), cli)
        argv[1:1] = ["--user-data-dir", str(profile)]
        if cli is None:
            return (f"{spec.cli} is not on PATH; with it, this would run:\n  {shlex.join(argv)}\n"
                    "(the tour goes on without an editor)")
        opened = process.run(argv, timeout=120)
        if opened.returncode != 0:
            last = (opened.stderr.strip().splitlines() or [f"exit code {opened.returncode}"])[-1]
            return f"{spec.cli} could not open a window ({last}); the tour goes on without it"
        if sys.stdin is not None and sys.stdin.isatty():
            input("    the editor is connected to the throwaway runtime; press Enter to finish the tour ")
        return f"opened: {shlex.join(argv)}"

    def _render(self, cell: Path) -> str:
        self.colabssh("bootstrap", "--tunnel", "local", "--out", str(cell))
        size = cell.stat().st_size // 1024
        return f"wrote {cell.name} ({size} KiB): the cell you would paste into Colab (here it runs locally)"

    def _start_runtime(self, cell: Path, code_holder: list[str]) -> str:
        assert self.sandbox is not None
        is_root = getattr(os, "geteuid", lambda: -1)() == 0  # no geteuid on Windows
        if not (shutil.which("sshd") or os.access("/usr/sbin/sshd", os.X_OK)) and not is_root:
            raise ColabsshError("OpenSSH's sshd is not installed", "sudo apt-get install openssh-server",
                                MISSING_TOOL)
        self.runtime = process.spawn([sys.executable, str(cell)], env=self.sandbox.runtime_env(),
                                     stdout=process.PIPE, stderr=process.STDOUT, text=True, new_session=True)
        lines: queue.Queue[Optional[str]] = queue.Queue()

        def pump() -> None:
            assert self.runtime is not None and self.runtime.stdout is not None
            for line in self.runtime.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        seen: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line.rstrip())
            if line.startswith(CONNECT_PREFIX):
                code_holder.append(line[len(CONNECT_PREFIX):].strip())
                shown = [s for s in seen if s.startswith(("sshd: listening", "host key", "Drive:", "GPU:", "tunnel:"))]
                return "\n".join(shown + [f"{CONNECT_PREFIX}{code_holder[0]}"])  # whole: a copy of it works
        errors = [s for s in seen if "error" in s.lower()] or seen[-2:] or ["no output"]
        raise ColabsshError(f"the runtime did not start: {errors[-1]}", "see the message above")

    def _sync(self) -> str:
        assert self.sandbox is not None
        out = self._output(self.colabssh("sync"))
        copied = sorted(str(p.relative_to(self.sandbox.drive)) for p in self.sandbox.drive.rglob("*")
                        if p.is_file())
        return out + "\nnow in the Drive folder:\n" + "\n".join(f"  {name}" for name in copied)

    def _demo(self) -> str:
        """`colabssh demo`: its progress lines (stderr) are shown as each check runs, its table (stdout) after."""
        argv, env = self.command("demo")
        table: list[str] = []
        progress: list[str] = []

        def show(line: str) -> None:
            progress.append(line)
            self.say(f"    {line}")

        returncode, _ = process.stream(argv, env=env, on_stdout=table.append, on_stderr=show)
        if returncode == 0:
            return "\n".join(line.rstrip() for line in table).strip()
        text = "\n".join(table + progress)
        if "torch" in text and ("not installed" in text or "no torch" in text.lower()):
            return "torch is not installed for the runtime's python: skipping the demo (pip install torch)"
        said = [line for line in progress if line.startswith("colabssh: error: ")] or progress or table
        raise ColabsshError((said or ["the demo failed"])[-1].removeprefix("colabssh: error: ").strip(), "", FAILURE)

    def _stop_runtime_step(self) -> str:
        self._stop_runtime()
        return "sshd stopped; the sandbox is removed next"

    def _stop_runtime(self) -> None:
        if self.runtime is not None:
            process.stop(self.runtime, grace=20)  # the cell stops its sshd on SIGTERM

    @staticmethod
    def _output(result: process.Finished) -> str:
        return result.stdout.strip()
