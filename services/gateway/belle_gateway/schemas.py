"""Response schemas. Routes return these, never ORM objects."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel

from belle_shared.db.models import Dataset, File, Job, JobEvent, TeamSecret


class JobPublic(BaseModel):
    id: uuid.UUID
    object: str = "job"
    type: str
    status: str
    spec: dict[str, Any]
    parent_id: uuid.UUID | None
    error: dict[str, Any] | None
    result: dict[str, Any] | None
    cancel_requested: bool
    attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, job: Job) -> "JobPublic":
        return cls(
            id=job.id, type=job.type, status=job.status, spec=job.spec, parent_id=job.parent_id,
            error=job.error, result=job.result, cancel_requested=job.cancel_requested, attempts=job.attempts,
            created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
        )


class JobsPublic(BaseModel):
    object: str = "list"
    data: list[JobPublic]
    count: int
    has_more: bool


class JobEventPublic(BaseModel):
    id: int
    object: str = "job.event"
    created_at: dt.datetime
    level: str
    kind: str
    message: str
    data: dict[str, Any] | None

    @classmethod
    def of(cls, event: JobEvent) -> "JobEventPublic":
        return cls(id=event.id, created_at=event.created_at, level=event.level, kind=event.kind,
                   message=event.message, data=event.data)


class JobEventsPublic(BaseModel):
    object: str = "list"
    data: list[JobEventPublic]
    has_more: bool


class FilePublic(BaseModel):
    id: uuid.UUID
    object: str = "file"
    filename: str
    purpose: str
    bytes: int
    lines: int
    sha256: str
    created_at: int  # unix seconds, as OpenAI's file object
    status: str = "processed"

    @classmethod
    def of(cls, file: File) -> "FilePublic":
        return cls(id=file.id, filename=file.filename, purpose=file.purpose, bytes=file.bytes, lines=file.lines,
                   sha256=file.sha256, created_at=int(file.created_at.timestamp()))


class FilesPublic(BaseModel):
    object: str = "list"
    data: list[FilePublic]
    has_more: bool


class DatasetPublic(BaseModel):
    id: uuid.UUID
    object: str = "dataset"
    name: str
    format: str
    rows: int
    stats: dict[str, Any]
    source_file_id: uuid.UUID | None
    job_id: uuid.UUID | None
    sha256: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, dataset: Dataset) -> "DatasetPublic":
        return cls(id=dataset.id, name=dataset.name, format=dataset.format, rows=dataset.rows, stats=dataset.stats,
                   source_file_id=dataset.source_file_id, job_id=dataset.job_id, sha256=dataset.artifact.sha256,
                   created_at=dataset.created_at)


class DatasetsPublic(BaseModel):
    object: str = "list"
    data: list[DatasetPublic]
    count: int
    has_more: bool


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
