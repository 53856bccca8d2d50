"""Public key lines (standard library only): the one parser of SSH's key format, for the key the runtime
authorises (``authorised_key_line``) and the host key a connection code carries (``conncode.canonical_host_key``)."""

from __future__ import annotations

import base64
import binascii
import struct

from .errors import BootstrapError

ALLOWED_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
)
_HINT = "pass the .pub file (one line 'ssh-ed25519 AAAA... comment'), e.g. --public-key ~/.ssh/colabssh/id_ed25519.pub"


def authorised_key_line(text: str) -> str:
    """Return ``TYPE BASE64 [comment]`` for one valid public key, or raise BootstrapError.

    Refuses private keys, several keys, authorized_keys options, unknown types,
    broken base64 and control characters, so the line can be written to
    authorized_keys as it is.
    """
    if "PRIVATE KEY" in text:
        raise BootstrapError("that is a private key, not a public key; never paste it anywhere", _HINT)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        raise BootstrapError("expected exactly one public key line" if lines else "the public key is empty", _HINT)
    line = lines[0].strip()
    if not line.isascii() or not line.isprintable():
        raise BootstrapError("the public key contains control or non-ASCII characters", _HINT)
    parts = line.split()
    if len(parts) < 2 or parts[0] not in ALLOWED_TYPES:
        raise BootstrapError("that is not an SSH public key of a supported type", _HINT)
    try:
        blob = base64.b64decode(parts[1], validate=True)
        fields = ssh_strings(blob)
    except (binascii.Error, ValueError):
        raise BootstrapError("the public key's base64 part is damaged or truncated", _HINT) from None
    if not fields or fields[0] != parts[0].encode("ascii") or not well_formed(parts[0], fields[1:]):
        raise BootstrapError("the public key's base64 part is damaged or truncated", _HINT)
    comment = " ".join(parts[2:])
    return f"{parts[0]} {parts[1]}" + (f" {comment}" if comment else "")


def ssh_strings(blob: bytes) -> list[bytes]:
    """Split an SSH wire-format key into its length-prefixed strings; ValueError unless they fill it exactly."""
    fields, offset = [], 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            raise ValueError("truncated length")
        (length,) = struct.unpack(">I", blob[offset:offset + 4])
        offset += 4
        if offset + length > len(blob):
            raise ValueError("truncated field")
        fields.append(blob[offset:offset + length])
        offset += length
    return fields


def well_formed(kind: str, fields: list[bytes]) -> bool:
    """The fields each key type has, with the sizes it must have."""
    if kind == "ssh-ed25519":
        return len(fields) == 1 and len(fields[0]) == 32
    if kind == "sk-ssh-ed25519@openssh.com":
        return len(fields) == 2 and len(fields[0]) == 32 and fields[1].startswith(b"ssh:")
    if kind.startswith("ecdsa-sha2-"):
        return len(fields) == 2 and fields[0] == kind.rsplit("-", 1)[1].encode() and fields[1][:1] == b"\x04"
    if kind == "ssh-rsa":
        return len(fields) == 2 and len(fields[1].lstrip(b"\0")) * 8 >= 1024  # sshd's RequiredRSASize default
    return False
