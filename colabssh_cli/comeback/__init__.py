"""The comeback on the laptop: a recycled runtime found again without a new code (`connect --drive-folder`).

drive_folder.py finds Google Drive for desktop's "My Drive"; finder.py lists where the alias's runtime may be now
(Drive's connection codes, the ngrok API, the last address); relay.py is the ssh ProxyCommand that picks one.
Kept light: the relay imports this package at every ssh connection.
"""

from __future__ import annotations

import os


def ngrok_api_key() -> str:
    """The laptop's ngrok API key (NGROK_API_KEY; '' when unset): the ngrok API is a second way to the runtime."""
    return os.environ.get("NGROK_API_KEY", "").strip()
