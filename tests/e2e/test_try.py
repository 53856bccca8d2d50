"""`colabssh try`, run as a user runs it: every step prints, it exits 0, and it leaves nothing behind (not in
HOME, not in its sandbox, no process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.fakes import pids_with

COLABSSH = str(Path(sys.executable).with_name("colabssh"))
STEPS = [
    "==> render the cell (local tunnel)",
    "==> run the cell: a local runtime with its own sshd",
    "==> colabssh connect CODE",
    "==> a command over SSH: colabssh ssh -- uname -sr; ls",
    "==> colabssh sync: back the content root up to the Drive folder",
    "==> colabssh demo: tensors and autograd on the runtime",
    "==> colabssh forget colab",
    "==> stop the runtime",
]


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_try_walks_the_whole_journey_in_a_sandbox_and_leaves_nothing(tmp_path):
    home = tmp_path / "try-home"  # what HOME points at: try must create nothing here
    home.mkdir()
    scratch = tmp_path / "tmp"  # where its sandbox goes (TMPDIR), so we can see it removed
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLABSSH_", "NGROK_", "PYNGROK_"))}
    env.update({"HOME": str(home), "TMPDIR": str(scratch), "NO_COLOR": "1"})
    done = subprocess.run([COLABSSH, "try"], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                          timeout=300)
    err = done.stderr
    assert done.returncode == 0, err
    assert "Traceback" not in err
    positions = [err.find(step) for step in STEPS]
    assert -1 not in positions and positions == sorted(positions), err  # every step, in order
    assert len(re.findall(r"^    done in [0-9]+\.[0-9] s$", err, re.MULTILINE)) == len(STEPS)
    assert "colabssh try: all steps passed" in done.stdout  # the result, on stdout
    assert "now in the Drive folder:" in err and "colabssh/content/train.py" in err
    sandbox = re.search(r"a throwaway runtime in (\S+) \(your ~/.ssh is not touched\)", err).group(1)
    assert Path(sandbox).parent == scratch
    written = re.findall(r"^    wrote (/\S+)", err, re.MULTILINE)
    assert written and all(path.startswith(sandbox + "/") for path in written), written
    assert everything_under(home) == []  # HOME untouched
    assert everything_under(scratch) == []  # the sandbox is gone
    assert pids_with(sandbox) == []  # no sshd, no ssh master, no cell left running
    demo = err[err.index("==> colabssh demo"):err.index("==> colabssh forget")]  # its progress lines, then the table
    assert re.search(r"^    demo: \[1/[0-9]+\] ", demo, re.MULTILINE), demo
    assert demo.index("    demo: [1/") < demo.index("passed, 0 failed") < demo.index("    done in")

    # the code is printed whole (a terminal copy of it is the code), and `connect` takes it
    [code] = re.findall(r"^    colabssh connect (\S+)$", err, re.MULTILINE)
    other_home = tmp_path / "other-home"
    other_home.mkdir()
    check = subprocess.run([COLABSSH, "connect", code, "--dry-run", "--no-check", "--no-open"], capture_output=True,
                           text=True, env={**env, "HOME": str(other_home)}, stdin=subprocess.DEVNULL, timeout=60)
    assert check.returncode == 0, check.stderr
    assert "HostName 127.0.0.1" in check.stdout and "nothing was written" in check.stderr


def test_try_open_reaches_the_sandbox_through_an_editor_profile_of_its_own(tmp_path):
    """--open: the editor gets its own profile whose Remote-SSH reads the sandbox's ssh config, so the
    throwaway alias resolves and logs in, and the user's settings and ~/.ssh are never touched."""
    home = tmp_path / "try-home"
    home.mkdir()
    log = tmp_path / "code.log"
    standins = Path(__file__).resolve().parents[1] / "standins"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLABSSH_", "NGROK_", "PYNGROK_"))}
    env.update({"HOME": str(home), "TMPDIR": str(tmp_path), "NO_COLOR": "1", "FAKE_CODE_LOG": str(log),
                "PATH": f"{standins}{os.pathsep}{env.get('PATH', '')}"})
    done = subprocess.run([COLABSSH, "try", "--open"], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 0, done.stderr
    [record] = [json.loads(line) for line in log.read_text().splitlines()
                if "--folder-uri" in json.loads(line)["argv"]]
    argv = record["argv"]
    profile = argv[argv.index("--user-data-dir") + 1]
    assert argv[argv.index("--folder-uri") + 1].startswith("vscode-remote://ssh-remote+colab/")
    assert record["settings"]["remote.SSH.configFile"].startswith(str(Path(profile).parent))
    assert record["ssh_exit"] == 0  # the editor's Remote-SSH could log in to the throwaway runtime
    assert everything_under(home) == []
