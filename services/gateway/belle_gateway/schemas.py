"""Response schemas. Routes return these, never ORM objects."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from belle_shared.db.models import Artifact, Dataset, File, Job, JobEvent, Model, TeamSecret


class JobPublic(BaseModel):
    id: uuid.UUID
    object: str = "job"
    type: str
    status: str
    spec: dict[str, Any]
    parent_id: uuid.UUID | None
    pipeline_step: str | None  # the step of the parent pipeline this job runs
    error: dict[str, Any] | None
    result: dict[str, Any] | None
    cancel_requested: bool
    attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, job: Job) -> "JobPublic":
        return cls(
            id=job.id, type=job.type, status=job.status, spec=job.spec, parent_id=job.parent_id,
            pipeline_step=job.pipeline_step, error=job.error, result=job.result, cancel_requested=job.cancel_requested, attempts=job.attempts,
            created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
        )


class JobsPublic(BaseModel):
    object: str = "list"
    data: list[JobPublic]
    count: int
    has_more: bool


class JobEventPublic(BaseModel):
    id: int
    object: str = "job.event"
    created_at: dt.datetime
    level: str
    kind: str
    message: str
    data: dict[str, Any] | None

    @classmethod
    def of(cls, event: JobEvent) -> "JobEventPublic":
        return cls(id=event.id, created_at=event.created_at, level=event.level, kind=event.kind,
                   message=event.message, data=event.data)


class JobEventsPublic(BaseModel):
    object: str = "list"
    data: list[JobEventPublic]
    has_more: bool


class FilePublic(BaseModel):
    id: uuid.UUID
    object: str = "file"
    filename: str
    purpose: str
    bytes: int
    lines: int
    sha256: str
    created_at: int  # unix seconds, as OpenAI's file object
    status: str = "processed"

    @classmethod
    def of(cls, file: File) -> "FilePublic":
        return cls(id=file.id, filename=file.filename, purpose=file.purpose, bytes=file.bytes, lines=file.lines,
                   sha256=file.sha256, created_at=int(file.created_at.timestamp()))


class FilesPublic(BaseModel):
    object: str = "list"
    data: list[FilePublic]
    has_more: bool


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


class SecretPublic(BaseModel):
    """A team secret's name and dates; its value is never returned."""

    object: str = "secret"
    name: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, secret: TeamSecret) -> "SecretPublic":
        return cls(name=secret.name, created_at=secret.created_at, updated_at=secret.updated_at)


class SecretsPublic(BaseModel):
    object: str = "list"
    data: list[SecretPublic]


