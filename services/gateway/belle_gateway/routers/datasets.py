"""Datasets: the conversation datasets that import and generation jobs recorded."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from belle_gateway.deps import SessionDep, TeamDep
from belle_gateway.errors import APIError
from belle_gateway.schemas import DatasetPublic, DatasetsPublic
from belle_shared.db.models import Dataset

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.get("", response_model=DatasetsPublic)
def list_(session: SessionDep, team: TeamDep, limit: int = Query(20, ge=1, le=100), offset: int = Query(0, ge=0)):
    """The team's datasets, newest first."""
    where = Dataset.team_id == team.id
    total = session.scalar(select(func.count()).select_from(Dataset).where(where)) or 0
    rows = session.scalars(select(Dataset).where(where).order_by(Dataset.created_at.desc()).limit(limit).offset(offset)).all()
    return DatasetsPublic(data=[DatasetPublic.of(d) for d in rows], count=total, has_more=offset + len(rows) < total)


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get(dataset_id: uuid.UUID, session: SessionDep, team: TeamDep):
    """One dataset with its statistics."""
    dataset = session.scalar(select(Dataset).where(Dataset.id == dataset_id, Dataset.team_id == team.id))
    if dataset is None:
        raise APIError(404, f"no dataset with id {dataset_id}", param="dataset_id", code="dataset_not_found")
    return DatasetPublic.of(dataset)
