"""Settings shared by every BELLE process, read from ``BELLE_*`` environment variables.

Nothing here is created at import time: call ``Settings()`` (or a service's subclass) in a factory
and pass the object down, so tests can hand in their own.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev-secret"}


def split_commas(value):
    """A comma-separated environment value as a list of its non-blank parts (a list passes through)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# A list setting written "a,b,c" in the environment (NoDecode: not parsed as JSON first).
CommaList = Annotated[list[str], NoDecode, BeforeValidator(split_commas)]


class Settings(BaseSettings):
    """What every service shares. Field names match the environment variables (``BELLE_`` prefix)."""

    model_config = SettingsConfigDict(env_prefix="BELLE_", extra="ignore")

    environment: Literal["development", "test", "production"] = Field(
        "development", description="Deployment kind; production refuses placeholder secrets."
    )
    data_dir: Path = Field(
        Path(".belle"), description="Folder of the embedded default (SQLite file, artifacts, broker)."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL, e.g. postgresql+psycopg://user:pass@host/belle. Unset: SQLite in "
        "data_dir (the embedded default)."
    )
    broker_url: str | None = Field(
        None, description="Celery broker URL, e.g. redis://host:6379/0. Unset: the Redis that `belle up` starts "
        "in data_dir."
    )
    artifact_root: str | None = Field(
        None, description="fsspec URL or folder for artifacts (s3://bucket/prefix works, with s3fs installed). "
        "Unset: data_dir/artifacts."
    )
    key_prefix: str = Field(
        "belle", description="Prefix of queue names and broker keys, so several stacks can share one Redis."
    )
    log_level: str = Field("INFO", description="Python logging level name.")
    db_pool_size: int = Field(
        20, ge=1, description="Database connections kept open per process (PostgreSQL); as many again may "
        "be opened under load. The gateway serves up to 40 requests at once from its thread pool."
    )
    secret_key: str = Field(
        "dev-secret", description="Server-side secret: the HMAC pepper of API-key hashes and the key that encrypts "
        "the teams' stored secrets. Required in production. Changing it invalidates every API key and makes "
        "stored team secrets unreadable (teams set them again)."
    )
    shared_secret_names: CommaList = Field(
        default_factory=list,
        description="Environment variables of the workers that any team may use as a secret (an operator's "
        "teacher or judge key), comma-separated. No other variable is ever read for a secret name: a team "
        "names the URL its key goes to, so reading any variable would hand the server's own settings to it.",
    )

    model_roots: CommaList = Field(
        default_factory=list,
        description="Folders a team may register or import base models from (`POST /v1/models`, `model_import` "
        "jobs), comma-separated in the environment; the gateway and the trainer worker must both see them. "
        "Unset: <data_dir>/models. A team may also register a folder of its own in the artifact store.",
    )
    job_type_modules: CommaList = Field(
        default_factory=list,
        description="Python modules that declare job types of their own (`belle_shared.job_types."
        "register_job_type`), comma-separated; imported when the settings are read, by the gateway and by "
        "the worker that runs those types. The built-in types need none.",
    )
    cache_dir: Path | None = Field(
        None, description="Per-machine cache of downloaded and converted files (the bundled real model's "
        "package and its converted folder). Unset: $XDG_CACHE_HOME/belle, else ~/.cache/belle.",
    )

    # Job lifecycle timings, in seconds.
    heartbeat_interval: float = Field(5.0, description="Seconds between a running job's lease renewals.")
    lease_timeout: float = Field(
        60.0, description="Seconds: a running job whose heartbeat is older than this is presumed lost and re-queued."
    )
    sweep_interval: float = Field(5.0, description="Seconds between the sweeper's looks for lost jobs.")
    unsent_resend_after: float = Field(
        10.0, description="Seconds after which a queued job whose message was never sent is sent."
    )
    queued_resend_after: float = Field(
        3600.0,
        description="Seconds after which a queued job whose message was sent but never picked up is sent again "
        "(guards against a broker that lost its data).",
    )
    max_attempts: int = Field(
        3, ge=1, description="Deliveries after which a job that keeps losing its worker is failed."
    )
    visibility_timeout: float = Field(
        48 * 3600.0,
        description="Broker redelivery timeout for unacknowledged messages, in seconds. Must exceed the longest job; "
        "dead workers are recovered by the lease, not by this.",
    )

    @field_validator("job_type_modules")
    @classmethod
    def _import_job_types(cls, value: list[str]) -> list[str]:
        # Imported here, before the fields that name job types are checked: a module that cannot be
        # imported stops the process at start, not at its first job.
        from belle_shared.job_types import import_job_type_modules

        import_job_type_modules(value)
        return value

    @model_validator(mode="after")
    def _no_placeholder_secret_in_production(self) -> "Settings":
        if self.environment == "production" and self.secret_key in PLACEHOLDER_SECRETS:
            raise ValueError("BELLE_SECRET_KEY must be set to a real secret when BELLE_ENVIRONMENT=production")
        if self.lease_timeout <= 2 * self.heartbeat_interval:
            raise ValueError("BELLE_LEASE_TIMEOUT must be more than twice BELLE_HEARTBEAT_INTERVAL")
        return self

    # Derived values: the embedded default fills in what is unset.
    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'belle.db').resolve()}"

    @property
    def redis_socket(self) -> Path:
        """Unix socket of the embedded Redis that `belle up` starts.

        Socket paths are limited to ~107 bytes; a deep data_dir gets a short path in /tmp derived from it.
        """
        path = (self.data_dir / "redis.sock").resolve()
        if len(str(path)) <= 100:
            return path
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"belle-{digest}.sock"

    @property
    def resolved_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        return f"redis+socket://{self.redis_socket}"

    @property
    def resolved_artifact_root(self) -> str:
        if self.artifact_root:
            return self.artifact_root
        return str((self.data_dir / "artifacts").resolve())

    @property
    def resolved_model_roots(self) -> list[Path]:
        """The model roots as absolute paths with symlinks resolved (what registrations are checked against)."""
        roots = self.model_roots or [str(self.data_dir / "models")]
        return [Path(root).expanduser().resolve() for root in roots]

    @property
    def resolved_cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return self.cache_dir.expanduser().resolve()
        xdg = os.environ.get("XDG_CACHE_HOME")
        return (Path(xdg) if xdg else Path.home() / ".cache").resolve() / "belle"

    @property
    def is_embedded(self) -> bool:
        return self.database_url is None and self.broker_url is None
