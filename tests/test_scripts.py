"""The README's two commands: set-up is never silent on a slow step, and the test command labels its stages."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


def _step(command: str, tick: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "COLABSSH_SETUP_TICK": tick}
    return subprocess.Popen(["bash", "-c", f". scripts/progress.sh; {command}"], cwd=ROOT, env=env, text=True,
                            stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]


def test_a_slow_step_says_what_it_does_then_that_it_is_still_at_it_then_how_long_it_took():
    # the step's command waits for a line on stdin: it is released only once the "still at it" line came
    proc = _step('step "installing something (about 1 MiB; about 10 s)" head -n 1', "0.05", stdin=subprocess.PIPE)
    assert proc.stderr is not None and proc.stdin is not None
    first = proc.stderr.readline()
    assert first == "setup: installing something (about 1 MiB; about 10 s)...\n"
    assert re.fullmatch(r"setup:   \.\.\. still at it \(\d+ s\)\n", proc.stderr.readline())
    proc.stdin.write("go\n")
    proc.stdin.close()
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 0
    assert re.search(r"setup:   done in \d+ s\n\Z", rest), rest


def test_a_failed_step_returns_its_status_and_does_not_say_done():
    proc = _step('step "failing (about 1 s)" sh -c "exit 7"', "30")
    _, err = proc.communicate(timeout=20)  # a ticker still holding the pipe would run past this (tick 30 s)
    assert proc.returncode == 7
    assert "failing (about 1 s)..." in err and "done in" not in err


def test_every_slow_setup_command_runs_as_a_step_that_says_its_size_and_time():
    text = (SCRIPTS / "setup.sh").read_text().replace("\\\n", " ")  # continued lines as one
    slow = re.compile(r"-m venv|pip_install|apt_install")
    for line in text.splitlines():
        code = line.split("#", 1)[0].strip()
        if slow.search(code) and not re.match(r"(\w+\(\) \{|step )", code):
            raise AssertionError(f"a slow command outside a step: {line!r}")
    descriptions = re.findall(r'step "([^"]+)"', text)
    assert len(descriptions) >= 4, descriptions
    for what in descriptions:
        size_and_time = re.search(r"\(([^()]*)\)$", what)
        assert size_and_time and re.search(r"MiB|\d+ s\b", size_and_time[1]), what
        assert re.search(r"\b(about|under)\b", size_and_time[1]), what


def test_the_test_command_labels_each_stage_before_it_runs():
    lines = (SCRIPTS / "test.sh").read_text().splitlines()
    order = []
    for line in lines:
        code = line.strip()
        if code.startswith("stage "):
            order.append(("stage", code))
        elif re.match(r"(scripts/setup\.sh|\.venv/bin/(ruff|mypy|python -m pytest))", code):
            order.append(("run", code))
    labels = {"scripts/setup.sh": "set-up", "ruff": "lint", "mypy": "types", "pytest": "tests"}
    for index, (kind, code) in enumerate(order):
        if kind == "run":
            word = next(key for key in labels if key in code)
            previous = [c for k, c in order[:index] if k == "stage"]
            assert previous and labels[word] in previous[-1], (code, previous)
