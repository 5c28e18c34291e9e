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
from belle_gateway.openapi import error_responses
from belle_gateway.schemas import PipelinePublic, PipelinesPublic
from belle_gateway.schemas.common import MAX_BIGINT
from belle_gateway.submission import cancel_job, check_job_spec, submit_pipeline
from belle_shared.db.models import Job
from belle_shared.jobs import get_team_job, list_jobs
from belle_shared.lifecycle import retry_pipeline
from belle_shared.pipelines import (
    PIPELINE_TYPE, PipelineSpec, PipelineSpecError, RetryRefused, StepSpecInvalid, check_pipeline, pipeline_states,
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
        try:
            check_job_spec(session, settings, store, team, job_spec)  # the checks skip the stand-ins of references
        except APIError as exc:
            raise APIError(exc.status, f"steps[{index}] ({step.name}): {exc.message}",
                           param=f"{where}.{exc.param}" if exc.param else where, code=exc.code) from None


def _submit(session, celery, settings, store, team, spec: PipelineSpec) -> Job:
    check_steps(session, settings, store, team, spec)
    return submit_pipeline(session, celery, team, spec)


def _team_pipeline(session, team, pipeline_id: uuid.UUID, *, for_update: bool = False) -> Job:
    job = get_team_job(session, team_id=team.id, job_id=pipeline_id, for_update=for_update)
    if job is None or job.type != PIPELINE_TYPE:
        raise APIError(404, f"no pipeline with id {pipeline_id}", param="pipeline_id", code="pipeline_not_found")
    return job


def _public(session, pipeline: Job) -> PipelinePublic:
    return PipelinePublic.of(pipeline, pipeline_states(session, pipeline))


@router.post("", status_code=201, response_model=PipelinePublic, responses=error_responses(409))
async def create(request: Request, session: SessionDep, celery: CeleryDep, settings: SettingsDep, store: StoreDep,
                 team: TeamDep):
    """Submit a pipeline: named steps, each a job spec; `"${step.output}"` refers to an earlier step's output."""
    payload = await json_object_body(request, what="a pipeline spec")
    payload.setdefault("type", PIPELINE_TYPE)
    try:
        spec = PipelineSpec.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc) from None
    pipeline = await run_in_threadpool(_submit, session, celery, settings, store, team, spec)
    return await run_in_threadpool(_public, session, pipeline)


@router.get("", response_model=PipelinesPublic)
def list_(session: SessionDep, team: TeamDep, limit: int = Query(20, ge=1, le=100),
          offset: int = Query(0, ge=0, le=MAX_BIGINT)):
    """The team's pipelines, newest first."""
    rows, total = list_jobs(session, team_id=team.id, job_type=PIPELINE_TYPE, limit=limit, offset=offset)
    return PipelinesPublic(data=[_public(session, p) for p in rows], count=total, has_more=offset + len(rows) < total)


@router.get("/{pipeline_id}", response_model=PipelinePublic)
def get(pipeline_id: uuid.UUID, session: SessionDep, team: TeamDep):
    """One pipeline with every step's status, job and result (or why it has not run)."""
    return _public(session, _team_pipeline(session, team, pipeline_id))


@router.post("/{pipeline_id}/cancel", response_model=PipelinePublic, responses=error_responses(409))
def cancel(pipeline_id: uuid.UUID, session: SessionDep, celery: CeleryDep, team: TeamDep):
    """Cancel the running and queued steps and start no more (status turns `cancelled` within seconds)."""
    pipeline = _team_pipeline(session, team, pipeline_id, for_update=True)
    cancel_job(session, celery, pipeline, param="pipeline_id", code="pipeline_finished")
    return _public(session, pipeline)


@router.post("/{pipeline_id}/retry", response_model=PipelinePublic, responses=error_responses(409))
def retry(pipeline_id: uuid.UUID, session: SessionDep, celery: CeleryDep, team: TeamDep):
    """Run a failed or cancelled pipeline again from its failed steps; succeeded steps are not repeated."""
    pipeline = _team_pipeline(session, team, pipeline_id, for_update=True)
    try:
        retry_pipeline(session, celery, pipeline=pipeline)
    except RetryRefused as exc:
        raise APIError(409, str(exc), param="pipeline_id", code="pipeline_not_retryable") from None
    return _public(session, pipeline)
