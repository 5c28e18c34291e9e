"""What the gateway adds to the job lifecycle (``belle_shared.lifecycle``): a job is submitted only if
this deployment serves its type and its spec passes its type's checks, and submissions are counted.
Used by every route that starts or cancels jobs (jobs, pipelines, fine-tuning)."""

from __future__ import annotations

from belle_gateway.errors import APIError
from belle_gateway.metrics import JOBS_SUBMITTED
from belle_shared import lifecycle
from belle_shared.db.models import Job
from belle_shared.errors import SpecRefused
from belle_shared.job_types import run_spec_checks
from belle_shared.jobs import CancelRefused
from belle_shared.pipelines import PipelineSpec
from belle_shared.specs import JobSpec


def check_job_spec(session, settings, store, team, spec: JobSpec) -> None:
    """The type is served here and the spec passes its type's checks; an APIError names the field."""
    if spec.type not in settings.enabled_job_types:
        raise APIError(400, f"job type {spec.type!r} is not served by this deployment "
                       f"(enabled: {', '.join(settings.enabled_job_types)})", param="type",
                       code="job_type_unavailable")
    try:
        run_spec_checks(session, team, spec, store, settings)
    except SpecRefused as exc:
        raise APIError(exc.status, exc.message, param=exc.param, code=exc.code) from None


def submit_job(session, celery, settings, store, team, spec: JobSpec) -> Job:
    """Check, commit and send one job."""
    check_job_spec(session, settings, store, team, spec)
    job = lifecycle.submit_job(session, celery, team_id=team.id, spec=spec)
    JOBS_SUBMITTED.labels(type=spec.type).inc()
    return job


def submit_pipeline(session, celery, team, spec: PipelineSpec) -> Job:
    """Commit and send a pipeline whose steps were checked (``routers.pipelines.check_steps``)."""
    pipeline, created = lifecycle.submit_pipeline(session, celery, team_id=team.id, spec=spec)
    for job in created:
        JOBS_SUBMITTED.labels(type=job.type).inc()
    return pipeline


def cancel_job(session, celery, job: Job, *, param: str, code: str = "job_finished") -> Job:
    """Cancel a job or a pipeline; one that already ended is a 409 on ``param``."""
    try:
        return lifecycle.cancel_job(session, celery, job=job)
    except CancelRefused as exc:
        raise APIError(409, str(exc), param=param, code=code) from None
