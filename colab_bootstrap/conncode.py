"""The connection code: the one contract between the runtime and the laptop.

Form: ``colabssh1:`` + base64url(JSON) + ``.`` + 8 hex digits of SHA-256 over the
base64url part. The JSON holds no secret: where to connect, who to log in as, the
runtime's host *public* key and a few facts about the runtime. Decoding is strict
and validates every field before anything is returned, so nothing from a code can
become an ssh option that runs a command.

Standard library only: this module is inlined into the Colab cell.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import re
import socket
from dataclasses import asdict, dataclass

from . import pubkey
from .settings import RUNTIME_TUNNELS

PREFIX = "colabssh"
VERSION = 1
MAX_CODE_LENGTH = 4096
# Only what a runtime emits. The laptop's `--via colab-cli` road makes no code and records its sessions
# without one; a pasted code that claimed it would change how the laptop treats the session.
TUNNELS = RUNTIME_TUNNELS

_DNS_NAME = re.compile(r"(?=.{1,253}\Z)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                       r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_CHECKSUM = re.compile(r"[0-9a-f]{8}")
_HOSTKEY = re.compile(r"ssh-ed25519 ([A-Za-z0-9+/]{68})")
_FIELDS = ("v", "host", "port", "user", "hostkey", "tunnel", "content", "drive", "python", "gpu")
_OPTIONAL = {"gpu": ""}  # a field a code may leave out (or give as null), and what it then means


class CodeError(ValueError):
    """A connection code that cannot be trusted; the message says why in one line."""


@dataclass(frozen=True)
class ConnectionInfo:
    host: str
    port: int
    user: str
    hostkey: str  # "ssh-ed25519 BASE64", canonical, no comment
    tunnel: str
    content: str
    drive: str
    python: str
    gpu: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.hostkey)


def fingerprint(public_key_line: str) -> str:
    """OpenSSH's SHA256 fingerprint (as `ssh-keygen -lf` prints it) of a public key line."""
    blob = base64.b64decode(public_key_line.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def _checksum(payload: str) -> str:
    return hashlib.sha256(payload.encode("ascii")).hexdigest()[:8]


def encode(info: ConnectionInfo) -> str:
    validate(info)
    data = {"v": VERSION, **asdict(info)}
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")
    payload = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
    return f"{PREFIX}{VERSION}:{payload}.{_checksum(payload)}"


def decode(code: str) -> ConnectionInfo:
    """Decode and fully validate a code; raise CodeError with a one-line reason."""
    if not isinstance(code, str):
        raise CodeError("the connection code is not text")
    code = code.strip(" \t\r\n")
    if not code:
        raise CodeError("the connection code is empty")
    if len(code) > MAX_CODE_LENGTH:
        raise CodeError("the connection code is too long (was more than the code pasted?)")
    if "PRIVATE KEY" in code:
        raise CodeError("that looks like a private key, not a connection code; never share it")
    if not code.isascii():
        raise CodeError("the connection code contains non-ASCII characters (smart quotes or a "
                        "zero-width space from a copy?)")
    match = re.fullmatch(r"([a-z]+)([0-9]+):(.*)", code, flags=re.DOTALL)
    if not match or match.group(1) != PREFIX:
        raise CodeError("not a colabssh connection code (a code starts with 'colabssh1:')")
    if match.group(2) != str(VERSION):
        raise CodeError(f"connection code version {match.group(2)} is not supported by this "
                        f"colabssh (it reads version {VERSION}); upgrade colabssh or re-run the cell")
    body = match.group(3)
    payload, sep, checksum = body.rpartition(".")
    if not sep or not _B64URL.fullmatch(payload) or not _CHECKSUM.fullmatch(checksum):
        raise CodeError("the connection code is malformed or truncated")
    if _checksum(payload) != checksum:
        raise CodeError("the connection code's checksum does not match: it was changed or "
                        "truncated")
    return info_from_json(_json_object(payload))


def _json_object(payload: str) -> dict[str, object]:
    """The code's JSON object: flat (no nesting), no repeated keys; anything else is CodeError, never a crash.

    Nesting is refused before ``json`` sees it (a deeply nested array would end in RecursionError), and
    a key given twice is refused rather than letting one of two parsers pick a value.
    """
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        raise CodeError("the connection code is malformed") from None
    if _nesting_outside_strings(raw) > 1:
        raise CodeError("the connection code is malformed (nested values)")
    try:
        data = json.loads(raw, object_pairs_hook=_no_repeated_keys)
    except _RepeatedKey as exc:
        raise CodeError(f"the connection code names {exc.args[0]!r} twice") from None
    except (ValueError, RecursionError):
        raise CodeError("the connection code is malformed") from None
    if not isinstance(data, dict):
        raise CodeError("the connection code is malformed")
    return data


class _RepeatedKey(ValueError):
    pass


def _no_repeated_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise _RepeatedKey(key)
        seen[key] = value
    return seen


def _nesting_outside_strings(text: str) -> int:
    """How deep ``[``/``{`` nest in JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def info_from_json(data: dict[str, object]) -> ConnectionInfo:
    """A ConnectionInfo from a code's decoded JSON object, every field checked (the one way in from a code)."""
    if type(data.get("v")) is not int or data.get("v") != VERSION:  # not True, not 1.0
        raise CodeError("the connection code's inner version is not supported")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        shown = ", ".join(repr(name) if not name.isidentifier() else name for name in unknown)
        raise CodeError(f"the connection code has unknown fields ({shown[:200]}); upgrade colabssh")
    missing = [name for name in _FIELDS if name not in data and name not in _OPTIONAL]
    if missing:
        raise CodeError(f"the connection code lacks {', '.join(missing)}")
    port = data["port"]
    if isinstance(port, bool) or not isinstance(port, int):
        raise CodeError("the connection code's port is not a number")
    texts: dict[str, str] = {}
    for key in _FIELDS:
        if key in ("v", "port"):
            continue
        value = data.get(key, _OPTIONAL.get(key))
        if value is None and key in _OPTIONAL:
            value = _OPTIONAL[key]
        if not isinstance(value, str):
            raise CodeError(f"the connection code's {key} is not text")
        texts[key] = value
    info = ConnectionInfo(host=texts["host"], port=port, user=texts["user"], hostkey=texts["hostkey"],
                          tunnel=texts["tunnel"], content=texts["content"], drive=texts["drive"],
                          python=texts["python"], gpu=texts["gpu"])
    validate(info)
    return info


def validate(info: ConnectionInfo) -> None:
    validate_host(info.host)
    validate_port(str(info.port))
    if not _USER.fullmatch(info.user):
        raise CodeError(f"the connection code's user {info.user!r} is not a valid user name")
    canonical = canonical_host_key(info.hostkey)
    if canonical != info.hostkey:
        raise CodeError("the connection code's host key is not in canonical form")
    if info.tunnel not in TUNNELS:
        raise CodeError(f"unknown tunnel kind {info.tunnel!r} in the connection code")
    for name in ("content", "python"):
        validate_remote_path(getattr(info, name), name)
    if info.drive:  # empty: the runtime has no Drive folder
        validate_remote_path(info.drive, "drive")
    if len(info.gpu) > 120 or not info.gpu.isprintable():
        raise CodeError("the connection code's GPU name is not printable text")


def validate_host(host: str) -> str:
    """A host exactly as OpenSSH will use it: a DNS name, or an IP address in its one canonical form.

    OpenSSH rewrites numeric hosts (``127.1`` and ``0x7f.1`` become ``127.0.0.1``, ``010.1.1.1`` is octal,
    ``::ffff:7f00:1`` becomes ``::ffff:127.0.0.1``) and reads ``%`` as the start of a token, so such forms
    (and IPv6 zone ids) are refused here, before anything is written, instead of surprising ``ssh -G``.
    """
    if not isinstance(host, str) or not host.isascii() or not host:
        raise CodeError("the host is not an ASCII host name")
    if host.startswith("-") or len(host) > 253:
        raise CodeError(f"the host {host[:80]!r} is not a valid host name")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if address.is_unspecified:
            raise CodeError(f"the host {host!r} is the unspecified address, not a runtime's")
        return _canonical_address(host, address)
    if _is_loose_ipv4(host):
        raise CodeError(f"the host {host!r} is an IPv4 address in a shorthand form that ssh rewrites "
                        "(write it as four decimal numbers, a.b.c.d)")
    if not _DNS_NAME.fullmatch(host):
        raise CodeError(f"the host {host[:80]!r} is not a valid DNS name or IP address")
    if host.rsplit(".", 1)[-1].isdigit():
        raise CodeError(f"the host {host!r} is neither an IP address nor a DNS name (its last label is a number)")
    return host


def _canonical_address(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise CodeError(f"the host {host!r} has an IPv6 zone id ('%...'), which an ssh config cannot hold")
        if address.ipv4_mapped is not None or (int(address) >> 32 == 0 and int(address) > 1):
            raise CodeError(f"the host {host!r} is an IPv4 address written as IPv6; use the IPv4 address")
    if host != str(address):
        raise CodeError(f"the host {host!r} is not in canonical form (ssh would use {address})")
    return host


def _is_loose_ipv4(host: str) -> bool:
    """What inet_aton (and so ssh's resolver) reads as an IPv4 address: ``127.1``, ``0x7f.1``, ``2130706433``."""
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True


def validate_port(text: str) -> int:
    if not isinstance(text, str) or not _PORT.fullmatch(text):
        from .units import count  # only for this message: connect's import budget

        long = len(str(text)) > 20
        shown = repr(str(text)[:12]) + f" ({count(len(str(text)), 'character')})" if long else repr(text)
        raise CodeError(f"the port {shown} is not a number of ASCII digits 1-65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise CodeError(f"the port {port} is outside 1-65535")
    return port


def validate_user(user: str) -> str:
    """A plain login name (what a code may hold; the laptop checks colab-ssh's --user with it too)."""
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise CodeError(f"the user {user!r} is not a valid user name")
    return user


def validate_remote_path(path: str, what: str = "path") -> str:
    if (not path.startswith("/") or len(path) > 1024 or not path.isprintable()
            or any(c in path for c in "\"'\\\n\r\t")):
        raise CodeError(f"the connection code's {what} {path!r} is not a plain absolute path")
    return path


def canonical_host_key(line: str) -> str:
    """Check an ed25519 public key line structurally; return ``ssh-ed25519 BASE64``.

    Accepts an optional trailing comment of printable ASCII; refuses private keys,
    known_hosts markers, options, other key types and anything with control characters.
    """
    if not isinstance(line, str):
        raise CodeError("the host key is not text")
    if "PRIVATE KEY" in line:
        raise CodeError("that is a private key; only a public key belongs here (never share it)")
    if not line.isascii() or any(not c.isprintable() for c in line):
        raise CodeError("the public key contains control or non-ASCII characters")
    parts = line.strip(" ").split(" ")
    if len(parts) < 2 or parts[0] != "ssh-ed25519":
        raise CodeError("the key is not an ssh-ed25519 public key (a line 'ssh-ed25519 AAAA...')")
    candidate = f"{parts[0]} {parts[1]}"
    if not _HOSTKEY.fullmatch(candidate):
        raise CodeError("the ssh-ed25519 public key is truncated or malformed")
    try:
        fields = pubkey.ssh_strings(base64.b64decode(parts[1]))
    except ValueError:
        raise CodeError("the ssh-ed25519 public key is malformed") from None
    if fields[:1] != [b"ssh-ed25519"] or not pubkey.well_formed("ssh-ed25519", fields[1:]):
        raise CodeError("the ssh-ed25519 public key is malformed")
    return candidate
