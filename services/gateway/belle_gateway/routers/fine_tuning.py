"""OpenAI's fine-tuning API over BELLE's `train` jobs, so the official `openai` SDK works unchanged.

    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=BELLE_KEY)
    job = client.fine_tuning.jobs.create(model="belle-tiny-llama", training_file=file.id,
                                         extra_body={"belle": {"method": "lora"}})

The request is translated into a `TrainSpec` and submitted like any job (`submit_job`); the ids are
the job ids of `/v1/jobs`. OpenAI's field names are used in errors (`model`, `training_file`,
`hyperparameters.n_epochs`); options OpenAI has no name for go in the `belle` extension object.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sqlalchemy import and_, or_, select

from belle_gateway.deps import CeleryDep, SessionDep, SettingsDep, StoreDep, TeamDep
from belle_gateway.errors import APIError, loc_to_param
from belle_gateway.openapi import error_responses
from belle_gateway.schemas.common import MAX_BIGINT
from belle_gateway.submission import cancel_job, submit_job
from belle_gateway.schemas import (
    BelleOptions,
    DpoHyperparameters,
    FineTuningJobCheckpointPublic,
    FineTuningJobCheckpointsPublic,
    FineTuningJobCreate,
    FineTuningJobEventPublic,
    FineTuningJobEventsPublic,
    FineTuningJobPublic,
    FineTuningJobsPublic,
    Hyperparameters,
)
from belle_shared.db.models import Artifact, Dataset, File, Job, JobEvent
from belle_shared.models import find_model, fine_tuned_model_name
from belle_shared.specs import TrainSpec, default_learning_rate

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"])


# --------------------------------------------------------------------------- request -> spec

# Hyper-parameters OpenAI has no name for; given in `belle`, they go to spec.hyperparameters.
EXTRA_HYPERPARAMETERS = ("learning_rate", "gradient_accumulation_steps", "warmup_ratio", "weight_decay",
                         "lr_scheduler", "max_length", "precision", "max_seconds")


# Spec field -> the name this API uses for it, for error messages.
_SPEC_TO_OPENAI = {
    "base_model": "model",
    "training_file_id": "training_file",
    "dataset_id": "training_file",
    "validation_file_id": "validation_file",
    "validation_dataset_id": "validation_file",
    "suffix": "suffix",
    "metadata": "metadata",
    "hyperparameters.epochs": "hyperparameters.n_epochs",
    "hyperparameters.batch_size": "hyperparameters.batch_size",
    "hyperparameters.seed": "seed",
    "dpo.beta": "hyperparameters.beta",
    "type": None,  # the deployment does not serve train jobs: no field of the request is wrong
}


def openai_param(param: str | None, hp_source: str = "hyperparameters") -> str | None:
    """Name a spec field as this API's request does ("base_model" -> "model", else "belle.<field>")."""
    if not param:
        return param
    for spec_name, name in _SPEC_TO_OPENAI.items():
        if param == spec_name or param.startswith(spec_name + ".") or param.startswith(spec_name + "["):
            if name is None:
                return None
            if name.startswith("hyperparameters."):
                name = hp_source + name[len("hyperparameters"):]
            return name + param[len(spec_name):]
    if param.startswith("hyperparameters."):
        return "belle." + param[len("hyperparameters."):]
    return "belle." + param


def _reference(session, team, raw: str | None, file_field: str, dataset_field: str) -> dict[str, Any]:
    """A file id goes to ``file_field``; the id of one of the team's datasets to ``dataset_field``."""
    if raw is None:
        return {}
    try:
        ref = uuid.UUID(raw)
    except ValueError:
        name = _SPEC_TO_OPENAI[file_field]
        raise APIError(400, f"{name}: no file with id {raw!r}", param=name, code="file_not_found") from None
    is_file = session.scalar(select(File.id).where(File.id == ref, File.team_id == team.id)) is not None
    if not is_file and session.scalar(select(Dataset.id).where(Dataset.id == ref, Dataset.team_id == team.id)):
        return {dataset_field: ref}
    return {file_field: ref}  # a missing file is reported by the spec check, like any job's


