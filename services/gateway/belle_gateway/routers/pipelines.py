"""Pipelines: several jobs in one request, each step started once the outputs it names exist.

The spec and the rules live in ``belle_shared.pipelines`` (the workers advance pipelines too). A
pipeline is a job row, so ``GET /v1/jobs/{id}/events`` follows it; its steps' jobs are ordinary jobs.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from belle_gateway.deps import CeleryDep, SessionDep, SettingsDep, StoreDep, TeamDep, json_object_body
from belle_gateway.errors import APIError, validation_error
from belle_gateway.metrics import JOBS_SUBMITTED
from belle_gateway.schemas import PipelinePublic, PipelinesPublic
from belle_gateway.spec_checks import run_spec_checks
from belle_shared.db.models import Job
from belle_shared.jobs import CancelRefused, get_team_job, list_jobs
from belle_shared.pipelines import (
    PIPELINE_TYPE, PipelineSpec, PipelineSpecError, RetryRefused, StepSpecInvalid, cancel_pipeline,
    check_pipeline, create_pipeline, pipeline_states, retry_pipeline, send_created,
)

router = APIRouter(prefix="/v1/pipelines", tags=["pipelines"])


def check_steps(session, settings, store, team, spec: PipelineSpec) -> None:
    """Every step as far as it can be checked before it runs: the job type is served here, the spec is
    valid, and the files, datasets and models it names exist. A field that refers to an earlier
    step's output is checked when that step starts (its job fails naming the field if it is wrong)."""
    try:
        job_specs = check_pipeline(spec)
    except PipelineSpecError as exc:
        raise APIError(400, exc.message, param=exc.param, code=exc.code) from None
    except StepSpecInvalid as exc:
        raise validation_error(exc.error, prefix=exc.prefix) from None
    for index, (step, job_spec) in enumerate(zip(spec.steps, job_specs)):
        where = f"steps[{index}].spec"
        if job_spec.type not in settings.enabled_job_types:
            raise APIError(400, f"{where}.type: job type {job_spec.type!r} is not served by this deployment "
                           f"(enabled: {', '.join(settings.enabled_job_types)})", param=f"{where}.type",
                           code="job_type_unavailable")
        try:
            run_spec_checks(session, team, job_spec, store, settings)  # they skip the stand-ins of references
        except APIError as exc:
            raise APIError(exc.status, f"steps[{index}] ({step.name}): {exc.message}",
                           param=f"{where}.{exc.param}" if exc.param else where, code=exc.code) from None


def _submit(session, factory, celery, settings, store, team, spec: PipelineSpec) -> Job:
    check_steps(session, settings, store, team, spec)
    pipeline, created = create_pipeline(session, team_id=team.id, spec=spec)
    session.commit()
    for job in created:
        JOBS_SUBMITTED.labels(type=job.type).inc()
    send_created(factory, celery, created)
    return pipeline


def _team_pipeline(session, team, pipeline_id: uuid.UUID, *, for_update: bool = False) -> Job:
    job = get_team_job(session, team_id=team.id, job_id=pipeline_id, for_update=for_update)
    if job is None or job.type != PIPELINE_TYPE:
        raise APIError(404, f"no pipeline with id {pipeline_id}", param="pipeline_id", code="pipeline_not_found")
    return job


def _public(session, pipeline: Job) -> PipelinePublic:
    return PipelinePublic.of(pipeline, pipeline_states(session, pipeline))


@router.post("", status_code=201, response_model=PipelinePublic)
async def create(request: Request, session: SessionDep, celery: CeleryDep, settings: SettingsDep, store: StoreDep,
                 team: TeamDep):
    """Submit a pipeline: named steps, each a job spec; `"${step.output}"` refers to an earlier step's output."""
    payload = await json_object_body(request, what="a pipeline spec")
    payload.setdefault("type", PIPELINE_TYPE)
    try:
        spec = PipelineSpec.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc) from None
    pipeline = await run_in_threadpool(_submit, session, request.app.state.session_factory, celery, settings, store,
                                       team, spec)
    return await run_in_threadpool(_public, session, pipeline)


@router.get("", response_model=PipelinesPublic)
def list_(session: SessionDep, team: TeamDep, limit: int = Query(20, ge=1, le=100), offset: int = Query(0, ge=0)):
    """The team's pipelines, newest first."""
    rows, total = list_jobs(session, team_id=team.id, job_type=PIPELINE_TYPE, limit=limit, offset=offset)
    return PipelinesPublic(data=[_public(session, p) for p in rows], count=total, has_more=offset + len(rows) < total)


@router.get("/{pipeline_id}", response_model=PipelinePublic)
def get(pipeline_id: uuid.UUID, session: SessionDep, team: TeamDep):
    """One pipeline with every step's status, job and result (or why it has not run)."""
    return _public(session, _team_pipeline(session, team, pipeline_id))


@router.post("/{pipeline_id}/cancel", response_model=PipelinePublic)
def cancel(pipeline_id: uuid.UUID, session: SessionDep, team: TeamDep):
    """Cancel the running and queued steps and start no more (status turns `cancelled` within seconds)."""
    pipeline = _team_pipeline(session, team, pipeline_id, for_update=True)
    try:
        cancel_pipeline(session, pipeline=pipeline)
    except CancelRefused as exc:
        raise APIError(409, str(exc), param="pipeline_id", code="pipeline_finished") from None
    session.commit()
    return _public(session, pipeline)


@router.post("/{pipeline_id}/retry", response_model=PipelinePublic)
def retry(pipeline_id: uuid.UUID, request: Request, session: SessionDep, celery: CeleryDep, team: TeamDep):
    """Run a failed or cancelled pipeline again from its failed steps; succeeded steps are not repeated."""
    pipeline = _team_pipeline(session, team, pipeline_id, for_update=True)
    try:
        created = retry_pipeline(session, pipeline=pipeline)
    except RetryRefused as exc:
        raise APIError(409, str(exc), param="pipeline_id", code="pipeline_not_retryable") from None
    session.commit()
    send_created(request.app.state.session_factory, celery, created)
    return _public(session, pipeline)
