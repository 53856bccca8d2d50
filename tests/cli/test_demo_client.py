"""The laptop's reading of the demo's one JSON document (colabssh_cli/demo_client.py)."""

from __future__ import annotations

import json

import pytest

from colab_bootstrap import demo, pack
from colabssh_cli.demo_client import DEMO_MODULE, DemoUnavailable, demo_arguments, interrupted, parse_report
from colabssh_cli.errors import FAILURE, INTERRUPTED, MISSING_TOOL, ColabsshError
from colabssh_cli.remote.runner import NOT_STARTED, STOPPED, UNCONFIRMED


def test_the_demo_runs_as_a_module_of_the_shipped_package():
    modules, _ = pack.collect()
    assert modules[DEMO_MODULE] == open(demo.__file__, encoding="utf-8").read()


def test_arguments_always_ask_for_json():
    assert demo_arguments(False) == ["--json"]
    assert demo_arguments(True) == ["--json", "--gpu"]


def test_a_real_report_parses():
    document = demo.run_demo(cpu_seconds=0.02)
    report = parse_report(json.dumps(document), 0, "colab")
    assert report.device == "cpu" and report.torch == document["torch"]
    assert [c.name for c in report.checks] == [c["name"] for c in document["checks"]]
    assert report.failed == [] and report.count("passed") >= 6
    assert report.document == document


def test_failed_checks_are_listed():
    document = {"device": "cpu", "torch": "x", "figures": {},
                "checks": [{"name": "a", "status": "passed", "detail": ""},
                           {"name": "b", "status": "failed", "detail": "broken"}]}
    report = parse_report(json.dumps(document), 1, "colab")
    assert [c.name for c in report.failed] == ["b"]


@pytest.mark.parametrize("kind, code", [("no-torch", MISSING_TOOL), ("no-cuda", FAILURE), ("crash", FAILURE)])
def test_error_documents_become_their_message(kind, code):
    document = {"error": kind, "message": f"the {kind} message", "hint": "do this"}
    with pytest.raises(DemoUnavailable) as info:
        parse_report(json.dumps(document), 4, "colab")
    assert (info.value.message, info.value.hint, info.value.exit_code) == (f"the {kind} message", "do this", code)
    assert info.value.document == document


@pytest.mark.parametrize("stdout", ["", "Traceback (most recent call last):", "[1, 2]", '{"device": "cpu"}',
                                    '{"device": "cpu", "torch": "x", "checks": [{"name": "a"}]}'])
def test_anything_else_is_refused_in_one_line(stdout):
    with pytest.raises(ColabsshError) as info:
        parse_report(stdout, 1, "colab", ["SyntaxError: invalid syntax"])
    assert info.value.message.startswith("colab: the demo")
    assert "\n" not in info.value.message


def test_no_report_names_the_exit_code_and_the_last_stderr_line():
    with pytest.raises(ColabsshError) as info:
        parse_report("", 1, "colab", ["  File \"<stdin>\", line 3", "SyntaxError: invalid syntax", ""])
    assert info.value.message == "colab: the demo gave no report (exit code 1): SyntaxError: invalid syntax"


def test_unknown_statuses_are_refused():
    document = {"device": "cpu", "torch": "x", "figures": {}, "checks": [{"name": "a", "status": "ok", "detail": ""}]}
    with pytest.raises(ColabsshError, match="unknown statuses"):
        parse_report(json.dumps(document), 0, "colab")


@pytest.mark.parametrize("state, says", [
    (STOPPED, "interrupted: the demo was stopped; nothing of it is left running on the runtime"),
    (NOT_STARTED, "interrupted before the demo started on the runtime; nothing of it runs there"),
    (UNCONFIRMED, "interrupted: the demo was stopped here, but the runtime did not confirm that it ended there"),
])
def test_ctrl_c_says_what_became_of_the_demo_on_the_runtime(state, says):
    error = interrupted(state)
    assert (error.message, error.exit_code) == (says, INTERRUPTED)
    assert ("pkill -f colab_bootstrap.demo" in error.hint) == (state == UNCONFIRMED)


BANNER = """\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r
Someone could be eavesdropping on you right now (man-in-the-middle attack)!\r
It is also possible that a host key has just been changed.\r
The fingerprint for the ED25519 key sent by the remote host is\r
SHA256:Rt/Rodt2sgIBxs+fyvKeMiPWqjWzTg7gB5Bj1N5EYNY.\r
Please contact your system administrator.\r
Add correct host key in /h/.ssh/colabssh/known_hosts to get rid of this message.\r
Offending ED25519 key in /h/.ssh/colabssh/known_hosts:1\r
  remove with:\r
  ssh-keygen -f '/h/.ssh/colabssh/known_hosts' -R 'colabssh-colab'\r
Host key for colabssh-colab has changed and you have requested strict checking.\r
Host key verification failed.\r
"""


def test_the_demo_hands_on_no_line_of_openssh_host_key_banner(monkeypatch):
    """colabssh explains a host key that is not the pinned one in its own words (never `ssh-keygen -R`): OpenSSH's
    banner is not shown as the demo's progress, and no line keeps its carriage return."""
    from colabssh_cli import demo_client
    from colabssh_cli.session import Session, Transport

    def fake_run_module(remote, module, args, on_stdout, on_stderr, **kwargs):
        on_stderr("demo: starting")
        for line in BANNER.splitlines(keepends=True):
            on_stderr(line.rstrip("\n"))
        return 255

    monkeypatch.setattr(demo_client, "run_module", fake_run_module)
    shown: list[str] = []
    remote = demo_client.Remote(Session(alias="colab", host="127.0.0.1", port=1, user="root", tunnel=Transport.LOCAL))
    with pytest.raises(ColabsshError):
        demo_client.run_demo(remote, on_progress=shown.append)
    assert shown == ["demo: starting"]
    assert not any(demo_client.is_host_key_banner(line) for line in ["demo: matmul GPU fp16 passed", "  5.2 s"])
