"""A model's lineage (`/v1/models/{model}/lineage`): the chain from the model back to its base, each
link with the job, dataset, eval scores and pipeline that made it. `belle_gateway.lineage` builds it."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel

from belle_shared.db.models import Job


class JobLink(BaseModel):
    id: uuid.UUID
    type: str
    status: str
    created_at: str
    finished_at: str | None
    pipeline_id: uuid.UUID | None
    pipeline_step: str | None

    @classmethod
    def of(cls, job: Job) -> "JobLink":
        return cls(id=job.id, type=job.type, status=job.status, created_at=job.created_at.isoformat(),
                   finished_at=job.finished_at.isoformat() if job.finished_at else None,
                   pipeline_id=job.parent_id, pipeline_step=job.pipeline_step)


class DatasetLink(BaseModel):
    id: uuid.UUID
    name: str
    format: str  # conversations, or preferences (DPO pairs)
    rows: int
    dropped: dict[str, int]
    source_file_id: uuid.UUID | None
    made_by: JobLink | None
    # Preference pairs made by a preference_pairs job: the model that answered and the judge that scored
    # (None: scored by reference answers), so a DPO model's lineage names the judge behind its pairs.
    sampled_from: dict | None = None
    judge: dict | None = None


class EvalLink(BaseModel):
    """One eval job's scores of this model: its overall score per metric, and each class's."""

    job_id: uuid.UUID
    finished_at: str | None
    overall: dict[str, float | None]
    classes: dict[str, dict[str, float | None]]


class LineageNode(BaseModel):
    model: dict[str, Any]  # id (name), belle_id, kind, owned_by
    made_by: JobLink | None
    dataset: DatasetLink | None
    evals: list[EvalLink]


class PipelineLink(BaseModel):
    id: uuid.UUID
    name: str | None
    status: str


class LineagePublic(BaseModel):
    object: str = "model.lineage"
    model: str
    chain: list[LineageNode]  # this model first, its base last
    pipelines: list[PipelineLink]  # the pipelines any job of the chain ran in
