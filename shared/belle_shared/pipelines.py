"""Pipelines: several jobs submitted as one, each step started once the outputs it names exist.

A pipeline is a job row of type ``pipeline`` that no worker runs; its steps' jobs are its children
(``parent_id``), each tagged with its step's name (``pipeline_step``). A step's spec is an ordinary
job spec in which a string ``"${STEP.OUTPUT}"`` stands for an earlier step's output (its job's
``result[OUTPUT]``)::

    steps:
      - {name: data,  spec: {type: datagen, teacher: {...}, target_count: 2000}}
      - {name: train, spec: {type: train, base_model: tiny-llama, dataset_id: "${data.dataset_id}"}}
      - {name: quant, spec: {type: quantize, model_id: "${train.model_id}"}}

Nothing polls: whoever sees a step's job end (the worker that ran it, the gateway that cancelled it,
the sweeper that gave up on it) calls ``belle_shared.lifecycle.finish_job``, which runs
``advance_pipeline`` in a transaction that locks the pipeline row. It creates the jobs whose inputs now exist and, once nothing is left to run, ends the pipeline.
A failed step stops the steps that need it (they are ``skipped``) while independent ones go on;
``retry_pipeline`` re-runs failed and cancelled steps, keeping what succeeded.

Data access in the style of ``belle_shared.jobs``: keyword-only, flushes, never commits (committing
and sending the jobs it creates is ``belle_shared.lifecycle``'s).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from belle_shared.db.models import Job, JobStatus
from belle_shared.db.types import utcnow
from belle_shared.jobs import CancelRefused, add_event, create_job, request_cancel, set_terminal
from belle_shared.job_types import get_job_type, spec_adapter
from belle_shared.specs import PENDING_OUTPUT, JobSpec


PIPELINE_TYPE = "pipeline"
STEP_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
# A reference is a whole string value: "${train.model_id}".
REFERENCE = re.compile(r"^\$\{([A-Za-z][A-Za-z0-9_-]{0,63})\.([A-Za-z_]+)\}$")
StepStatus = Literal["pending", "skipped", "queued", "running", "succeeded", "failed", "cancelled"]


class PipelineStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=STEP_NAME_PATTERN, description="The step's name, unique in the pipeline.")
    spec: dict[str, Any] = Field(
        description="A job spec (any job type). A string value `${STEP.OUTPUT}` is replaced by an earlier step's "
        "output when this step starts: `dataset_id` of import and datagen, `model_id` of train, quantize and "
        "model_import (each job type's outputs: `GET /v1/job_types`)."
    )
    after: list[str] = Field(
        default_factory=list, description="Earlier steps that must succeed first, besides those `spec` refers to."
    )


class PipelineSpec(BaseModel):
    """Jobs submitted together; a step starts when the steps it needs have succeeded."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["pipeline"] = "pipeline"
    name: str | None = Field(None, max_length=255, description="A name to tell pipelines apart.")
    steps: list[PipelineStep] = Field(min_length=1, max_length=32, description="The steps, each after those it needs.")


class PipelineSpecError(ValueError):
    """A pipeline spec that cannot run: ``param`` is where (``steps[1].spec.dataset_id``)."""

    def __init__(self, message: str, *, param: str, code: str = "invalid_pipeline"):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class StepSpecInvalid(ValueError):
    """A step's job spec failed validation; ``prefix`` locates the step's spec in the pipeline spec."""

    def __init__(self, error: ValidationError, prefix: tuple):
        super().__init__(str(error))
        self.error = error
        self.prefix = prefix


# ---------------------------------------------------------------------------------- references


def _walk(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Every string in a JSON value, with its location."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, index))


def _substitute(value: Any, replace) -> Any:
    if isinstance(value, str):
        match = REFERENCE.match(value)
        return replace(match.group(1), match.group(2)) if match else value
    if isinstance(value, dict):
        return {key: _substitute(item, replace) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, replace) for item in value]
    return value


