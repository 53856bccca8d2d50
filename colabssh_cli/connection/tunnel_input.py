"""What `colabssh connect` reads before a tunnel connect: a connection code, or the address a runtime started by
colab-ssh printed (`launch_ssh` over ngrok, `launch_ssh_cloudflared`; password login). Each becomes a Session,
validated here, before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import PureWindowsPath
from typing import Optional

from colab_bootstrap import conncode

from ..errors import BAD_INPUT, ColabsshError
from ..session import Login, Session, Transport


@dataclass(frozen=True)
class TunnelInput:
    code: Optional[str] = None
    host: Optional[str] = None  # colab-ssh over ngrok: --host/--port
    port: Optional[str] = None
    cloudflared_host: Optional[str] = None  # colab-ssh over cloudflared
    password: bool = False
    user: str = "root"
    drive_folder: str = ""  # where the laptop sees the runtime's Drive (already checked: comeback/drive_folder.py)


def _bad(message: str, hint: str) -> ColabsshError:
    return ColabsshError(message, hint, BAD_INPUT)


# Quotes a copy may bring around the code or the line: the shell's own (when they reach us, e.g. from a
# PowerShell or a doubly quoted paste), typographic ones from a chat or a document, a Markdown backtick.
# A code never contains any of them (base64url, ':' and '.'), so they are stripped from the ends of each word.
QUOTES = "'\"`\u201c\u201d\u2018\u2019"
PROGRAM_NAMES = ("colabssh", "colabssh.exe")


PROMPTS = ("$", "%", ">", "#", "PS>")  # a shell's prompt copied with the line


def code_from_words(words: Sequence[str]) -> Optional[str]:
    """The connection code among the words `connect` was given: the code alone, the code in quotes, or the whole
    `colabssh connect CODE` line the cell printed, pasted after `colabssh connect` (as more words, or as one
    quoted word). None when there is no code; more than one word left over is BAD_INPUT."""
    tokens = [token.strip(QUOTES) for word in words for token in word.strip().strip(QUOTES).split()]
    tokens = [token for token in tokens if token]
    while tokens and (tokens[0] in PROMPTS or tokens[0] == "connect"
                      or PureWindowsPath(tokens[0]).name in PROGRAM_NAMES):
        tokens.pop(0)  # a shell's prompt, the program (maybe a path: .venv/bin/colabssh, C:\...\colabssh.exe), connect
    if len(tokens) > 1:
        if any("PRIVATE" in word for word in words):  # the code's own check says so, and never shows it
            return " ".join(words)
        raise _bad(f"connect takes one connection code, and {len(tokens)} words were given",
                   "copy the whole `colabssh connect CODE` line that the cell printed last, or just its code")
    return tokens[0] if tokens else None


def session_from_colab_ssh(alias: str, given: TunnelInput) -> Session:
    """A runtime started by colab-ssh (`launch_ssh` over ngrok, `launch_ssh_cloudflared`): password login."""
    if not given.password:
        raise _bad("--host and --cloudflared-host are for runtimes started by colab-ssh, which log in with a "
                   "password", "add --password (ssh or VS Code asks for it; colabssh never stores it)")
    if given.user != "root":
        try:
            conncode.validate_user(given.user or "")
        except conncode.CodeError:
            raise _bad(f"the user {given.user!r} is not a valid user name", "colab-ssh logs in as root") from None
    try:
        if given.cloudflared_host is not None:
            if given.host is not None or given.port is not None:
                raise _bad("give either --cloudflared-host, or --host and --port", "not both")
            host = conncode.validate_host(given.cloudflared_host)
            return Session(alias=alias, host=host, port=22, user=given.user, tunnel=Transport.CLOUDFLARED,
                           auth=Login.PASSWORD)
        if given.host is None or given.port is None:
            raise _bad("--host needs --port (the two values colab-ssh printed)",
                       "colabssh connect --host X.tcp.ngrok.io --port NNNNN --password")
        host = conncode.validate_host(given.host)
        port = conncode.validate_port(given.port)
    except conncode.CodeError as exc:
        raise _bad(str(exc), "give the HostName and Port that colab-ssh printed") from None
    return Session(alias=alias, host=host, port=port, user=given.user, tunnel=Transport.NGROK, auth=Login.PASSWORD)


def session_from_input(alias: str, given: TunnelInput) -> Session:
    """The runtime a connection code or colab-ssh's options describe (exactly one of the two)."""
    colab_ssh = given.host is not None or given.port is not None or given.cloudflared_host is not None
    if given.code is not None and colab_ssh:
        raise _bad("give either a connection code or --host/--port/--cloudflared-host, not both",
                   "the code already says where the runtime is")
    if colab_ssh:
        return session_from_colab_ssh(alias, given)
    if given.code is None:
        raise _bad("no connection code given", "run the cell in Colab and copy its `colabssh connect CODE` line")
    if given.password:
        raise _bad("--password is only for colab-ssh runtimes (--host/--port or --cloudflared-host)",
                   "runtimes started by the colabssh cell log in with colabssh's key")
    return replace(Session.from_code(alias, given.code), drive_folder=given.drive_folder)
