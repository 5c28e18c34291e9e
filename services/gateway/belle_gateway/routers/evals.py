"""Evals: the team's eval jobs, their scores per model and class, the question-level items behind
every score, the HTML report, and several evals side by side.

An eval is submitted like any job (`POST /v1/jobs` with `{"type": "eval", ...}`); these routes read
what the evaluator stored: EvalResult rows, and the job's `eval_summary` and `eval_report` artifacts.
"""

from __future__ import annotations

import json
import uuid

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from belle_gateway.deps import SessionDep, StoreDep, TeamDep
from belle_gateway.errors import APIError
from belle_gateway.eval_scores import comparison, eval_rows, group_scores, model_names
from belle_gateway.routers.jobs import StatusName
from belle_gateway.schemas import (
    EvalAnswerPublic,
    EvalComparePublic,
    EvalDetailPublic,
    EvalItemPublic,
    EvalItemsPublic,
    EvalPublic,
    EvalsPublic,
)
from belle_gateway.schemas.common import MAX_BIGINT
from belle_shared.artifacts import ArtifactStore
from belle_shared.db.models import Artifact, Job, JobStatus
from belle_shared.jobs import get_team_job, list_jobs
from belle_shared.specs import canonical_eval_class

router = APIRouter(prefix="/v1/evals", tags=["evals"])

MAX_COMPARED = 20  # evals in one comparison
# The report is the evaluator's own static page (no scripts, no external URLs); the policy keeps it so
# even if an answer ever slipped through unescaped.
REPORT_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                  "X-Content-Type-Options": "nosniff"}


def _team_eval(session, team, eval_id: uuid.UUID) -> Job:
    job = get_team_job(session, team_id=team.id, job_id=eval_id)
    if job is None or job.type != "eval":
        raise APIError(404, f"no eval with id {eval_id}", param="eval_id", code="eval_not_found")
    return job


def _artifact_text(session, store: ArtifactStore, team, job: Job, kind: str, what: str) -> str:
    artifact = session.scalars(
        select(Artifact).where(Artifact.job_id == job.id, Artifact.team_id == team.id, Artifact.kind == kind)
        .order_by(Artifact.created_at.desc()).limit(1)
    ).first()
    if artifact is None:
        raise APIError(404, f"eval {job.id} has no {what} (status {job.status}); it is written when the job succeeds",
                       param="eval_id", code=f"{kind}_not_found")
    with store.open(artifact.uri, "rb") as f:
        return f.read().decode("utf-8")


def _item(item: dict, models: list[dict]) -> EvalItemPublic:
    """One summary item with its answers keyed by model name (the summary keys them by model id)."""
    answers = item.get("answers") or {}
    return EvalItemPublic(
        index=item["index"], line=item.get("line"), cls=item["class"], question=item["question"], std_answer=item.get("std_answer"),
        answers={str(m.get("name")): EvalAnswerPublic(**answers[m.get("id")]) for m in models if m.get("id") in answers},
    )


@router.get("", response_model=EvalsPublic)
def list_(
    session: SessionDep,
    team: TeamDep,
    status: StatusName | None = Query(None, description="Only evals in this status."),
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=MAX_BIGINT),
):
    """The team's eval jobs, newest first, with each model's overall score."""
    jobs, total = list_jobs(session, team_id=team.id, job_type="eval", status=status, limit=limit, offset=offset)
    return EvalsPublic(data=[EvalPublic.of(j) for j in jobs], count=total, has_more=offset + len(jobs) < total)


def _compared_job(session, team, raw: str) -> Job:
    try:
        eval_id = uuid.UUID(raw)
    except ValueError:
        raise APIError(400, f"ids: {raw!r} is not an eval id", param="ids", code="invalid_id") from None
    job = get_team_job(session, team_id=team.id, job_id=eval_id)
    if job is None:
        raise APIError(400, f"ids: no eval with id {raw}", param="ids", code="eval_not_found")
    if job.type != "eval":
        raise APIError(400, f"ids: job {raw} is a {job.type} job, not an eval", param="ids", code="not_an_eval")
    if job.status != JobStatus.succeeded:
        raise APIError(400, f"ids: eval {raw} is {job.status}; only an eval that succeeded has scores to compare",
                       param="ids", code="eval_not_finished")
    return job


