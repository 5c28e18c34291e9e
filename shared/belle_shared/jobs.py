"""Job data access. Keyword-only functions that never commit: the caller owns the transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from belle_shared.db.models import Job, JobEvent, JobStatus
from belle_shared.db.types import utcnow
from belle_shared.specs import JobSpec


def create_job(
    session: Session, *, team_id: uuid.UUID, spec: JobSpec, parent_id: uuid.UUID | None = None,
    pipeline_step: str | None = None,
) -> Job:
    """Add a queued job and its first event (flushed, not committed)."""
    job = Job(
        id=uuid.uuid4(),
        team_id=team_id,
        type=spec.type,
        status=JobStatus.queued,
        spec=spec.model_dump(mode="json"),
        parent_id=parent_id,
        pipeline_step=pipeline_step,
        created_at=utcnow(),
    )
    session.add(job)
    session.flush()
    add_event(session, job_id=job.id, kind="status", message="job queued", data={"status": "queued"})
    return job


def add_event(
    session: Session,
    *,
    job_id: uuid.UUID,
    message: str,
    kind: str = "message",
    level: str = "info",
    data: dict[str, Any] | None = None,
) -> JobEvent:
    event = JobEvent(job_id=job_id, message=message, kind=kind, level=level, data=data, created_at=utcnow())
    session.add(event)
    return event


def mark_sent(session: Session, *, job_id: uuid.UUID, at: dt.datetime | None = None) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(sent_at=at or utcnow()))


def get_team_job(session: Session, *, team_id: uuid.UUID, job_id: uuid.UUID, for_update: bool = False) -> Job | None:
    stmt = select(Job).where(Job.id == job_id, Job.team_id == team_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def list_jobs(
    session: Session,
    *,
    team_id: uuid.UUID,
    job_type: str | None = None,
    status: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """Newest first, with the total count for pagination."""
    where = [Job.team_id == team_id]
    if job_type:
        where.append(Job.type == job_type)
    if status:
        where.append(Job.status == status)
    total = session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
    rows = session.scalars(
        select(Job).where(*where).order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def list_events(session: Session, *, job_id: uuid.UUID, after: int = 0, limit: int = 100) -> list[JobEvent]:
    return list(
        session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after).order_by(JobEvent.id).limit(limit)
        ).all()
    )


class CancelRefused(Exception):
    """The job already ended; the message says how."""


def request_cancel(session: Session, *, job: Job) -> None:
    """Cancel a queued job at once; ask a running job's worker to stop (it confirms within a heartbeat)."""
    status = JobStatus(job.status)
    if status.is_terminal:
        raise CancelRefused(f"job {job.id} already {status.value}; only queued or running jobs can be cancelled")
    if status == JobStatus.running:
        if not job.cancel_requested:
            job.cancel_requested = True
            add_event(session, job_id=job.id, kind="status", message="cancellation requested")
        return
    job.cancel_requested = True
    set_terminal(session, job=job, status=JobStatus.cancelled, message="job cancelled before it started")


def set_terminal(
    session: Session,
    *,
    job: Job,
    status: JobStatus,
    message: str,
    error: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
) -> None:
    job.status = status
    job.finished_at = utcnow()
    job.error = error
    if result is not None:
        job.result = result
    job.worker_id = None
    data: dict[str, Any] = {"status": status.value}
    if error:
        data["error"] = error
    add_event(session, job_id=job.id, kind="status", level="error" if error else "info", message=message, data=data)
