"""Datasets (`/v1/datasets`)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel

from belle_shared.db.models import Dataset


class DatasetPublic(BaseModel):
    id: uuid.UUID
    object: str = "dataset"
    name: str
    format: str
    rows: int
    stats: dict[str, Any]
    source_file_id: uuid.UUID | None
    job_id: uuid.UUID | None
    sha256: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, dataset: Dataset) -> "DatasetPublic":
        return cls(id=dataset.id, name=dataset.name, format=dataset.format, rows=dataset.rows, stats=dataset.stats,
                   source_file_id=dataset.source_file_id, job_id=dataset.job_id, sha256=dataset.artifact.sha256,
                   created_at=dataset.created_at)


class DatasetsPublic(BaseModel):
    object: str = "list"
    data: list[DatasetPublic]
    count: int
    has_more: bool
