"""Check a public key line that the runtime will authorise (standard library only)."""

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
        (n,) = struct.unpack(">I", blob[:4])
        inner = blob[4:4 + n].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError):
        raise BootstrapError("the public key's base64 part is damaged or truncated", _HINT) from None
    if inner != parts[0] or len(blob) < 4 + n + 4:
        raise BootstrapError("the public key's base64 part is damaged or truncated", _HINT)
    comment = " ".join(parts[2:])
    return f"{parts[0]} {parts[1]}" + (f" {comment}" if comment else "")
