"""Pipelines and their steps (`/v1/pipelines`)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel

from belle_shared.db.models import Job


class PipelineStepPublic(BaseModel):
    """One step: its newest job (a retried step has had several), or why it has none yet."""

    name: str
    type: str | None
    needs: list[str]
    status: str
    reason: str | None
    job_id: uuid.UUID | None
    job_ids: list[uuid.UUID]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class PipelinePublic(BaseModel):
    id: uuid.UUID
    object: str = "pipeline"
    name: str | None
    status: str
    error: dict[str, Any] | None
    cancel_requested: bool
    steps: list[PipelineStepPublic]
    spec: dict[str, Any]
    created_at: dt.datetime
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, pipeline: Job, states) -> "PipelinePublic":
        steps = [
            PipelineStepPublic(
                name=s.name, type=s.job.type if s.job else s.step.spec.get("type"), needs=s.needs, status=s.status,
                reason=s.reason, job_id=s.job.id if s.job else None, job_ids=[j.id for j in s.jobs],
                result=s.job.result if s.job else None, error=s.job.error if s.job else None,
                started_at=s.job.started_at if s.job else None, finished_at=s.job.finished_at if s.job else None,
            )
            for s in states
        ]
        return cls(id=pipeline.id, name=pipeline.spec.get("name"), status=pipeline.status, error=pipeline.error,
                   cancel_requested=pipeline.cancel_requested, steps=steps, spec=pipeline.spec,
                   created_at=pipeline.created_at, finished_at=pipeline.finished_at)


class PipelinesPublic(BaseModel):
    object: str = "list"
    data: list[PipelinePublic]
    count: int
    has_more: bool