def build_spec(session, team, body: FineTuningJobCreate) -> tuple[TrainSpec, str]:
    """The TrainSpec this request describes, and where its hyper-parameters came from (for errors)."""
    if body.integrations:
        raise APIError(400, "integrations: not supported by this server", param="integrations",
                       code="unsupported_parameter")
    hp_source, hyper = "hyperparameters", body.hyperparameters
    kind = body.method.type if body.method is not None else "supervised"
    if body.method is not None:
        if kind not in ("supervised", "dpo"):
            raise APIError(400, f"method.type: 'supervised' and 'dpo' fine-tuning are supported, not {kind!r}",
                           param="method.type", code="unsupported_method")
        section = getattr(body.method, kind)
        nested = section.hyperparameters if section else None
        if nested is not None:
            if hyper is not None:
                raise APIError(400, "hyperparameters: give them either at the top level or in "
                               f"method.{kind}.hyperparameters, not both", param="hyperparameters",
                               code="invalid_value")
            hp_source, hyper = f"method.{kind}.hyperparameters", nested
    hyper = hyper or (DpoHyperparameters() if kind == "dpo" else Hyperparameters())
    belle = body.belle or BelleOptions()
    method = belle.method or "full"

    hp: dict[str, Any] = {k: getattr(belle, k) for k in EXTRA_HYPERPARAMETERS if getattr(belle, k) is not None}
    if hyper.n_epochs != "auto":
        hp["epochs"] = hyper.n_epochs
    if hyper.batch_size != "auto":
        hp["batch_size"] = hyper.batch_size
    if hyper.learning_rate_multiplier != "auto":
        if belle.learning_rate is not None:
            raise APIError(400, f"{hp_source}.learning_rate_multiplier: give it or belle.learning_rate, not both",
                           param=f"{hp_source}.learning_rate_multiplier", code="invalid_value")
        hp["learning_rate"] = hyper.learning_rate_multiplier * default_learning_rate(
            "dpo" if kind == "dpo" else "sft", method)
    if body.seed is not None:
        hp["seed"] = body.seed

    data: dict[str, Any] = {
        "type": "train",
        "base_model": body.model,
        "method": method,
        "objective": "dpo" if kind == "dpo" else "sft",
        "hyperparameters": hp,
        "suffix": body.suffix or None,
        "metadata": body.metadata,
        **_reference(session, team, body.training_file, "training_file_id", "dataset_id"),
        **_reference(session, team, body.validation_file, "validation_file_id", "validation_dataset_id"),
    }
    if getattr(hyper, "beta", "auto") != "auto":
        data["dpo"] = {"beta": hyper.beta}
    for key in ("lora", "zero_stage", "offload", "packing", "chat_template", "num_processes", "validation_split"):
        if getattr(belle, key) is not None:
            data[key] = getattr(belle, key)
    try:
        return TrainSpec.model_validate(data), hp_source
    except ValidationError as exc:
        first = exc.errors()[0]
        spec_param = loc_to_param(first.get("loc", ()))
        param = openai_param(spec_param, hp_source) if spec_param else "belle"
        # A model-level rule (offload needs ZeRO, ...) has no location: its message says what to change.
        message = first["msg"].removeprefix("Value error, ")
        raise APIError(400, f"{param}: {message}", param=param, code=first["type"]) from None


def _create(session, celery, settings, store, team, body: FineTuningJobCreate) -> Job:
    spec, hp_source = build_spec(session, team, body)
    try:
        return submit_job(session, celery, settings, store, team, spec)
    except APIError as exc:
        # The spec checks name spec fields; say them as this API's request does.
        param = openai_param(exc.param, hp_source)
        message = exc.message
        if exc.param and message.startswith(exc.param + ":"):
            rest = message[len(exc.param) + 1:].lstrip()
            message = f"{param}: {rest}" if param else rest
        raise APIError(exc.status, message, param=param, code=exc.code) from None


# ------------------------------------------------------------------------------------- routes


@router.post("", response_model=FineTuningJobPublic)
async def create(body: FineTuningJobCreate, session: SessionDep, celery: CeleryDep, settings: SettingsDep,
                 store: StoreDep, team: TeamDep):
    """Create a fine-tuning job (a `train` job); checked before it is queued."""
    job = await run_in_threadpool(_create, session, celery, settings, store, team, body)
    return FineTuningJobPublic.of(job)


def _train_job(session, team, job_id: uuid.UUID, *, for_update: bool = False) -> Job:
    stmt = select(Job).where(Job.id == job_id, Job.team_id == team.id, Job.type == "train")
    job = session.scalars(stmt.with_for_update() if for_update else stmt).first()
    if job is None:
        raise APIError(404, f"no fine-tuning job with id {job_id}", param="fine_tuning_job_id", code="job_not_found")
    return job


