"""Worker runtime: the one task decorator, the job context, the lease heartbeat, the entry point.

A service declares its job functions on a ``JobRegistry``; each is a plain function
``run(spec, ctx) -> result dict`` that tests can call without Celery. The registry turns them into
Celery tasks that own everything around the function: claiming the job (skipping it if it already
ended or a live worker holds it), status transitions, the heartbeat, cancellation, and recording
the outcome with a typed error.

Over 400 lines on purpose: claim, heartbeat, outcome and retry are one state machine over the job
row (who holds the lease, when it may be taken over), and each part is only right beside the others.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import Field, ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from belle_shared.artifacts import ArtifactStore
from belle_shared.db.engine import make_engine, make_session_factory
from belle_shared.db.models import File, Job, JobStatus
from belle_shared.db.types import utcnow
from belle_shared.errors import JobCancelled, JobError, LeaseLost, RetryableJobError
from belle_shared.jobs import add_event, set_terminal
from belle_shared.logs import configure_logging
from belle_shared.job_types import UnknownJobType, parse_spec, queue_for
from belle_shared.lifecycle import finish_job
from belle_shared.queue import SendFailed, make_celery, send_job, task_name
from belle_shared.settings import Settings
from belle_shared.specs import JobSpec

log = logging.getLogger(__name__)


class WorkerSettings(Settings):
    worker_concurrency: int = Field(1, ge=1, description="Jobs run at once by this worker (GPU workers: 1).")


class WorkerRuntime:
    """Per-process resources. The engine is made lazily in each pool process (never shared across fork)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._pid: int | None = None
        self._session_factory: sessionmaker[Session] | None = None
        self._store: ArtifactStore | None = None
        self._celery: Celery | None = None

    def _ensure(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._session_factory = make_session_factory(make_engine(self.settings))
            self._store = ArtifactStore(self.settings.resolved_artifact_root)

    @property
    def session_factory(self) -> sessionmaker[Session]:
        self._ensure()
        return self._session_factory  # type: ignore[return-value]

    @property
    def store(self) -> ArtifactStore:
        self._ensure()
        return self._store  # type: ignore[return-value]

    @property
    def worker_id(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def bind_celery(self, app: Celery) -> None:
        self._celery = app

    @property
    def celery(self) -> Celery:
        if self._celery is None:
            raise RuntimeError("runtime not bound to a Celery app")
        return self._celery


class JobContext:
    """What a job function gets besides its spec: identity, storage, events, cancellation."""

    def __init__(self, *, job_id: uuid.UUID, team_id: uuid.UUID, attempt: int, runtime: WorkerRuntime):
        self.job_id = job_id
        self.team_id = team_id
        self.attempt = attempt
        self.settings = runtime.settings
        self.store = runtime.store
        self.session_factory = runtime.session_factory
        self.worker_id = runtime.worker_id
        self.cancelled = threading.Event()
        self.lease_lost = threading.Event()
        self._cancel_callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def event(self, message: str, *, kind: str = "log", level: str = "info", **data: Any) -> None:
        """Append an event to the job's log (its own short transaction)."""
        with self.session_factory() as session, session.begin():
            add_event(session, job_id=self.job_id, message=message, kind=kind, level=level, data=data or None)

    def progress(self, message: str, **metrics: Any) -> None:
        self.event(message, kind="progress", **metrics)

    def team_file(self, file_id: uuid.UUID, *, param: str) -> File:
        """The job's team's uploaded file (a detached row), or a JobError naming the spec field."""
        with self.session_factory() as session:
            file = session.scalar(select(File).where(File.id == file_id, File.team_id == self.team_id))
        if file is None:
            raise JobError("file_not_found", f"no file with id {file_id}", param=param)
        if not self.store.exists(file.uri):
            # Say which upload, not where the store keeps it (a server path or bucket is not the team's).
            raise JobError("file_missing", f"file {file.filename!r} ({file.id}) is recorded but its contents are "
                           "missing from the artifact store; upload it again", param=param)
        return file

    def check_cancelled(self) -> None:
        """Call at safe points; raises if the job must stop."""
        if self.lease_lost.is_set():
            raise LeaseLost(f"job {self.job_id} was given to another worker")
        if self.cancelled.is_set():
            raise JobCancelled()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` (from the heartbeat thread) when the job must stop, e.g. to kill a subprocess."""
        with self._lock:
            self._cancel_callbacks.append(callback)
        if self.cancelled.is_set():
            callback()

    def _stop(self, *, lease_lost: bool) -> None:
        if lease_lost:
            self.lease_lost.set()
        if self.cancelled.is_set():
            return
        self.cancelled.set()
        with self._lock:
            callbacks = list(self._cancel_callbacks)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("cancel callback failed")


class Heartbeat(threading.Thread):
    """Renews the job's lease and watches for cancellation and lost leases."""

    def __init__(self, ctx: JobContext, interval: float):
        super().__init__(name=f"heartbeat-{ctx.job_id}", daemon=True)
        self.ctx = ctx
        self.interval = interval
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                with self.ctx.session_factory() as session, session.begin():
                    row = session.execute(
                        update(Job)
                        .where(
                            Job.id == self.ctx.job_id,
                            Job.worker_id == self.ctx.worker_id,
                            Job.status == JobStatus.running,
                        )
                        .values(heartbeat_at=utcnow())
                        .returning(Job.cancel_requested)
                    ).first()
            except Exception:
                # A database blip must not kill the job; if it lasts, the lease expires.
                log.exception("heartbeat failed for job %s", self.ctx.job_id)
                continue
            if row is None:
                log.warning("job %s: lease lost, stopping", self.ctx.job_id)
                self.ctx._stop(lease_lost=True)
                return
            if row[0]:
                log.info("job %s: cancellation requested", self.ctx.job_id)
                self.ctx._stop(lease_lost=False)

    def stop(self) -> None:
        self._halt.set()


@dataclass
class Claim:
    spec: dict[str, Any]
    team_id: uuid.UUID
    attempt: int


def _holder_is_dead(holder: str | None) -> bool:
    """True if the lease holder is a process on this host that no longer exists."""
    if not holder or ":" not in holder:
        return False
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def claim_job(session_factory: sessionmaker[Session], settings: Settings, *, job_id: uuid.UUID, worker_id: str) -> Claim | None:
    """Take the job's lease, or return None if this delivery must be dropped."""
    now = utcnow()
    with session_factory() as session, session.begin():
        job = session.get(Job, job_id, with_for_update=True)
        if job is None:
            log.warning("job %s: no such job, message dropped", job_id)
            return None
        status = JobStatus(job.status)
        if status.is_terminal:
            log.info("job %s: already %s, redelivery skipped", job_id, status.value)
            return None
        if job.cancel_requested:
            set_terminal(session, job=job, status=JobStatus.cancelled, message="job cancelled before it started")
            return None
        if status == JobStatus.running:
            fresh = job.heartbeat_at is not None and now - job.heartbeat_at < dt.timedelta(seconds=settings.lease_timeout)
            if fresh and not _holder_is_dead(job.worker_id):
                log.info("job %s: held by live worker %s, redelivery dropped", job_id, job.worker_id)
                return None
            add_event(session, job_id=job.id, kind="status", level="warning",
                      message=f"taking over from lost worker {job.worker_id}")
        if job.attempts >= settings.max_attempts:
            set_terminal(
                session, job=job, status=JobStatus.failed,
                message=f"giving up after {job.attempts} attempts",
                error={"code": "too_many_attempts", "message": f"the job was started {job.attempts} times without finishing"},
            )
            return None
        job.status = JobStatus.running
        job.worker_id = worker_id
        job.heartbeat_at = now
        job.attempts += 1
        job.started_at = job.started_at or now
        add_event(
            session, job_id=job.id, kind="status", message=f"running on {worker_id} (attempt {job.attempts})",
            data={"status": "running", "attempt": job.attempts, "worker": worker_id},
        )
        return Claim(spec=dict(job.spec), team_id=job.team_id, attempt=job.attempts)


@dataclass
class Outcome:
    status: JobStatus
    message: str
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    retry_in: float | None = None


def record_outcome(session_factory: sessionmaker[Session], *, job_id: uuid.UUID, worker_id: str,
                   outcome: Outcome) -> Outcome | None:
    """Write the outcome if this worker still holds the job; returns what was written (None if the lease
    was lost). A retry of a job whose cancel was asked for is written as its cancellation: once asked
    to stop, a running job only ever shows `running` until it ends, never `queued` again."""
    with session_factory() as session, session.begin():
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.worker_id != worker_id or job.status != JobStatus.running:
            log.warning("job %s: lease lost before the outcome was recorded; outcome dropped", job_id)
            return None
        if outcome.status == JobStatus.queued and job.cancel_requested:
            outcome = Outcome(JobStatus.cancelled, f"job cancelled instead of retried ({outcome.message})")
        if outcome.status == JobStatus.queued:
            job.status = JobStatus.queued
            job.worker_id = None
            job.sent_at = utcnow()
            add_event(session, job_id=job_id, kind="status", level="warning", message=outcome.message,
                      data={"status": "queued", "error": outcome.error, "retry_in": outcome.retry_in})
            return outcome
        set_terminal(session, job=job, status=outcome.status, message=outcome.message,
                     error=outcome.error, result=outcome.result)
        return outcome


JobFunction = Callable[[JobSpec, JobContext], "dict[str, Any] | None"]


@dataclass
class JobHandler:
    job_type: str
    fn: JobFunction
    soft_time_limit: float | None = None
    time_limit: float | None = None
    retry_backoff: float = 10.0


@dataclass
class JobRegistry:
    """The job types a service runs, keyed by the spec's ``type``."""

    handlers: dict[str, JobHandler] = field(default_factory=dict)

    def job(self, job_type: str, *, soft_time_limit: float | None = None, time_limit: float | None = None,
            retry_backoff: float = 10.0) -> Callable[[JobFunction], JobFunction]:
        try:
            queue_for(job_type)
        except UnknownJobType as exc:
            raise ValueError(f"{exc.args[0]}; register it first (belle_shared.job_types)") from None

        def decorate(fn: JobFunction) -> JobFunction:
            self.handlers[job_type] = JobHandler(job_type, fn, soft_time_limit, time_limit, retry_backoff)
            return fn

        return decorate

    def install(self, app: Celery, runtime: WorkerRuntime) -> None:
        """Register one Celery task per job type on ``app``."""
        runtime.bind_celery(app)
        for handler in self.handlers.values():
            def task(job_id: str, _handler: JobHandler = handler) -> None:
                execute_job(_handler, runtime, uuid.UUID(job_id))

            app.task(
                name=task_name(handler.job_type),
                queue=queue_for(handler.job_type),
                acks_late=True,
                reject_on_worker_lost=True,
                ignore_result=True,
                soft_time_limit=handler.soft_time_limit,
                time_limit=handler.time_limit,
            )(task)


def execute_job(handler: JobHandler, runtime: WorkerRuntime, job_id: uuid.UUID) -> Outcome | None:
    """Claim, run and record one job. Returns the recorded outcome (None if the delivery was dropped)."""
    settings = runtime.settings
    worker_id = runtime.worker_id
    claim = claim_job(runtime.session_factory, settings, job_id=job_id, worker_id=worker_id)
    if claim is None:
        finish_job(runtime.session_factory, runtime.celery, job_id=job_id)  # the claim may have ended it (cancelled)
        return None
    ctx = JobContext(job_id=job_id, team_id=claim.team_id, attempt=claim.attempt, runtime=runtime)
    heartbeat = Heartbeat(ctx, settings.heartbeat_interval)
    heartbeat.start()
    try:
        outcome = _run(handler, claim, ctx, settings)
    finally:
        heartbeat.stop()
    if outcome is None:  # lease lost: another worker owns the job now
        return None
    outcome = record_outcome(runtime.session_factory, job_id=job_id, worker_id=worker_id, outcome=outcome)
    if outcome is None:
        return None
    if outcome.status == JobStatus.queued:
        try:
            send_job(runtime.celery, job_id=job_id, job_type=handler.job_type, countdown=outcome.retry_in)
        except SendFailed as exc:
            log.warning("%s; the sweeper will re-send it", exc)
    else:
        finish_job(runtime.session_factory, runtime.celery, job_id=job_id)
    return outcome


def _run(handler: JobHandler, claim: Claim, ctx: JobContext, settings: Settings) -> Outcome | None:
    try:
        spec = parse_spec(claim.spec)
        if spec.type != handler.job_type:
            raise JobError("invalid_spec", f"spec type {spec.type!r} sent to the {handler.job_type!r} task")
        result = handler.fn(spec, ctx)
        # Work that completed is recorded as succeeded even if a cancel arrived during its last step.
        return Outcome(JobStatus.succeeded, "job succeeded", result=result or {})
    except LeaseLost:
        return None
    except JobCancelled:
        return Outcome(JobStatus.cancelled, "job cancelled")
    except RetryableJobError as exc:
        if claim.attempt < settings.max_attempts:
            delay = handler.retry_backoff * (2 ** (claim.attempt - 1))
            return Outcome(JobStatus.queued, f"transient error, retrying in {delay:.0f}s: {exc.message}",
                           error=exc.to_dict(), retry_in=delay)
        return Outcome(JobStatus.failed, f"job failed: {exc.message}", error=exc.to_dict())
    except JobError as exc:
        return Outcome(JobStatus.failed, f"job failed: {exc.message}", error=exc.to_dict())
    except ValidationError as exc:
        error = {"code": "invalid_spec", "message": "the stored job spec is not valid",
                 "details": exc.errors(include_url=False, include_context=False)}
        return Outcome(JobStatus.failed, "job failed: invalid spec", error=error)
    except SoftTimeLimitExceeded:
        return Outcome(JobStatus.failed, "job failed: time limit exceeded",
                       error={"code": "time_limit", "message": "the job ran past its time limit"})
    except Exception as exc:
        if ctx.cancelled.is_set() and not ctx.lease_lost.is_set():
            # Killing a subprocess on cancel usually surfaces as an error: it is still a cancel.
            return Outcome(JobStatus.cancelled, "job cancelled")
        if ctx.lease_lost.is_set():
            return None
        log.exception("job %s crashed", ctx.job_id)
        error = {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}",
                 "details": {"traceback": traceback.format_exc(limit=20)[-4000:]}}
        return Outcome(JobStatus.failed, f"job failed: {type(exc).__name__}: {exc}", error=error)


def run_worker(registry: JobRegistry, *, queue: str, settings: WorkerSettings, extra_args: list[str] | None = None) -> None:
    """Start a Celery worker consuming ``queue`` with the registry's tasks. Blocks until shutdown."""
    configure_logging(settings)
    # Every queue is declared (a step that ends sends the next step of its pipeline to its own queue);
    # `--queues` below makes this worker consume only its own.
    app = make_celery(settings)
    runtime = WorkerRuntime(settings)
    registry.install(app, runtime)
    argv = [
        "worker",
        "--queues", queue,
        "--hostname", f"{queue}@{socket.gethostname()}.{os.getpid()}",
        "--pool", "prefork",
        "--concurrency", str(settings.worker_concurrency),
        "--loglevel", settings.log_level.upper(),
        "--without-gossip",
        "--without-mingle",
        *(extra_args or []),
    ]
    app.worker_main(argv)
