"""sandbox.py (`colabssh try`): the demo step shows the demo's progress lines as they come, not at its end.

The stand-in demo prints its first progress line and then waits for the tour to have shown it (the test's `say`
answers on a socket): only a line shown while the demo still runs lets it go on. No sleeps."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from colabssh_cli.errors import FAILURE, ColabsshError
from colabssh_cli.sandbox import Tour

STAND_IN = """\
import socket, sys
sys.stderr.write("colab: running the demo on the runtime...\\n")
sys.stderr.write("demo: [1/2] tensors ... passed\\n")
sys.stderr.flush()
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as conn:
    conn.settimeout(30)
    try:
        released = conn.recv(2) == b"go"
    except OSError:
        released = False
print("check   status" if released else "never released: the line was not shown while the demo ran")
sys.stderr.write("demo: [2/2] autograd ... passed\\n")
sys.exit(int(sys.argv[2]))
"""


def tour_with_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exit_code: int) -> tuple[Tour, list[str]]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(60)
    port = listener.getsockname()[1]
    script = tmp_path / "demo_stand_in.py"
    script.write_text(STAND_IN)
    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        if "[1/2]" in line:  # shown: let the demo go on
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"go")

    tour = Tour(say, False, "code")
    argv = [sys.executable, str(script), str(port), str(exit_code)]
    monkeypatch.setattr(tour, "command", lambda *args: (argv, dict(os.environ)))
    return tour, said


def test_the_demos_progress_lines_are_shown_while_it_runs(tmp_path, monkeypatch):
    tour, said = tour_with_stand_in(tmp_path, monkeypatch, 0)
    assert tour._demo() == "check   status"  # the table, as the step's detail
    assert said == ["    colab: running the demo on the runtime...", "    demo: [1/2] tensors ... passed",
                    "    demo: [2/2] autograd ... passed"]


def test_a_failed_demo_is_the_steps_error(tmp_path, monkeypatch):
    tour, said = tour_with_stand_in(tmp_path, monkeypatch, 1)
    with pytest.raises(ColabsshError) as caught:
        tour._demo()
    assert caught.value.exit_code == FAILURE and caught.value.message == "demo: [2/2] autograd ... passed"
    assert len(said) == 3