@router.get("", response_model=FineTuningJobsPublic)
def list_(session: SessionDep, team: TeamDep,
          after: uuid.UUID | None = Query(None, description="Id of the last job of the previous page."),
          limit: int = Query(20, ge=1, le=100)):
    """The team's fine-tuning jobs, newest first."""
    where = [Job.team_id == team.id, Job.type == "train"]
    if after is not None:
        cursor = session.scalar(select(Job).where(Job.id == after, *where))
        if cursor is None:
            raise APIError(400, f"after: no fine-tuning job with id {after}", param="after", code="invalid_value")
        where.append(or_(Job.created_at < cursor.created_at,
                         and_(Job.created_at == cursor.created_at, Job.id < cursor.id)))
    rows = session.scalars(select(Job).where(*where).order_by(Job.created_at.desc(), Job.id.desc())
                           .limit(limit + 1)).all()
    return FineTuningJobsPublic(data=[FineTuningJobPublic.of(j) for j in rows[:limit]], has_more=len(rows) > limit)


@router.get("/{fine_tuning_job_id}", response_model=FineTuningJobPublic)
def retrieve(fine_tuning_job_id: uuid.UUID, session: SessionDep, team: TeamDep):
    """One fine-tuning job."""
    return FineTuningJobPublic.of(_train_job(session, team, fine_tuning_job_id))


@router.post("/{fine_tuning_job_id}/cancel", response_model=FineTuningJobPublic,
             responses=error_responses(409))
def cancel(fine_tuning_job_id: uuid.UUID, session: SessionDep, celery: CeleryDep, team: TeamDep):
    """Cancel a queued job, or ask a running one to stop (it turns `cancelled` within seconds)."""
    job = _train_job(session, team, fine_tuning_job_id, for_update=True)
    return FineTuningJobPublic.of(cancel_job(session, celery, job, param="fine_tuning_job_id"))


@router.get("/{fine_tuning_job_id}/events", response_model=FineTuningJobEventsPublic)
def list_events(fine_tuning_job_id: uuid.UUID, session: SessionDep, team: TeamDep,
                after: str | None = Query(None, description="Id of the last event of the previous page."),
                limit: int = Query(20, ge=1, le=1000)):
    """The job's events, newest first (as OpenAI orders them)."""
    _train_job(session, team, fine_tuning_job_id)
    where = [JobEvent.job_id == fine_tuning_job_id]
    if after is not None:
        if not (after.isascii() and after.isdigit()) or len(after) > 19 or int(after) > MAX_BIGINT:
            raise APIError(400, f"after: not an event id: {after[:40]!r}", param="after", code="invalid_value")
        where.append(JobEvent.id < int(after))
    rows = session.scalars(select(JobEvent).where(*where).order_by(JobEvent.id.desc()).limit(limit + 1)).all()
    return FineTuningJobEventsPublic(data=[FineTuningJobEventPublic.of(e) for e in rows[:limit]],
                                     has_more=len(rows) > limit)


@router.get("/{fine_tuning_job_id}/checkpoints", response_model=FineTuningJobCheckpointsPublic)
def list_checkpoints(fine_tuning_job_id: uuid.UUID, session: SessionDep, team: TeamDep,
                     after: str | None = Query(None, description="Id of the last checkpoint of the previous page."),
                     limit: int = Query(10, ge=1, le=100)):
    """The job's checkpoints with their step and metrics, newest first."""
    job = _train_job(session, team, fine_tuning_job_id)
    rows = session.scalars(select(Artifact).where(Artifact.job_id == job.id, Artifact.team_id == team.id,
                                                  Artifact.kind == "checkpoint")).all()
    # A job has a handful of checkpoints: order by step in Python rather than inside the JSON column.
    rows = sorted(rows, key=lambda a: (int((a.details or {}).get("step") or 0), a.created_at, str(a.id)), reverse=True)
    if after is not None:
        ids = [str(a.id) for a in rows]
        if after not in ids:
            raise APIError(400, f"after: no checkpoint {after!r} in this job", param="after", code="invalid_value")
        rows = rows[ids.index(after) + 1:]
    name = _model_name(session, team, job)
    data = [FineTuningJobCheckpointPublic.of(a, model_name=name) for a in rows[:limit]]
    return FineTuningJobCheckpointsPublic(data=data, has_more=len(rows) > limit,
                                          first_id=data[0].id if data else None, last_id=data[-1].id if data else None)


def _model_name(session, team, job: Job) -> str:
    """The fine-tuned model's name: recorded on success, else what it will be."""
    recorded = (job.result or {}).get("fine_tuned_model")
    if recorded:
        return recorded
    base = job.spec["base_model"]
    model = find_model(session, team.id, base)
    return fine_tuned_model_name(model.name if model else base, team.name, job.spec.get("suffix"), job.id)

