"""The sweeper: makes sure no job is lost between the database and the broker.

Four cases, each a short transaction:
1. A running job whose heartbeat stopped (its worker died): back to ``queued`` and re-sent, or
   failed with ``worker_lost`` once it has used ``max_attempts`` deliveries.
2. A queued job whose message was never sent (the sender died between commit and send): sent.
3. A queued job sent long ago and never picked up (a broker that lost its data): sent again.
4. A running pipeline with no step queued or running: advanced (see ``_advance_idle_pipelines``).

Duplicate messages are harmless: a worker claims a job only if no live worker holds it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field

from celery import Celery
from sqlalchemy import false, or_, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from belle_shared.db.models import Job, JobStatus
from belle_shared.db.types import utcnow
from belle_shared.jobs import add_event, mark_sent, set_terminal
from belle_shared.job_types import UnknownJobType
from belle_shared.lifecycle import advance_idle_pipeline, finish_job
from belle_shared.pipelines import PIPELINE_TYPE
from belle_shared.queue import SendFailed, send_job
from belle_shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    send_errors: int = 0
    pipelines_advanced: list[str] = field(default_factory=list)


def sweep(session_factory: sessionmaker[Session], celery: Celery, settings: Settings, *, now: dt.datetime | None = None) -> SweepReport:
    now = now or utcnow()
    report = SweepReport()
    lease_cutoff = now - dt.timedelta(seconds=settings.lease_timeout)
    requeued_ids = []
    failed_ids = []

    with session_factory() as session, session.begin():
        stale = session.scalars(
            select(Job)
            .where(Job.status == JobStatus.running, Job.heartbeat_at < lease_cutoff)
            .with_for_update(skip_locked=True)
            .limit(100)
        ).all()
        for job in stale:
            holder = job.worker_id
            if job.attempts >= settings.max_attempts:
                set_terminal(
                    session,
                    job=job,
                    status=JobStatus.failed,
                    message=f"worker {holder} stopped responding; giving up after {job.attempts} attempts",
                    error={"code": "worker_lost", "message": f"the job lost its worker {job.attempts} times"},
                )
                report.failed.append(str(job.id))
                failed_ids.append(job.id)
                continue
            job.status = JobStatus.queued
            job.worker_id = None
            job.sent_at = None
            add_event(
                session,
                job_id=job.id,
                kind="status",
                level="warning",
                message=f"worker {holder} stopped responding; job re-queued",
                data={"status": "queued", "lost_worker": holder},
            )
            requeued_ids.append(job.id)
            report.requeued.append(str(job.id))
    for job_id in failed_ids:
        finish_job(session_factory, celery, job_id=job_id)

    unsent_cutoff = now - dt.timedelta(seconds=settings.unsent_resend_after)
    resend_cutoff = now - dt.timedelta(seconds=settings.queued_resend_after)
    with session_factory() as session:
        to_send = session.execute(
            select(Job.id, Job.type)
            .where(
                Job.status == JobStatus.queued,
                Job.type != PIPELINE_TYPE,  # a pipeline row has no queue
                or_(
                    Job.id.in_(requeued_ids) if requeued_ids else false(),
                    (Job.sent_at.is_(None) & (Job.created_at < unsent_cutoff)),
                    Job.sent_at < resend_cutoff,
                ),
            )
            .limit(500)
        ).all()
    for job_id, job_type in to_send:
        try:
            send_job(celery, job_id=job_id, job_type=job_type)
        except SendFailed as exc:
            log.warning("sweeper: %s", exc)
            report.send_errors += 1
            break  # the broker is down; the next sweep tries again
        except UnknownJobType as exc:
            # A type declared by a module this process has not imported (BELLE_JOB_TYPE_MODULES).
            log.warning("sweeper: job %s not sent: %s", job_id, exc.args[0])
            continue
        with session_factory() as session, session.begin():
            mark_sent(session, job_id=job_id)
        report.sent.append(str(job_id))
    report.pipelines_advanced = _advance_idle_pipelines(session_factory, celery)
    if report.requeued or report.failed or report.sent:
        log.info("sweeper: requeued=%d failed=%d sent=%d", len(report.requeued), len(report.failed), len(report.sent))
    return report


def _advance_idle_pipelines(session_factory: sessionmaker[Session], celery: Celery) -> list[str]:
    """4. A running pipeline none of whose steps is queued or running: its last step ended but the
    process that ended it did not advance the pipeline (it died, or the sweeper itself failed the
    step above). Advancing starts the next steps or ends the pipeline."""
    child = aliased(Job)
    active = (select(child.id).where(child.parent_id == Job.id,
                                     child.status.in_([JobStatus.queued, JobStatus.running, JobStatus.validating_files]))
              .exists())
    with session_factory() as session:
        idle = session.scalars(
            select(Job.id).where(Job.type == PIPELINE_TYPE, Job.status == JobStatus.running, ~active).limit(100)
        ).all()
    advanced = []
    for pipeline_id in idle:
        with session_factory() as session:
            advance_idle_pipeline(session, celery, pipeline_id=pipeline_id)
        advanced.append(str(pipeline_id))
    return advanced


class SweeperThread(threading.Thread):
    """Runs ``sweep`` every ``settings.sweep_interval`` seconds until stopped."""

    def __init__(self, session_factory: sessionmaker[Session], celery: Celery, settings: Settings):
        super().__init__(name="belle-sweeper", daemon=True)
        self._args = (session_factory, celery, settings)
        self._stop_event = threading.Event()
        self.interval = settings.sweep_interval

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                sweep(*self._args)
            except Exception:  # never let one bad sweep stop the loop
                log.exception("sweeper: sweep failed")

    def stop(self) -> None:
        self._stop_event.set()
