"""The job lifecycle: submit, cancel, finish. The only code that commits a job and sends its message,
and the one place a job that ended advances its pipeline.

- **submit**: the job row (with its first event) is committed, then its message is sent, then it is
  marked sent (an outbox: a send lost between commit and broker is made again by the sweeper, which
  looks for queued jobs never marked sent).
- **cancel**: a queued job ends at once; a running one is asked to stop (its worker sees the flag at
  the next heartbeat); a pipeline cancels its steps.
- **finish**: after a job's terminal status is committed (by its worker, a cancel, or the sweeper
  giving up on it), its pipeline, if it is a step of one, starts what now can run, or ends.

Callers: the gateway's routers (submit, cancel, retry), the workers (finish), the sweeper (send,
finish). A session passed in is the caller's; these functions commit it.
"""

from __future__ import annotations

import logging
import uuid

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from belle_shared.db.models import Job, JobStatus
from belle_shared.jobs import create_job, mark_sent, request_cancel
from belle_shared.pipelines import PIPELINE_TYPE, PipelineSpec, advance_pipeline, cancel_pipeline, create_pipeline
from belle_shared.pipelines import retry_pipeline as _retry_pipeline
from belle_shared.queue import SendFailed, send_job
from belle_shared.specs import JobSpec

log = logging.getLogger(__name__)


def send_jobs(session: Session, celery: Celery, jobs: list[Job]) -> None:
    """Send the messages of committed jobs and mark each sent; a failed send is left to the sweeper."""
    for job in jobs:
        try:
            send_job(celery, job_id=job.id, job_type=job.type)
        except SendFailed as exc:
            log.warning("%s; the sweeper will send it", exc)
            return  # the broker is down: the sweeper sends them (sent_at is unset)
        mark_sent(session, job_id=job.id)
        session.commit()


def submit_job(session: Session, celery: Celery, *, team_id: uuid.UUID, spec: JobSpec) -> Job:
    """Commit a job whose spec passed its checks, then send it."""
    job = create_job(session, team_id=team_id, spec=spec)
    session.commit()
    send_jobs(session, celery, [job])
    return job


def submit_pipeline(session: Session, celery: Celery, *, team_id: uuid.UUID, spec: PipelineSpec) -> tuple[Job, list[Job]]:
    """Commit a pipeline and the jobs of its steps that need nothing, then send those; returns both."""
    pipeline, created = create_pipeline(session, team_id=team_id, spec=spec)
    session.commit()
    send_jobs(session, celery, created)
    return pipeline, created


def retry_pipeline(session: Session, celery: Celery, *, pipeline: Job) -> list[Job]:
    """Run a failed or cancelled pipeline again from its failed steps (``RetryRefused`` otherwise)."""
    created = _retry_pipeline(session, pipeline=pipeline)
    session.commit()
    send_jobs(session, celery, created)
    return created


def cancel_job(session: Session, celery: Celery, *, job: Job) -> Job:
    """Cancel a job or a pipeline and commit (``CancelRefused`` if it already ended). A step cancelled
    before it started ends at once and its pipeline moves on, as for any step that ended."""
    if job.type == PIPELINE_TYPE:
        cancel_pipeline(session, pipeline=job)
        session.commit()
        return job
    request_cancel(session, job=job)
    session.commit()
    if JobStatus(job.status).is_terminal:
        _advance_parent(session, celery, job_id=job.id)
    return job


def finish_job(session_factory: sessionmaker[Session], celery: Celery, *, job_id: uuid.UUID) -> None:
    """After a job's terminal status was committed: advance its pipeline, if it is a step of one, and
    send what that started. Any error is logged: the sweeper advances idle pipelines too."""
    try:
        with session_factory() as session:
            _advance_parent(session, celery, job_id=job_id)
    except Exception:
        log.exception("job %s: could not advance its pipeline; the sweeper will", job_id)


def _advance_parent(session: Session, celery: Celery, *, job_id: uuid.UUID) -> None:
    parent_id = session.scalar(select(Job.parent_id).where(Job.id == job_id))
    if parent_id is None:
        return
    advance_idle_pipeline(session, celery, pipeline_id=parent_id)


def advance_idle_pipeline(session: Session, celery: Celery, *, pipeline_id: uuid.UUID) -> list[Job]:
    """Advance a pipeline (in a transaction of its own) and send the jobs that started."""
    created = advance_pipeline(session, pipeline_id=pipeline_id)
    session.commit()
    send_jobs(session, celery, created)
    return created
