"""Eval jobs, their scores, items and comparisons (`/v1/evals`)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from belle_shared.db.models import Job


class EvalModelPublic(BaseModel):
    """A model an eval scored: its registry id and name, or ``endpoint:<model>`` for an endpoint."""

    id: str | None  # None while the job has not resolved a submitted name yet
    name: str


class EvalPublic(BaseModel):
    """An eval job in a list: what it scores and its overall score per model."""

    id: uuid.UUID
    object: Literal["eval"] = "eval"
    status: str
    mode: str
    models: list[EvalModelPublic]
    eval_set: dict[str, Any] | None  # {"name", "questions"} once the job has read it
    primary_metric: str | None
    overall: dict[str, float | None]  # {model name: score}; empty until the job succeeds
    error: dict[str, Any] | None
    created_at: dt.datetime
    finished_at: dt.datetime | None

    @classmethod
    def fields_of(cls, job: Job) -> dict[str, Any]:
        spec, result = job.spec or {}, job.result or {}
        if result.get("models"):
            models = [EvalModelPublic(id=str(m.get("id")), name=str(m.get("name"))) for m in result["models"]]
        else:
            # Not run yet: the models as submitted (names or ids), endpoints by their model name.
            models = [EvalModelPublic(id=None, name=str(ref)) for ref in spec.get("model_ids") or []]
            for endpoint in spec.get("candidate_endpoints") or []:
                label = f"endpoint:{endpoint.get('model')}" if isinstance(endpoint, dict) else str(endpoint)
                models.append(EvalModelPublic(id=label, name=label))
        return dict(id=job.id, status=job.status, mode=result.get("mode") or spec.get("mode", "judge"), models=models,
                    eval_set=result.get("eval_set"), primary_metric=result.get("primary_metric"),
                    overall=result.get("overall") or {}, error=job.error, created_at=job.created_at,
                    finished_at=job.finished_at)

    @classmethod
    def of(cls, job: Job) -> "EvalPublic":
        return cls(**cls.fields_of(job))


class EvalsPublic(BaseModel):
    object: Literal["list"] = "list"
    data: list[EvalPublic]
    count: int
    has_more: bool


class EvalScorePublic(BaseModel):
    score: float | None  # None: nothing in the class could be scored with this metric
    count: int  # questions scored
    unparsable: int  # judge replies with no score in them


class EvalDetailPublic(EvalPublic):
    """One eval job: its scores ``{model name: {class: {metric: score}}}``, classes in canonical order
    then "overall" and "overall_without_others", and where its items and report are."""

    scores: dict[str, dict[str, dict[str, EvalScorePublic]]]
    judge: dict[str, Any] | None
    judge_totals: dict[str, Any] | None
    report_url: str | None
    items_url: str | None


class EvalAnswerPublic(BaseModel):
    """One model's answer to one question, with the judge's reply and the scores it got."""

    model_config = ConfigDict(extra="allow")  # pairwise mode's own fields pass through as they are

    answer: str | None = None
    judge_reply: str | None = None
    score: float | None = None
    reference_metric: str | None = None
    reference_score: float | None = None


class EvalItemPublic(BaseModel):
    index: int
    line: int | None = None  # the question's line in the eval set
    cls: str = Field(serialization_alias="class")
    question: str
    std_answer: str | None
    answers: dict[str, EvalAnswerPublic]  # {model name: answer}


class EvalItemsPublic(BaseModel):
    object: Literal["list"] = "list"
    data: list[EvalItemPublic]
    count: int
    has_more: bool


class EvalCompareColumn(BaseModel):
    """One (eval, model) column of a comparison."""

    eval_id: uuid.UUID
    model: str
    model_id: str | None
    mode: str
    metric: str  # the eval's primary metric: judge, pairwise_win_rate or reference
    eval_set: dict[str, Any] | None


class EvalCompareRow(BaseModel):
    cls: str = Field(serialization_alias="class")  # a class, "overall" or "overall_without_others"
    scores: list[float | None]  # one per column
    counts: list[int]


class EvalComparePublic(BaseModel):
    object: Literal["eval.comparison"] = "eval.comparison"
    columns: list[EvalCompareColumn]
    rows: list[EvalCompareRow]
    notes: list[str]
