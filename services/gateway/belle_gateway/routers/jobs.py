"""Jobs: submit, list, inspect, follow events, cancel."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from belle_gateway.deps import CeleryDep, SessionDep, SettingsDep, StoreDep, TeamDep, json_object_body
from belle_gateway.errors import APIError, validation_error
from belle_gateway.openapi import EVENT_STREAM, error_responses
from belle_gateway.schemas import JobEventPublic, JobEventsPublic, JobPublic, JobsPublic
from belle_gateway.schemas.common import MAX_BIGINT
from belle_gateway.submission import cancel_job, submit_job
from belle_shared.db.models import Job, JobStatus
from belle_shared.job_types import spec_adapter
from belle_shared.jobs import get_team_job, list_events, list_jobs

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

StatusName = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]


@router.post("", status_code=201, response_model=JobPublic, responses=error_responses(409))
async def create(request: Request, session: SessionDep, celery: CeleryDep, settings: SettingsDep, store: StoreDep,
                 team: TeamDep):
    """Submit a job; the body is a job spec with its `type`."""
    payload = await json_object_body(request, what="a job spec")
    try:
        spec = spec_adapter().validate_python(payload)
    except ValidationError as exc:
        raise validation_error(exc) from None
    job = await run_in_threadpool(submit_job, session, celery, settings, store, team, spec)
    return JobPublic.of(job)


@router.get("", response_model=JobsPublic)
def list_(
    session: SessionDep,
    team: TeamDep,
    type: str | None = Query(None, description="Only jobs of this type."),
    status: StatusName | None = Query(None, description="Only jobs in this status."),
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=MAX_BIGINT),
):
    """List the team's jobs, newest first."""
    jobs, total = list_jobs(session, team_id=team.id, job_type=type, status=status, limit=limit, offset=offset)
    return JobsPublic(data=[JobPublic.of(j) for j in jobs], count=total, has_more=offset + len(jobs) < total)


def _team_job(session, team, job_id: uuid.UUID, *, for_update: bool = False) -> Job:
    job = get_team_job(session, team_id=team.id, job_id=job_id, for_update=for_update)
    if job is None:
        raise APIError(404, f"no job with id {job_id}", param="job_id", code="job_not_found")
    return job


@router.get("/{job_id}", response_model=JobPublic)
def get(job_id: uuid.UUID, session: SessionDep, team: TeamDep):
    """One job with its spec, status, error and result."""
    return JobPublic.of(_team_job(session, team, job_id))


@router.post("/{job_id}/cancel", response_model=JobPublic, responses=error_responses(409))
def cancel(job_id: uuid.UUID, session: SessionDep, celery: CeleryDep, team: TeamDep):
    """Cancel a queued job, or ask a running job to stop (status turns `cancelled` within seconds)."""
    return JobPublic.of(cancel_job(session, celery, _team_job(session, team, job_id, for_update=True), param="job_id"))


@router.get("/{job_id}/events", response_model=JobEventsPublic, responses=EVENT_STREAM)
async def events(
    request: Request,
    job_id: uuid.UUID,
    team: TeamDep,
    after: int = Query(0, ge=0, le=MAX_BIGINT, description="Only events with a larger id."),
    limit: int = Query(100, ge=1, le=1000),
    stream: bool = Query(False, description="Follow the job as server-sent events until it ends."),
):
    """The job's events in order; with `stream=true` (or `Accept: text/event-stream`) a live SSE stream."""
    # Short sessions only: a stream can last as long as the job, and must not hold a transaction.
    factory = request.app.state.session_factory
    if stream or "text/event-stream" in request.headers.get("accept", ""):
        await run_in_threadpool(_check_owner, factory, team, job_id)
        last_id = request.headers.get("last-event-id", "")
        start = after
        if last_id.isascii() and last_id.isdigit():  # anything else is not an id this stream sent: ignored
            if len(last_id) > 19 or int(last_id) > MAX_BIGINT:  # (int() refuses over 4300 digits)
                raise APIError(400, f"Last-Event-ID: not an event id: {last_id[:40]!r}", param="Last-Event-ID",
                               code="invalid_value")
            start = int(last_id)
        return StreamingResponse(
            _follow(factory, job_id, start, request.app.state.settings.sse_poll_interval),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    rows = await run_in_threadpool(_owned_events, factory, team, job_id, after, limit + 1)
    return JobEventsPublic(data=[JobEventPublic.of(e) for e in rows[:limit]], has_more=len(rows) > limit)


def _check_owner(factory, team, job_id: uuid.UUID) -> None:
    with factory() as session:
        _team_job(session, team, job_id)


def _owned_events(factory, team, job_id: uuid.UUID, after: int, limit: int):
    with factory() as session:
        _team_job(session, team, job_id)
        return list_events(session, job_id=job_id, after=after, limit=limit)


POLL_BATCH = 500


def _poll(factory, job_id: uuid.UUID, after: int):
    # The status first: events read after a terminal status include every event the job wrote.
    with factory() as session:
        status = session.get(Job, job_id).status
        rows = list_events(session, job_id=job_id, after=after, limit=POLL_BATCH)
        return [JobEventPublic.of(e) for e in rows], status


async def _follow(factory, job_id: uuid.UUID, after: int, interval: float):
    idle = 0.0
    while True:
        rows, status = await run_in_threadpool(_poll, factory, job_id, after)
        for event in rows:
            after = event.id
            yield f"id: {event.id}\nevent: job.event\ndata: {event.model_dump_json()}\n\n"
        # Ended, and this batch held the rest of its events: the stream ends now, not a poll later.
        if JobStatus(status).is_terminal and len(rows) < POLL_BATCH:
            yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
            return
        if rows:
            idle = 0.0
        else:
            idle += interval
            if idle >= 15:  # keep proxies from closing a quiet stream
                idle = 0.0
                yield ": keep-alive\n\n"
        await asyncio.sleep(interval)
