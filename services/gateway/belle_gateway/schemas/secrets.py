"""Team secrets (`/v1/secrets`): names and dates, never values."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from belle_shared.db.models import TeamSecret


class SecretSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str = Field(min_length=1, max_length=8192, description="The secret value, e.g. an API key.")


class SecretPublic(BaseModel):
    """A team secret's name and dates; its value is never returned."""

    object: str = "secret"
    name: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, secret: TeamSecret) -> "SecretPublic":
        return cls(name=secret.name, created_at=secret.created_at, updated_at=secret.updated_at)


class SecretsPublic(BaseModel):
    object: str = "list"
    data: list[SecretPublic]
