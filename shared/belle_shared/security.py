"""API keys: generated here, shown once, stored only as an HMAC-SHA256 hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "belle-"


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str, secret: str) -> str:
    # HMAC with a server-side secret: a leaked database alone does not allow offline key guessing.
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def display_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + 4]
