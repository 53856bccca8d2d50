"""One error type for the laptop side; the boundary in app.py turns it into a message and an exit code."""

from __future__ import annotations

# Exit codes (documented in docs/reference.md):
OK = 0
FAILURE = 1  # the job could not be done (remote failure, sync error, a failed demo check)
BAD_INPUT = 2  # bad arguments, a bad connection code, a file colabssh refuses to change
UNREACHABLE = 3  # the runtime did not answer (dead tunnel, refused key, changed host key)
MISSING_TOOL = 4  # a program colabssh needs is not installed (ssh, sshd, cloudflared, rsync)
INTERRUPTED = 130


class ColabsshError(Exception):
    def __init__(self, message: str, hint: str = "", exit_code: int = FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code