def _unix(moment: dt.datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


# ------------------------------------------------------------------------------------- models


class ModelPublic(BaseModel):
    """OpenAI's model object (`id` is the name) plus BELLE's own fields."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str  # "belle" for a shared base model, else the owning team's name
    belle_id: uuid.UUID
    kind: str
    parent: str | None  # the parent model's name (fine-tuned and quantized models)
    details: dict[str, Any] | None

    @classmethod
    def of(cls, model: Model, *, owner: str, parent: str | None = None) -> "ModelPublic":
        return cls(id=model.name, created=_unix(model.created_at), owned_by=owner, belle_id=model.id,
                   kind=model.kind, parent=parent, details=model.details)


class ModelsPublic(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelPublic]


class ModelDeleted(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool = True


# -------------------------------------------------------------------------------- fine-tuning

# BELLE's learning rates when the spec leaves it unset (TrainHyperparameters.learning_rate); OpenAI's
# learning_rate_multiplier scales these.
DEFAULT_LEARNING_RATE: dict[str, float] = {"full": 8e-6, "lora": 3e-4}
EVENT_LEVELS = {"info": "info", "warning": "warn", "warn": "warn", "error": "error"}


class FineTuningHyperparametersPublic(BaseModel):
    n_epochs: int | float
    batch_size: int
    learning_rate_multiplier: float


class FineTuningErrorPublic(BaseModel):
    code: str
    message: str
    param: str | None = None


class FineTuningJobPublic(BaseModel):
    """OpenAI's `fine_tuning.job`; the `belle` field carries the options OpenAI has no name for."""

    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: FineTuningErrorPublic | None
    fine_tuned_model: str | None
    finished_at: int | None
    hyperparameters: FineTuningHyperparametersPublic
    model: str
    organization_id: str
    result_files: list[str]
    seed: int
    status: str
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    estimated_finish: int | None = None
    integrations: list[dict[str, Any]]
    metadata: dict[str, str] | None
    method: dict[str, Any]
    belle: dict[str, Any]

    @classmethod
    def of(cls, job: Job) -> "FineTuningJobPublic":
        spec = job.spec
        hp = spec.get("hyperparameters") or {}
        method = spec.get("method", "full")
        default_lr = DEFAULT_LEARNING_RATE.get(method, DEFAULT_LEARNING_RATE["full"])
        epochs = hp.get("epochs", 2)
        hyper = FineTuningHyperparametersPublic(
            n_epochs=int(epochs) if float(epochs).is_integer() else epochs,
            batch_size=hp.get("batch_size", 1),
            learning_rate_multiplier=round((hp.get("learning_rate") or default_lr) / default_lr, 12),
        )
        result = job.result or {}
        error = None
        if job.error:
            error = FineTuningErrorPublic(code=str(job.error.get("code") or "error"),
                                          message=str(job.error.get("message") or ""), param=job.error.get("param"))
        extension = {key: spec.get(key) for key in ("method", "lora", "packing", "zero_stage", "offload",
                                                    "num_processes", "validation_split")}
        return cls(
            id=str(job.id), created_at=_unix(job.created_at), error=error,
            fine_tuned_model=result.get("fine_tuned_model"), finished_at=_unix(job.finished_at),
            hyperparameters=hyper, model=spec["base_model"], organization_id=str(job.team_id), result_files=[],
            seed=hp.get("seed", 42), status=job.status, trained_tokens=result.get("trained_tokens"),
            training_file=str(spec.get("training_file_id") or spec.get("dataset_id")),
            validation_file=(str(v) if (v := spec.get("validation_file_id") or spec.get("validation_dataset_id"))
                             else None),
            integrations=[], metadata=spec.get("metadata"),
            method={"type": "supervised", "supervised": {"hyperparameters": hyper.model_dump()}},
            belle={"job_id": str(job.id), **extension, "hyperparameters": hp, "cancel_requested": job.cancel_requested,
                   "attempts": job.attempts, "started_at": _unix(job.started_at), "result": job.result},
        )


class FineTuningJobsPublic(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobPublic]
    has_more: bool


class FineTuningJobEventPublic(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: str
    message: str
    data: dict[str, Any] | None
    type: Literal["message", "metrics"]

    @classmethod
    def of(cls, event: JobEvent) -> "FineTuningJobEventPublic":
        return cls(id=str(event.id), created_at=_unix(event.created_at), level=EVENT_LEVELS.get(event.level, "info"),
                   message=event.message, data=event.data,
                   type="metrics" if event.kind in ("metrics", "progress") else "message")


class FineTuningJobEventsPublic(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEventPublic]
    has_more: bool


class FineTuningJobCheckpointPublic(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    step_number: int
    metrics: dict[str, Any]
    fine_tuning_job_id: str

    @classmethod
    def of(cls, artifact: Artifact, *, model_name: str) -> "FineTuningJobCheckpointPublic":
        details = artifact.details or {}
        step = int(details.get("step") or 0)
        recorded = dict(details.get("metrics") or {})
        metrics: dict[str, Any] = {"step": step}
        if "train_loss" in recorded:
            metrics["train_loss"] = recorded["train_loss"]
        if recorded.get("eval_loss") is not None:
            # BELLE's eval loss is over the whole validation set: OpenAI's full_valid_loss.
            metrics["valid_loss"] = metrics["full_valid_loss"] = recorded["eval_loss"]
        metrics.update({k: v for k, v in recorded.items() if k not in metrics})
        return cls(id=str(artifact.id), created_at=_unix(artifact.created_at),
                   fine_tuned_model_checkpoint=f"{model_name}:ckpt-step-{step}", step_number=step, metrics=metrics,
                   fine_tuning_job_id=str(artifact.job_id))


class FineTuningJobCheckpointsPublic(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobCheckpointPublic]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


# -------------------------------------------------------------------------------------- evals


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


class PipelineStepPublic(BaseModel):
    """One step: its newest job (a retried step has had several), or why it has none yet."""

    name: str
    type: str | None
    needs: list[str]
    status: str
    reason: str | None
    job_id: uuid.UUID | None
    job_ids: list[uuid.UUID]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class PipelinePublic(BaseModel):
    id: uuid.UUID
    object: str = "pipeline"
    name: str | None
    status: str
    error: dict[str, Any] | None
    cancel_requested: bool
    steps: list[PipelineStepPublic]
    spec: dict[str, Any]
    created_at: dt.datetime
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, pipeline: Job, states) -> "PipelinePublic":
        steps = [
            PipelineStepPublic(
                name=s.name, type=s.job.type if s.job else s.step.spec.get("type"), needs=s.needs, status=s.status,
                reason=s.reason, job_id=s.job.id if s.job else None, job_ids=[j.id for j in s.jobs],
                result=s.job.result if s.job else None, error=s.job.error if s.job else None,
                started_at=s.job.started_at if s.job else None, finished_at=s.job.finished_at if s.job else None,
            )
            for s in states
        ]
        return cls(id=pipeline.id, name=pipeline.spec.get("name"), status=pipeline.status, error=pipeline.error,
                   cancel_requested=pipeline.cancel_requested, steps=steps, spec=pipeline.spec,
                   created_at=pipeline.created_at, finished_at=pipeline.finished_at)


class PipelinesPublic(BaseModel):
    object: str = "list"
    data: list[PipelinePublic]
    count: int
    has_more: bool
