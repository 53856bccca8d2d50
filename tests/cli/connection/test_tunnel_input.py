"""What `connect` takes for a code: the code, the code in quotes of any kind a copy brings, or the whole
`colabssh connect CODE` line pasted after `colabssh connect` (as more words, or as one quoted word). Anything
else is still one error line, and a private key is never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from colabssh_cli.app import main
from colabssh_cli.connection.tunnel_input import code_from_words
from colabssh_cli.errors import BAD_INPUT, ColabsshError
from tests.cli.connection.test_flow import GOOD, INFO, tree

QUOTED = {"single": f"'{GOOD}'", "double": f'"{GOOD}"', "typographic double": f"\u201c{GOOD}\u201d",
          "typographic single": f"\u2018{GOOD}\u2019", "backticks": f"`{GOOD}`", "doubled": f"\"'{GOOD}'\""}
PASTED = {  # what `colabssh connect` is followed by when the cell's whole line is pasted after it
    "the line as words": ["colabssh", "connect", GOOD],
    "the line as one word": [f"colabssh connect {GOOD}"],
    "the line quoted": [f"'colabssh connect {GOOD}'"],
    "the line with its code quoted": ["colabssh", "connect", f"\u201c{GOOD}\u201d"],
    "the line with the program's path": [".venv/bin/colabssh", "connect", GOOD],
    "the line pasted twice": ["colabssh", "connect", "colabssh", "connect", GOOD],
    "the line with a newline": [f"colabssh connect {GOOD}\n"],
    "the line with a Windows path": ["C:\\Users\\me\\colabssh.exe", "connect", GOOD],
    "connect twice": ["connect", GOOD],
    "the line with the shell's prompt": ["$", "colabssh", "connect", GOOD],
    "the prompt inside one quoted word": [f"$ colabssh connect {GOOD}"],
}


@pytest.mark.parametrize("words", [[GOOD], *([q] for q in QUOTED.values()), *PASTED.values()],
                         ids=["bare", *QUOTED, *PASTED])
def test_the_code_is_found_in_what_a_copy_brings(words: list[str]) -> None:
    assert code_from_words(words) == GOOD


@pytest.mark.parametrize("words", [[], [""], ["colabssh"], ["colabssh", "connect"], ["''"], ["colabssh connect"]])
def test_no_code_is_none(words: list[str]) -> None:
    assert code_from_words(words) is None


@pytest.mark.parametrize("argv", [*([q] for q in QUOTED.values()), *PASTED.values()], ids=[*QUOTED, *PASTED])
def test_connect_accepts_them(argv: list[str], isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real command (a dry run, so no runtime is needed): the diff names the code's runtime."""
    assert main(["connect", "--no-open", "--dry-run", *argv]) == 0
    out, err = capsys.readouterr()
    assert f"HostName {INFO.host}" in out and f"Port {INFO.port}" in out, err
    assert "nothing was written" in err


def test_the_pasted_line_connects_with_the_options_after_it(isolated_home: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connect", "colabssh", "connect", GOOD, "--name", "gpu", "--no-open", "--dry-run"]) == 0
    assert "Host gpu" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [[GOOD, GOOD], [GOOD, "extra"], ["colabssh", "connect", GOOD, "x"],
                                  [f"colabssh connect {GOOD} {GOOD}"], ["colabssh", "status", GOOD]])
def test_more_than_one_code_is_one_error(argv: list[str], isolated_home: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    before = tree(isolated_home)
    assert main(["connect", "--no-open", *argv]) == BAD_INPUT
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("colabssh: error: connect takes one connection code, and ")
    assert len(err.splitlines()) == 2 and GOOD not in err
    assert tree(isolated_home) == before


def test_a_pasted_private_key_is_refused_as_one_and_never_echoed(isolated_home: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n-----END OPENSSH PRIVATE KEY-----"
    assert main(["connect", "--no-open", "--", key]) == BAD_INPUT
    assert main(["connect", "--no-open", "--", *key.split()]) == BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("looks like a private key") == 2 and "b3Blbn" not in err


def test_a_quote_inside_the_code_is_still_refused() -> None:
    from colabssh_cli.session import Session

    cut = len(GOOD) // 2
    with pytest.raises(ColabsshError) as caught:
        Session.from_code("colab", code_from_words([GOOD[:cut] + "\u201d" + GOOD[cut:]]) or "")
    assert caught.value.exit_code == BAD_INPUT
