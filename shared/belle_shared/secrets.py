"""Secrets named in job specs (a teacher's API key, say), kept out of specs, events and logs.

A spec carries only a secret's *name*. The worker resolves it in this order:

1. the team's own secret of that name (``PUT /v1/secrets/{name}``), stored encrypted in the database
   with a key derived from ``BELLE_SECRET_KEY`` (Fernet: AES-128-CBC + HMAC-SHA256), so a team can use
   its own teacher key without an operator's help;
2. an environment variable of that name on the worker (an operator-provided key shared by all teams,
   e.g. a Kubernetes Secret), only if the operator lists the name in ``BELLE_SHARED_SECRET_NAMES``.
   A team chooses the URL its key is sent to, so an unlisted variable (``BELLE_DATABASE_URL``, say)
   is never read.

Changing ``BELLE_SECRET_KEY`` makes stored team secrets unreadable: teams must set them again.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from belle_shared.db.models import TeamSecret
from belle_shared.errors import JobError
from belle_shared.settings import Settings
from belle_shared.specs import SECRET_NAME_PATTERN

__all__ = ["SECRET_NAME_PATTERN", "decrypt_secret", "encrypt_secret", "resolve_secret"]


def _fernet(settings: Settings) -> Fernet:
    # A purpose-bound derivation, so this key is never the one that peppers API-key hashes.
    digest = hashlib.sha256(b"belle team secrets\0" + settings.secret_key.encode("utf-8")).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_secret(settings: Settings, value: str) -> str:
    return _fernet(settings).encrypt(value.encode("utf-8")).decode("ascii")


def decrypt_secret(settings: Settings, ciphertext: str) -> str:
    return _fernet(settings).decrypt(ciphertext.encode("ascii")).decode("utf-8")


def resolve_secret(name: str | None, *, param: str, settings: Settings,
                   session_factory: sessionmaker[Session], team_id: uuid.UUID) -> str | None:
    """The secret's value (None when no secret is named), or a JobError naming ``param``."""
    if name is None:
        return None
    with session_factory() as session:
        stored = session.scalar(select(TeamSecret.ciphertext).where(TeamSecret.team_id == team_id,
                                                                    TeamSecret.name == name))
    if stored is not None:
        try:
            return decrypt_secret(settings, stored)
        except InvalidToken:
            raise JobError(
                "unreadable_secret",
                f"team secret {name!r} cannot be decrypted (the server secret changed since it was set); "
                f"set it again with PUT /v1/secrets/{name}",
                param=param,
            ) from None
    value = os.environ.get(name) if name in settings.shared_secret_names else None
    if not value:
        raise JobError(
            "missing_secret",
            f"no secret {name!r}: set it for your team with PUT /v1/secrets/{name}, or have the operator "
            f"export the environment variable {name} where the worker runs and list it in "
            "BELLE_SHARED_SECRET_NAMES",
            param=param,
        )
    return value
