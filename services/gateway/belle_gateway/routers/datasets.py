"""Datasets: the conversation datasets that import and generation jobs recorded."""

from __future__ import annotations

import uuid

from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select

from belle_gateway.deps import SessionDep, StoreDep, TeamDep
from belle_gateway.errors import APIError
from belle_gateway.schemas import DatasetPublic, DatasetsPublic
from belle_gateway.schemas.common import MAX_BIGINT
from belle_shared.db.models import Artifact, Dataset

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.get("", response_model=DatasetsPublic)
def list_(session: SessionDep, team: TeamDep, limit: int = Query(20, ge=1, le=100),
          offset: int = Query(0, ge=0, le=MAX_BIGINT)):
    """The team's datasets, newest first."""
    where = Dataset.team_id == team.id
    total = session.scalar(select(func.count()).select_from(Dataset).where(where)) or 0
    rows = session.scalars(select(Dataset).where(where).order_by(Dataset.created_at.desc()).limit(limit).offset(offset)).all()
    return DatasetsPublic(data=[DatasetPublic.of(d) for d in rows], count=total, has_more=offset + len(rows) < total)


def _team_dataset(session, team, dataset_id: uuid.UUID) -> Dataset:
    dataset = session.scalar(select(Dataset).where(Dataset.id == dataset_id, Dataset.team_id == team.id))
    if dataset is None:
        raise APIError(404, f"no dataset with id {dataset_id}", param="dataset_id", code="dataset_not_found")
    return dataset


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get(dataset_id: uuid.UUID, session: SessionDep, team: TeamDep):
    """One dataset with its statistics."""
    return DatasetPublic.of(_team_dataset(session, team, dataset_id))


@router.get("/{dataset_id}/content", response_class=StreamingResponse,
            responses={200: {"content": {"application/jsonl": {"schema": {"type": "string"}}}}})
def content(
    dataset_id: uuid.UUID, session: SessionDep, store: StoreDep, team: TeamDep,
    format: Literal["conversations", "instructions"] = Query(
        "conversations", description="`conversations` (canonical, what training reads) or `instructions` "
        "(BELLE's instruction/input/output rows; generated single-turn datasets only)."),
):
    """Download the dataset's rows as JSONL."""
    dataset = _team_dataset(session, team, dataset_id)
    uri = dataset.artifact.uri
    if format == "instructions":
        artifact = None
        if dataset.job_id is not None:
            artifact = session.scalar(select(Artifact).where(Artifact.job_id == dataset.job_id,
                                                             Artifact.kind == "dataset_instructions"))
        if artifact is None:
            raise APIError(400, f"dataset {dataset_id} has no instruction/input/output form (only generated "
                           "single-turn datasets do); ask for format=conversations", param="format",
                           code="format_unavailable")
        uri = artifact.uri
    session.close()  # the body streams for a while; the connection goes back to the pool now

    def chunks():
        with store.open(uri, "rb") as f:
            while chunk := f.read(1 << 16):
                yield chunk

    filename = f"{dataset.name}.{format}.jsonl".replace('"', "")
    return StreamingResponse(chunks(), media_type="application/jsonl",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})
