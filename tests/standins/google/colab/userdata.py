"""google.colab.userdata stand-in: Colab Secrets from the JSON file named by FAKE_COLAB_SECRETS."""

from __future__ import annotations

import json
import os

from . import errors

__all__ = ["NotebookAccessError", "SecretNotFoundError", "TimeoutException", "get"]


class NotebookAccessError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(f"Notebook does not have access to secret {key}")


class SecretNotFoundError(errors.Error):
    def __init__(self, key: str) -> None:
        super().__init__(f"Secret {key} does not exist.")


class TimeoutException(errors.Error):
    def __init__(self, key: str) -> None:
        super().__init__(f"Requesting secret {key} timed out. Secrets can only be fetched when running from "
                         "the Colab UI.")


def get(key: str) -> str:
    if not isinstance(key, str) or not key or key.strip() != key:
        raise ValueError("Please provide a valid key name.")
    path = os.environ.get("FAKE_COLAB_SECRETS")
    if not path:
        raise TimeoutException(key)
    with open(path, encoding="utf-8") as handle:
        secrets = json.load(handle)
    if key not in secrets:
        raise SecretNotFoundError(key)
    if secrets[key] is None:
        raise NotebookAccessError(key)
    return str(secrets[key])
