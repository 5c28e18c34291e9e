"""Jobs and their events (`/v1/jobs`)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel

from belle_shared.db.models import Job, JobEvent


class JobPublic(BaseModel):
    id: uuid.UUID
    object: str = "job"
    type: str
    status: str
    spec: dict[str, Any]
    parent_id: uuid.UUID | None
    pipeline_step: str | None  # the step of the parent pipeline this job runs
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
            pipeline_step=job.pipeline_step, error=job.error, result=job.result, cancel_requested=job.cancel_requested, attempts=job.attempts,
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
