"""OpenAI's fine-tuning API (`/v1/fine_tuning/jobs`): the request, and the job, event and checkpoint
objects made from BELLE's `train` jobs. The router turns a request into a `TrainSpec`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from belle_gateway.schemas.common import unix_time
from belle_shared.db.models import Artifact, Job, JobEvent
from belle_shared.specs import default_learning_rate


# ------------------------------------------------------------------------------------ request


def _auto_or_number(value: Any, *, integer: bool, low: float, high: float, low_open: bool = False):
    """OpenAI's hyper-parameters are "auto" or a number; "auto" keeps BELLE's default."""
    if value is None or value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise ValueError(f'expected "auto" or {"an integer" if integer else "a number"}, got {value!r}')
    if value < low or (low_open and value == low) or value > high:
        bounds = f"{'above' if low_open else 'at least'} {low:g} and at most {high:g}"
        raise ValueError(f"must be {bounds}, got {value!r}")
    return int(value) if integer else float(value)


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Epochs may be fractional in BELLE (the spec takes a float); OpenAI sends integers.
    n_epochs: Any = Field("auto", description='"auto" (BELLE: 2) or a number of epochs, up to 100.')
    batch_size: Any = Field("auto", description='"auto" (BELLE: 1 per process) or a micro-batch size.')
    learning_rate_multiplier: Any = Field(
        "auto", description='"auto" (1) or a factor on BELLE\'s learning rate (8e-6 full, 3e-4 LoRA).'
    )

    @field_validator("n_epochs", mode="before")
    @classmethod
    def _epochs(cls, v):
        return _auto_or_number(v, integer=False, low=0, high=100, low_open=True)

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch(cls, v):
        return _auto_or_number(v, integer=True, low=1, high=4096)

    @field_validator("learning_rate_multiplier", mode="before")
    @classmethod
    def _lr(cls, v):
        return _auto_or_number(v, integer=False, low=0, high=100, low_open=True)


class DpoHyperparameters(Hyperparameters):
    beta: Any = Field("auto", description='"auto" (0.1) or DPO\'s beta: how far the model may move from the '
                      'reference (above 0, at most 10).')

    @field_validator("beta", mode="before")
    @classmethod
    def _beta(cls, v):
        return _auto_or_number(v, integer=False, low=0, high=10, low_open=True)


class Supervised(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: Hyperparameters | None = None


class Dpo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: DpoHyperparameters | None = None


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: Supervised | None = None
    dpo: Dpo | None = None
    reinforcement: dict[str, Any] | None = None


class BelleOptions(BaseModel):
    """BELLE's extension fields (`extra_body={"belle": {...}}` in the SDK); ranges are the spec's."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["full", "lora"] | None = None
    lora: dict[str, Any] | None = None
    zero_stage: int | None = None
    offload: str | None = None
    packing: bool | None = None
    chat_template: str | None = None
    num_processes: int | None = None
    validation_split: float | None = None
    learning_rate: float | None = None
    gradient_accumulation_steps: int | None = None
    warmup_ratio: float | None = None
    weight_decay: float | None = None
    lr_scheduler: str | None = None
    max_length: int | None = None
    precision: str | None = None
    max_seconds: float | None = None


class FineTuningJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, description="Name or id of a registered model (GET /v1/models).")
    training_file: str = Field(
        description="Id of a file uploaded with purpose `fine-tune` (or, BELLE extension, of a dataset)."
    )
    validation_file: str | None = Field(None, description="Like training_file; unset holds out a split.")
    hyperparameters: Hyperparameters | None = Field(None, description="Deprecated by OpenAI in favour of method.")
    method: Method | None = None
    suffix: str | None = Field(None, max_length=64, pattern=r"^[^:\s]*$",
                               description="Part of the fine-tuned model's name (no ':' or spaces).")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = None
    integrations: list[dict[str, Any]] | None = None
    belle: BelleOptions | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value):
        if value is None:
            return value
        if len(value) > 16:
            raise ValueError("at most 16 key-value pairs")
        for key, item in value.items():
            if len(key) > 64 or len(item) > 512:
                raise ValueError("keys are at most 64 characters and values at most 512")
        return value


# ----------------------------------------------------------------------------------- response


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
        # OpenAI's learning_rate_multiplier scales the default rate of the objective and method.
        default_lr = default_learning_rate(spec.get("objective", "sft"), method if method in ("full", "lora") else "full")
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
        extension = {key: spec.get(key) for key in ("method", "objective", "lora", "packing", "zero_stage", "offload",
                                                    "num_processes", "validation_split")}
        return cls(
            id=str(job.id), created_at=unix_time(job.created_at), error=error,
            fine_tuned_model=result.get("fine_tuned_model"), finished_at=unix_time(job.finished_at),
            hyperparameters=hyper, model=spec["base_model"], organization_id=str(job.team_id), result_files=[],
            seed=hp.get("seed", 42), status=job.status, trained_tokens=result.get("trained_tokens"),
            training_file=str(spec.get("training_file_id") or spec.get("dataset_id")),
            validation_file=(str(v) if (v := spec.get("validation_file_id") or spec.get("validation_dataset_id"))
                             else None),
            integrations=[], metadata=spec.get("metadata"),
            method=_method(spec, hyper.model_dump()),
            belle={"job_id": str(job.id), **extension, "hyperparameters": hp, "cancel_requested": job.cancel_requested,
                   "attempts": job.attempts, "started_at": unix_time(job.started_at), "result": job.result},
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
        return cls(id=str(event.id), created_at=unix_time(event.created_at), level=EVENT_LEVELS.get(event.level, "info"),
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
        return cls(id=str(artifact.id), created_at=unix_time(artifact.created_at),
                   fine_tuned_model_checkpoint=f"{model_name}:ckpt-step-{step}", step_number=step, metrics=metrics,
                   fine_tuning_job_id=str(artifact.job_id))


class FineTuningJobCheckpointsPublic(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobCheckpointPublic]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


def _method(spec: dict[str, Any], hyper: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's `method` of a train job: supervised, or dpo with its beta."""
    if spec.get("objective") == "dpo":
        beta = (spec.get("dpo") or {}).get("beta", 0.1)
        return {"type": "dpo", "dpo": {"hyperparameters": {**hyper, "beta": beta}}}
    return {"type": "supervised", "supervised": {"hyperparameters": hyper}}
