"""Celery app factory and the sending of jobs to their queues.

The gateway sends tasks by name (``belle.job.<type>``) with the job id as the only argument, so it
never imports worker code. Each type's queue is its declaration's (``belle_shared.job_types``).
Status lives in the database; there is no result backend.
"""

from __future__ import annotations

import logging
import uuid

from celery import Celery
from kombu import Queue

from belle_shared.job_types import queue_for, queues as registered_queues
from belle_shared.settings import Settings

log = logging.getLogger(__name__)

def task_name(job_type: str) -> str:
    return f"belle.job.{job_type}"


def make_celery(settings: Settings, *, queues: tuple[str, ...] | None = None) -> Celery:
    """A Celery app that declares ``queues`` (default: every registered job type's queue)."""
    queues = queues or registered_queues()
    app = Celery("belle", broker=settings.resolved_broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        # A message is acknowledged only when its task returns, and re-queued if the process
        # running it dies: no job is lost to a crash.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            # Longer than the longest job, or Redis hands a running job to a second worker. Dead
            # workers are detected by the job lease instead (see belle_shared.sweeper).
            "visibility_timeout": settings.visibility_timeout,
            # Isolates stacks (and test runs) sharing one Redis.
            "global_keyprefix": f"{settings.key_prefix}:",
        },
        broker_connection_retry_on_startup=True,
        task_queues=[Queue(name) for name in queues],
        task_default_queue=queues[0],
        task_create_missing_queues=False,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


class SendFailed(Exception):
    pass


def send_job(app: Celery, *, job_id: uuid.UUID, job_type: str, countdown: float | None = None) -> None:
    """Publish the job's message. Raises SendFailed quickly if the broker is unreachable.

    Callers have already committed the job row; a failed send is recovered by the sweeper.
    """
    try:
        app.send_task(
            task_name(job_type),
            args=[str(job_id)],
            queue=queue_for(job_type),
            task_id=f"{job_id}-{uuid.uuid4().hex[:8]}",
            countdown=countdown,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5},
        )
    except Exception as exc:  # kombu raises several connection error types
        raise SendFailed(f"could not send job {job_id} to the broker: {exc}") from exc
