"""A model's lineage: from any model back to the base it came from, with what made each link.

For each model of the chain (the model, the model it was trained or quantized from, ... the base):
the job that made it, the dataset it was trained or calibrated on and the job that made that
dataset, the eval scores it got, and the pipeline the job ran in. Only the team's own rows are
followed; a shared base model ends the chain.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from belle_gateway.eval_scores import OVERALL_KEYS
from belle_gateway.schemas.lineage import DatasetLink, EvalLink, JobLink, LineageNode, LineagePublic, PipelineLink
from belle_shared.db.models import Dataset, EvalResult, Job, Model, Team
from belle_shared.pipelines import PIPELINE_TYPE

MAX_DEPTH = 16  # a chain longer than this is cut (a cycle would be a bug, never a hang)


def _team_job(session: Session, team: Team, job_id: uuid.UUID | None) -> Job | None:
    if job_id is None:
        return None
    job = session.get(Job, job_id)
    return job if job is not None and job.team_id == team.id else None


def _evals(session: Session, model: Model) -> list[EvalLink]:
    rows = session.scalars(select(EvalResult).where(EvalResult.model_id == model.id)
                           .order_by(EvalResult.created_at, EvalResult.id)).all()
    by_job: dict[uuid.UUID, EvalLink] = {}
    for row in rows:
        link = by_job.get(row.job_id)
        if link is None:
            job = session.get(Job, row.job_id)
            link = by_job[row.job_id] = EvalLink(
                job_id=row.job_id, finished_at=job.finished_at.isoformat() if job and job.finished_at else None,
                overall={}, classes={})
        if row.task_class == "overall":
            link.overall[row.metric] = row.score
        elif row.task_class not in OVERALL_KEYS:
            link.classes.setdefault(row.task_class, {})[row.metric] = row.score
    return list(by_job.values())


def model_lineage(session: Session, team: Team, model: Model, *, owner_of) -> LineagePublic:
    """``owner_of(model)`` names a model's owner as `/v1/models` does."""
    chain: list[LineageNode] = []
    pipelines: dict[uuid.UUID, PipelineLink] = {}
    seen: set[uuid.UUID] = set()
    current: Model | None = model
    while current is not None and current.id not in seen and len(chain) < MAX_DEPTH:
        seen.add(current.id)
        job = _team_job(session, team, current.job_id)
        dataset = None
        if current.dataset_id is not None:
            row = session.get(Dataset, current.dataset_id)
            if row is not None and row.team_id == team.id:
                made = _team_job(session, team, row.job_id)
                stats = row.stats or {}
                dataset = DatasetLink(id=row.id, name=row.name, format=row.format, rows=row.rows,
                                      dropped=stats.get("dropped") or {}, source_file_id=row.source_file_id,
                                      made_by=JobLink.of(made) if made else None,
                                      sampled_from=stats.get("model") if row.format == "preferences" else None,
                                      judge=stats.get("judge") if row.format == "preferences" else None)
                if made is not None:
                    _add_pipeline(session, pipelines, made)
        if job is not None:
            _add_pipeline(session, pipelines, job)
        chain.append(LineageNode(
            model={"id": current.name, "belle_id": str(current.id), "kind": current.kind,
                   "owned_by": owner_of(current)},
            made_by=JobLink.of(job) if job else None, dataset=dataset, evals=_evals(session, current)))
        parent = session.get(Model, current.parent_model_id) if current.parent_model_id else None
        current = parent if parent is not None and parent.team_id in (None, team.id) else None
    return LineagePublic(model=model.name, chain=chain, pipelines=list(pipelines.values()))


def _add_pipeline(session: Session, pipelines: dict[uuid.UUID, PipelineLink], job: Job) -> None:
    if job.parent_id is None or job.parent_id in pipelines:
        return
    parent = session.get(Job, job.parent_id)
    if parent is not None and parent.type == PIPELINE_TYPE:
        pipelines[parent.id] = PipelineLink(id=parent.id, name=(parent.spec or {}).get("name"), status=parent.status)