def _param(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def step_needs(step: PipelineStep) -> list[str]:
    """The steps this one waits for: those its spec refers to, then those named in ``after``."""
    needs = [match.group(1) for _, text in _walk(step.spec) if (match := REFERENCE.match(text))]
    return list(dict.fromkeys([*needs, *step.after]))


def check_pipeline(spec: PipelineSpec) -> list[JobSpec]:
    """Check the steps fit together and that each step's spec is a valid job spec once its references
    are filled in; returns the steps' job specs with placeholders where the references are.
    Raises PipelineSpecError or StepSpecInvalid."""
    types: dict[str, str] = {}
    checked: list[JobSpec] = []
    for index, step in enumerate(spec.steps):
        where = f"steps[{index}]"
        if step.name in types:
            raise PipelineSpecError(f"{where}.name: another step is already called {step.name!r}",
                                    param=f"{where}.name", code="duplicate_step")
        for position, name in enumerate(step.after):
            if name not in types:
                later = any(s.name == name for s in spec.steps[index + 1:])
                raise PipelineSpecError(
                    f"{where}.after[{position}]: " + (f"step {name!r} comes later; list a step after those it needs"
                                                      if later else f"no step {name!r} before this one"),
                    param=f"{where}.after[{position}]", code="unknown_step")
        for path, text in _walk(step.spec):
            param = f"{where}.spec.{_param(path)}"
            match = REFERENCE.match(text)
            if match is None:
                if "${" in text:
                    raise PipelineSpecError(f"{param}: a reference must be the whole value, as \"${{step.output}}\"; "
                                            f"got {text!r}", param=param, code="invalid_reference")
                continue
            name, output = match.groups()
            if name not in types:
                later = any(s.name == name for s in spec.steps[index + 1:])
                raise PipelineSpecError(
                    f"{param}: " + (f"step {name!r} comes later; list a step after those it refers to" if later
                                    else f"no step {name!r} before this one"), param=param, code="unknown_step")
            offered = get_job_type(types[name]).outputs
            if output not in offered:
                raise PipelineSpecError(
                    f"{param}: step {name!r} ({types[name]}) has no output {output!r}; it offers "
                    + (", ".join(offered) if offered else "none"), param=param, code="unknown_output")
        try:
            job_spec = spec_adapter().validate_python(_substitute(step.spec, lambda *_: PENDING_OUTPUT))
        except ValidationError as exc:
            raise StepSpecInvalid(exc, ("steps", index, "spec")) from None
        types[step.name] = job_spec.type
        checked.append(job_spec)
    return checked


def resolve_step(step: PipelineStep, outputs: dict[str, dict[str, Any]]) -> JobSpec:
    """The step's job spec with its references replaced by the outputs of the steps it needs."""

    def replace(name: str, output: str) -> str:
        value = (outputs.get(name) or {}).get(output)
        if value is None:
            raise PipelineSpecError(f"step {name!r} succeeded without output {output!r}", param=step.name,
                                    code="missing_output")
        return str(value)

    return spec_adapter().validate_python(_substitute(step.spec, replace))


# ---------------------------------------------------------------------------------------- state


@dataclass
class StepState:
    """Where one step stands: its newest job (if it has one yet) and, if it waits or was skipped, why."""

    index: int
    step: PipelineStep
    needs: list[str]
    status: StepStatus = "pending"
    job: Job | None = None
    jobs: list[Job] = field(default_factory=list)  # every job the step has had, oldest first
    reason: str | None = None

    @property
    def name(self) -> str:
        return self.step.name


def pipeline_states(session: Session, pipeline: Job) -> list[StepState]:
    """Every step's state, in the pipeline's order; steps without a job are pending or skipped."""
    spec = PipelineSpec.model_validate(pipeline.spec)
    children = session.scalars(
        select(Job).where(Job.parent_id == pipeline.id).order_by(Job.created_at, Job.id)
    ).all()
    by_step: dict[str, list[Job]] = {}
    for child in children:
        by_step.setdefault(child.pipeline_step or "", []).append(child)
    states: dict[str, StepState] = {}
    for index, step in enumerate(spec.steps):
        state = StepState(index=index, step=step, needs=step_needs(step), jobs=by_step.get(step.name, []))
        if state.jobs:
            state.job = state.jobs[-1]
            state.status = state.job.status  # type: ignore[assignment]
        else:
            blocked = [n for n in state.needs if states[n].status in ("failed", "cancelled", "skipped")]
            waiting = [n for n in state.needs if states[n].status != "succeeded"]
            if blocked:
                state.status = "skipped"
                state.reason = f"step {blocked[0]!r} {states[blocked[0]].status}"
            elif waiting:
                state.reason = "waiting for " + ", ".join(repr(n) for n in waiting)
        states[step.name] = state
    return list(states.values())


# ----------------------------------------------------------------------------------- operations


def create_pipeline(session: Session, *, team_id: uuid.UUID, spec: PipelineSpec) -> tuple[Job, list[Job]]:
    """Add the pipeline row and the jobs of the steps that need nothing; returns (pipeline, new jobs)."""
    now = utcnow()
    pipeline = Job(id=uuid.uuid4(), team_id=team_id, type=PIPELINE_TYPE, status=JobStatus.running,
                   spec=spec.model_dump(mode="json"), created_at=now, started_at=now)
    session.add(pipeline)
    session.flush()
    add_event(session, job_id=pipeline.id, kind="status", message=f"pipeline created with {len(spec.steps)} steps",
              data={"status": "running", "steps": [s.name for s in spec.steps]})
    return pipeline, advance_pipeline(session, pipeline_id=pipeline.id)


def advance_pipeline(session: Session, *, pipeline_id: uuid.UUID) -> list[Job]:
    """Start the steps whose inputs exist and end the pipeline once nothing is left to run.

    Safe to call any number of times, from any process: it locks the pipeline row first (SQLite's
    BEGIN IMMEDIATE does the same for the embedded default). Returns the jobs it created, which the
    caller sends after committing (the sweeper sends them if that send is lost)."""
    pipeline = session.get(Job, pipeline_id, with_for_update=True, populate_existing=True)
    if pipeline is None or pipeline.type != PIPELINE_TYPE or JobStatus(pipeline.status).is_terminal:
        return []
    states = pipeline_states(session, pipeline)
    by_name = {s.name: s for s in states}
    created: list[Job] = []
    if not pipeline.cancel_requested:
        for state in states:
            if state.status != "pending" or any(by_name[n].status != "succeeded" for n in state.needs):
                continue
            outputs = {n: by_name[n].job.result or {} for n in state.needs}  # type: ignore[union-attr]
            try:
                job_spec = resolve_step(state.step, outputs)
            except (ValidationError, PipelineSpecError) as exc:
                _end(session, pipeline, states, failed_step=state, detail=str(exc))
                return created
            job = create_job(session, team_id=pipeline.team_id, spec=job_spec, parent_id=pipeline.id,
                             pipeline_step=state.name)
            add_event(session, job_id=pipeline.id, kind="step", message=f"step {state.name!r} queued as job {job.id}",
                      data={"step": state.name, "job_id": str(job.id), "status": "queued"})
            state.status, state.job, state.reason = "queued", job, None
            created.append(job)
            # Steps after this one that were waiting only on earlier steps are unaffected: they need it
            # to succeed, which it has not yet.
    if not any(s.status in ("queued", "running", "validating_files") for s in states):
        _end(session, pipeline, states)
    return created


def _end(session: Session, pipeline: Job, states: list[StepState], *, failed_step: StepState | None = None,
         detail: str | None = None) -> None:
    """Record the pipeline's outcome: cancelled, failed (naming the first step that did not succeed) or succeeded."""
    steps = {s.name: {"job_id": str(s.job.id) if s.job else None, "type": s.job.type if s.job else s.step.spec.get("type"),
                      "status": s.status, "result": s.job.result if s.job else None} for s in states}
    not_run = [s.name for s in states if s.job is None and s is not failed_step]
    if pipeline.cancel_requested:
        set_terminal(session, job=pipeline, status=JobStatus.cancelled, result={"steps": steps},
                     message="pipeline cancelled" + (f"; not run: {', '.join(not_run)}" if not_run else ""))
        return
    if failed_step is None:
        failed_step = next((s for s in states if s.status in ("failed", "cancelled")), None)
    if failed_step is None:
        set_terminal(session, job=pipeline, status=JobStatus.succeeded, result={"steps": steps},
                     message="pipeline succeeded")
        return
    job = failed_step.job
    if detail is None:
        why = (job.error or {}).get("message") if job is not None else None
        detail = f"{failed_step.status}" + (f": {why}" if why else "")
    else:
        detail = f"could not start: {detail}"
    message = f"step {failed_step.name!r} {detail}"
    if not_run:
        message += f"; not run: {', '.join(not_run)}"
    error = {"code": "step_failed", "message": message, "param": f"steps[{failed_step.index}]",
             "details": {"step": failed_step.name, "job_id": str(job.id) if job else None,
                         "error": job.error if job else None, "not_run": not_run}}
    set_terminal(session, job=pipeline, status=JobStatus.failed, message=f"pipeline failed: {message}", error=error,
                 result={"steps": steps})


def cancel_pipeline(session: Session, *, pipeline: Job) -> None:
    """Cancel the running and queued steps and start no more; the pipeline ends as ``cancelled`` once
    its running steps have stopped. Raises CancelRefused if it already ended."""
    if JobStatus(pipeline.status).is_terminal:
        raise CancelRefused(f"pipeline {pipeline.id} already {pipeline.status}; only a running pipeline can be cancelled")
    if not pipeline.cancel_requested:
        pipeline.cancel_requested = True
        add_event(session, job_id=pipeline.id, kind="status", message="cancellation requested")
    for state in pipeline_states(session, pipeline):
        if state.job is not None and not JobStatus(state.job.status).is_terminal:
            request_cancel(session, job=state.job)
    session.flush()
    advance_pipeline(session, pipeline_id=pipeline.id)


class RetryRefused(Exception):
    """Only a failed or cancelled pipeline can be retried; the message says why this one cannot."""


def retry_pipeline(session: Session, *, pipeline: Job) -> list[Job]:
    """Run a failed or cancelled pipeline again from where it stopped: its failed and cancelled steps
    get new jobs, steps that never ran start when their inputs exist, succeeded steps are kept.
    Returns the new jobs (send them after committing)."""
    status = JobStatus(pipeline.status)
    if status not in (JobStatus.failed, JobStatus.cancelled):
        raise RetryRefused(f"pipeline {pipeline.id} is {status.value}; only a failed or cancelled pipeline can be retried")
    states = pipeline_states(session, pipeline)
    rerun = [s for s in states if s.status in ("failed", "cancelled")]
    pipeline.status = JobStatus.running
    pipeline.cancel_requested = False
    pipeline.finished_at = None
    pipeline.error = None
    pipeline.result = None
    add_event(session, job_id=pipeline.id, kind="status", message="retry: running again from the steps that did not succeed",
              data={"status": "running", "rerun": [s.name for s in rerun],
                    "kept": [s.name for s in states if s.status == "succeeded"]})
    by_name = {s.name: s for s in states}
    created: list[Job] = []
    for state in rerun:
        outputs = {n: by_name[n].job.result or {} for n in state.needs}  # type: ignore[union-attr]
        job = create_job(session, team_id=pipeline.team_id, spec=resolve_step(state.step, outputs),
                         parent_id=pipeline.id, pipeline_step=state.name)
        add_event(session, job_id=pipeline.id, kind="step",
                  message=f"step {state.name!r} queued again as job {job.id} (was {state.job.id}, {state.status})",  # type: ignore[union-attr]
                  data={"step": state.name, "job_id": str(job.id), "status": "queued", "previous_job_id": str(state.job.id)})  # type: ignore[union-attr]
        created.append(job)
    session.flush()
    return created + advance_pipeline(session, pipeline_id=pipeline.id)