@router.get("/compare", response_model=EvalComparePublic)
def compare(
    session: SessionDep,
    team: TeamDep,
    ids: str = Query(description="Eval ids, comma-separated."),
):
    """Several evals side by side: a row per class, a column per (eval, model), each eval's primary metric."""
    wanted = list(dict.fromkeys(part.strip() for part in ids.split(",") if part.strip()))
    if not wanted:
        raise APIError(400, "ids: give one or more eval ids, comma-separated", param="ids", code="invalid_value")
    if len(wanted) > MAX_COMPARED:
        raise APIError(400, f"ids: at most {MAX_COMPARED} evals at once ({len(wanted)} given)", param="ids",
                       code="invalid_value")
    evals = []
    for raw in wanted:
        job = _compared_job(session, team, raw)
        rows = eval_rows(session, job_id=job.id)
        names = model_names(session, job=job, rows=rows)
        evals.append((job, group_scores(rows, names, [m.get("name") for m in (job.result or {}).get("models") or []])))
    columns, rows, notes = comparison(evals)
    return EvalComparePublic(columns=columns, rows=rows, notes=notes)


@router.get("/{eval_id}", response_model=EvalDetailPublic)
def get(eval_id: uuid.UUID, session: SessionDep, team: TeamDep):
    """One eval: status, and once it succeeded the scores per model, class and metric."""
    job = _team_eval(session, team, eval_id)
    result = job.result or {}
    finished = job.status == JobStatus.succeeded
    scores = {}
    if finished:
        rows = eval_rows(session, job_id=job.id)
        scores = group_scores(rows, model_names(session, job=job, rows=rows),
                              [m.get("name") for m in result.get("models") or []])
    return EvalDetailPublic(
        **EvalPublic.fields_of(job), scores=scores, judge=result.get("judge"), judge_totals=result.get("judge_totals"),
        report_url=f"/v1/evals/{job.id}/report" if finished else None,
        items_url=f"/v1/evals/{job.id}/items" if finished else None,
    )


@router.get("/{eval_id}/items", response_model=EvalItemsPublic)
def items(
    eval_id: uuid.UUID,
    session: SessionDep,
    store: StoreDep,
    team: TeamDep,
    model: str | None = Query(None, description="Only this model's answers (its name or id)."),
    cls: str | None = Query(None, alias="class", description="Only questions of this class."),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_BIGINT),
):
    """The questions behind the scores: each model's answer, the judge's reply and the parsed score."""
    job = _team_eval(session, team, eval_id)
    summary = json.loads(_artifact_text(session, store, team, job, "eval_summary", "item records"))
    models = summary.get("models") or []
    if model is not None:
        models = [m for m in models if model in (m.get("name"), m.get("id"))]
        if not models:
            known = ", ".join(str(m.get("name")) for m in summary.get("models") or [])
            raise APIError(400, f"model: eval {job.id} did not score a model {model!r} (its models: {known})",
                           param="model", code="unknown_model")
    wanted_class = None
    if cls is not None:
        classes = summary.get("classes") or []
        wanted_class = canonical_eval_class(cls) or cls
        if wanted_class not in classes:
            raise APIError(400, f"class: eval {job.id} has no class {cls!r} (its classes: {', '.join(classes)})",
                           param="class", code="unknown_class")
    chosen = [item for item in summary.get("items") or [] if wanted_class is None or item.get("class") == wanted_class]
    page = chosen[offset:offset + limit]
    return EvalItemsPublic(data=[_item(item, models) for item in page], count=len(chosen),
                           has_more=offset + len(page) < len(chosen))


@router.get("/{eval_id}/report", response_class=HTMLResponse)
def report(eval_id: uuid.UUID, session: SessionDep, store: StoreDep, team: TeamDep):
    """The eval's static HTML report: the score table, a bar chart per class and every item."""
    job = _team_eval(session, team, eval_id)
    html = _artifact_text(session, store, team, job, "eval_report", "report")
    return HTMLResponse(html, headers=REPORT_HEADERS)
