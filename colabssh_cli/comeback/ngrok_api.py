"""The ngrok API as a second way to find a recycled runtime (laptop `NGROK_API_KEY`): the cell tags its TCP
tunnel with metadata naming its host key's fingerprint (colab_bootstrap/tunnels/ngrok.py ``METADATA_PREFIX``).

GET https://api.ngrok.com/endpoints (and /tunnels, the older list, when no endpoint matches) with
``Authorization: Bearer KEY`` and ``Ngrok-Version: 2``. Env ``COLABSSH_NGROK_API_URL`` replaces the base URL
(for tests and proxies). One deadline for the whole question (the relay runs inside an ssh connection): an API
that drips, redirects (never followed: the key would go along) or answers anything odd is one warning line, and the
relay goes on with the other addresses.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from .finder import parse_time

API_URL = "https://api.ngrok.com"
TIMEOUT = 3.0  # seconds for both lists together
# the cell's tag + "SHA256:..."; the same text as colab_bootstrap/tunnels/ngrok.py's (a test checks), which is
# not imported: it brings subprocess and logging into every ssh connection
METADATA_PREFIX = "colabssh hostkey="
_TCP_URL = re.compile(r"tcp://([A-Za-z0-9.-]+):([0-9]{1,5})")


class NgrokApiError(Exception):
    """The API could not be asked; the message says why in one line (never the key)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is refused: urllib would send the Authorization header (the key) to wherever it points."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise NgrokApiError(f"the ngrok API answered a redirect ({code}); not followed (it would carry the key)")


def _get(path: str, key: str, deadline: float) -> dict[str, Any]:
    base = os.environ.get("COLABSSH_NGROK_API_URL", API_URL).rstrip("/")
    request = urllib.request.Request(f"{base}{path}", headers={
        "Authorization": f"Bearer {key}", "Ngrok-Version": "2", "Accept": "application/json"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=max(0.1, deadline - time.monotonic())) as answer:
            data = json.loads(answer.read(4 << 20).decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = ""
        try:
            detail = str(json.loads(exc.read(65536).decode("utf-8")).get("error_code", ""))
        except (ValueError, AttributeError, OSError):
            pass
        if exc.code in (401, 403):
            raise NgrokApiError(f"the ngrok API refused NGROK_API_KEY ({exc.code} {detail}".rstrip() +
                                "): make an API key at https://dashboard.ngrok.com/api-keys") from None
        raise NgrokApiError(f"the ngrok API answered {exc.code} {detail}".rstrip()) from None
    except (OSError, ValueError) as exc:  # URLError, timeouts, bad JSON
        raise NgrokApiError(f"the ngrok API did not answer ({getattr(exc, 'reason', exc)})") from None
    if not isinstance(data, dict):
        raise NgrokApiError("the ngrok API answered something unexpected")
    return data


def _matches(items: Any, fingerprint: str, time_field: str) -> list[tuple[str, int, float]]:
    found = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or str(item.get("metadata", "")).strip() != METADATA_PREFIX + fingerprint:
            continue
        match = _TCP_URL.fullmatch(str(item.get("public_url") or item.get("url") or ""))  # url: the newer name
        if match and 1 <= int(match.group(2)) <= 65535:
            found.append((match.group(1), int(match.group(2)), parse_time(str(item.get(time_field, "")))))
    return found


def tagged_addresses(key: str, fingerprint: str) -> list[tuple[str, int, float]]:
    """(host, port, started) of the account's TCP addresses tagged with FINGERPRINT, newest first; NgrokApiError
    when the API cannot tell within TIMEOUT seconds, whatever it does meanwhile (a thread that is left behind)."""
    answer: dict[str, Any] = {}

    def ask() -> None:
        try:
            answer["found"] = _ask(key, fingerprint)
        except NgrokApiError as exc:
            answer["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001  (http.client's BadStatusLine, a RecursionError of deep JSON...)
            answer["error"] = f"the ngrok API answered something unexpected ({type(exc).__name__})"

    thread = threading.Thread(target=ask, name="colabssh-ngrok-api", daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    if "found" in answer:
        return list(answer["found"])
    raise NgrokApiError(answer.get("error") or f"the ngrok API did not answer within {TIMEOUT:.0f} s")


def _ask(key: str, fingerprint: str) -> list[tuple[str, int, float]]:
    deadline = time.monotonic() + TIMEOUT
    found = _matches(_get("/endpoints?limit=100", key, deadline).get("endpoints"), fingerprint, "created_at")
    if not found:
        found = _matches(_get("/tunnels?limit=100", key, deadline).get("tunnels"), fingerprint, "started_at")
    return sorted(found, key=lambda item: item[2], reverse=True)
