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
