"""The pipeline rules on PostgreSQL, with the steps' outcomes written as a worker writes them.

No worker runs here: each test plays the workers' part (a step's job ends with ``set_terminal`` and a
result, then ``advance_pipeline`` runs as the worker's ``advance_parent`` runs it) so that every
branch of the rules (references filled in, a failure skipping the steps that need it while
independent steps go on, retry, cancel, the sweeper's catch-up) is checked exactly. The HTTP API and
real workers are in test_pipelines_api.py.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from belle_shared.db.models import Job, JobStatus
from belle_shared.jobs import set_terminal
from belle_shared.pipelines import (
    PipelineSpec, PipelineSpecError, RetryRefused, advance_pipeline, cancel_pipeline, check_pipeline, create_pipeline,
    pipeline_states, retry_pipeline,
)

pytestmark = pytest.mark.integration

TEACHER = {"base_url": "http://127.0.0.1:1/v1", "model": "t"}
SPEC = {
    "name": "recipe",
    "steps": [
        {"name": "data", "spec": {"type": "datagen", "teacher": TEACHER, "target_count": 10}},
        {"name": "train", "spec": {"type": "train", "base_model": "tiny-llama", "dataset_id": "${data.dataset_id}"}},
        {"name": "quant", "spec": {"type": "quantize", "model_id": "${train.model_id}"}},
        {"name": "judge", "spec": {"type": "eval", "mode": "reference",
                                   "model_ids": ["tiny-llama", "${train.model_id}", "${quant.model_id}"]}},
        {"name": "base_eval", "spec": {"type": "eval", "mode": "reference", "model_ids": ["tiny-llama"]}},
    ],
}


def _states(session, pipeline_id):
    return {s.name: s for s in pipeline_states(session, session.get(Job, pipeline_id))}


def _finish(session_factory, pipeline_id, step: str, status=JobStatus.succeeded, result=None, error=None):
    """End the step's current job as its worker would, then advance the pipeline; returns new jobs."""
    with session_factory() as session, session.begin():
        job = _states(session, pipeline_id)[step].job
        job.status = JobStatus.running
        set_terminal(session, job=job, status=status, message=f"job {status.value}", result=result, error=error)
        session.flush()
        return [(j.pipeline_step, j.id, j.spec) for j in advance_pipeline(session, pipeline_id=pipeline_id)]


@pytest.fixture
def pipeline(session_factory, team):
    with session_factory() as session, session.begin():
        created, jobs = create_pipeline(session, team_id=team[0].id, spec=PipelineSpec.model_validate(SPEC))
        first = sorted(j.pipeline_step for j in jobs)
    assert first == ["base_eval", "data"]  # the steps that need nothing start at once, side by side
    return created.id


def test_each_step_starts_when_its_inputs_exist_with_references_filled_in(session_factory, pipeline):
    dataset_id, model_id, quant_id = (str(uuid.uuid4()) for _ in range(3))

    assert _finish(session_factory, pipeline, "base_eval") == []  # nothing needs it
    [(step, _, spec)] = _finish(session_factory, pipeline, "data", result={"dataset_id": dataset_id, "rows": 10})
    assert step == "train" and spec["dataset_id"] == dataset_id and spec["base_model"] == "tiny-llama"

    [(step, _, spec)] = _finish(session_factory, pipeline, "train", result={"model_id": model_id})
    assert step == "quant" and spec["model_id"] == model_id
    with session_factory() as session:
        states = _states(session, pipeline)
        assert states["judge"].status == "pending" and states["judge"].reason == "waiting for 'quant'"

    [(step, _, spec)] = _finish(session_factory, pipeline, "quant", result={"model_id": quant_id})
    assert step == "judge" and spec["model_ids"] == ["tiny-llama", model_id, quant_id]
    _finish(session_factory, pipeline, "judge", result={"scores": 1})

    with session_factory() as session:
        done = session.get(Job, pipeline)
        assert done.status == JobStatus.succeeded and done.error is None
        assert done.result["steps"]["quant"]["result"] == {"model_id": quant_id}
        messages = [e.message for e in done.events]
        assert messages[-1] == "pipeline succeeded"
        assert any("step 'train' queued as job" in m for m in messages)


def test_a_failed_step_skips_its_dependants_but_not_independent_steps_then_retry_keeps_what_succeeded(
        session_factory, pipeline):
    dataset_id = str(uuid.uuid4())
    _finish(session_factory, pipeline, "data", result={"dataset_id": dataset_id})
    _finish(session_factory, pipeline, "train", JobStatus.failed,
            error={"code": "training_crashed", "message": "loss is nan"})
    with session_factory() as session:
        states = _states(session, pipeline)
        assert states["quant"].status == "skipped" and states["quant"].reason == "step 'train' failed"
        assert states["judge"].status == "skipped" and states["judge"].reason == "step 'train' failed"
        # base_eval needs nothing that failed: it still runs, so the pipeline has not ended yet.
        assert states["base_eval"].status == "queued"
        assert session.get(Job, pipeline).status == JobStatus.running

    _finish(session_factory, pipeline, "base_eval", result={})
    with session_factory() as session:
        failed = session.get(Job, pipeline)
        assert failed.status == JobStatus.failed
        assert failed.error["code"] == "step_failed" and failed.error["param"] == "steps[1]"
        assert failed.error["message"] == "step 'train' failed: loss is nan; not run: quant, judge"
        assert failed.error["details"]["not_run"] == ["quant", "judge"]

    with session_factory() as session, session.begin():
        old_train = _states(session, pipeline)["train"].job.id
        created = retry_pipeline(session, pipeline=session.get(Job, pipeline))
        assert [(j.pipeline_step, j.spec["dataset_id"]) for j in created] == [("train", dataset_id)]
    with session_factory() as session:
        states = _states(session, pipeline)
        assert session.get(Job, pipeline).status == JobStatus.running
        assert [j.id for j in states["train"].jobs][0] == old_train and len(states["train"].jobs) == 2
        assert len(states["data"].jobs) == 1 and len(states["base_eval"].jobs) == 1  # not repeated
        assert states["quant"].status == "pending"

    [(step, _, spec)] = _finish(session_factory, pipeline, "train", result={"model_id": "m-2"})
    assert step == "quant" and spec["model_id"] == "m-2"

    with session_factory() as session, session.begin(), pytest.raises(RetryRefused, match="is running"):
        retry_pipeline(session, pipeline=session.get(Job, pipeline))


def test_cancel_stops_queued_steps_at_once_asks_running_ones_and_ends_when_they_stop(session_factory, pipeline):
    with session_factory() as session, session.begin():
        data = _states(session, pipeline)["data"].job
        data.status = JobStatus.running  # the worker claimed it
    with session_factory() as session, session.begin():
        cancel_pipeline(session, pipeline=session.get(Job, pipeline))
    with session_factory() as session:
        states = _states(session, pipeline)
        assert states["base_eval"].status == "cancelled"
        assert states["data"].status == "running" and states["data"].job.cancel_requested
        assert session.get(Job, pipeline).status == JobStatus.running  # waits for its running step

    # The worker stops the step: its result exists, but a cancelled pipeline starts nothing more.
    assert _finish(session_factory, pipeline, "data", JobStatus.cancelled) == []
    with session_factory() as session:
        cancelled = session.get(Job, pipeline)
        assert cancelled.status == JobStatus.cancelled
        assert cancelled.events[-1].message == "pipeline cancelled; not run: train, quant, judge"
        assert session.scalar(select(Job.id).where(Job.parent_id == pipeline, Job.pipeline_step == "train")) is None

    # Retry after a cancel re-runs the cancelled steps and goes on from there.
    with session_factory() as session, session.begin():
        created = retry_pipeline(session, pipeline=session.get(Job, pipeline))
        assert sorted(j.pipeline_step for j in created) == ["base_eval", "data"]


def test_the_sweeper_advances_a_pipeline_whose_step_ended_without_advancing_it(session_factory, settings, pipeline):
    from belle_shared.queue import make_celery
    from belle_shared.sweeper import sweep

    with session_factory() as session, session.begin():  # a worker died right after recording the outcome
        for name, result in (("data", {"dataset_id": str(uuid.uuid4())}), ("base_eval", {})):
            job = _states(session, pipeline)[name].job
            job.status = JobStatus.running
            set_terminal(session, job=job, status=JobStatus.succeeded, message="job succeeded", result=result)
    report = sweep(session_factory, make_celery(settings), settings)
    assert str(pipeline) in report.pipelines_advanced
    with session_factory() as session:
        train = _states(session, pipeline)["train"].job
        assert train is not None and train.status == JobStatus.queued
        sent = train.sent_at
    if sent is None:
        # The send failed fast on a loaded machine (logged: "the sweeper will send it"; seen once in a
        # two-process CI run): the outbox's next pass sends it, which is the contract.
        sweep(session_factory, make_celery(settings), settings)
    with session_factory() as session:
        assert _states(session, pipeline)["train"].job.sent_at is not None  # sent, on this run's Redis


@pytest.mark.parametrize("steps, param, fragment", [
    ([{"name": "a", "spec": {"type": "train", "base_model": "m", "dataset_id": "${b.dataset_id}"}},
      {"name": "b", "spec": {"type": "import", "file_id": str(uuid.uuid4())}}],
     "steps[0].spec.dataset_id", "step 'b' comes later"),
    ([{"name": "a", "spec": {"type": "train", "base_model": "m", "dataset_id": "${nope.dataset_id}"}}],
     "steps[0].spec.dataset_id", "no step 'nope' before this one"),
    ([{"name": "a", "spec": {"type": "import", "file_id": str(uuid.uuid4())}},
      {"name": "b", "spec": {"type": "quantize", "model_id": "${a.model_id}"}}],
     "steps[1].spec.model_id", "step 'a' (import) has no output 'model_id'; it offers dataset_id"),
    ([{"name": "a", "spec": {"type": "import", "file_id": str(uuid.uuid4())}},
      {"name": "a", "spec": {"type": "import", "file_id": str(uuid.uuid4())}}],
     "steps[1].name", "another step is already called 'a'"),
    ([{"name": "a", "spec": {"type": "import", "file_id": str(uuid.uuid4())}, "after": ["z"]}],
     "steps[0].after[0]", "no step 'z'"),
    ([{"name": "a", "spec": {"type": "eval", "mode": "reference", "model_ids": ["x-${b.model_id}"]}}],
     "steps[0].spec.model_ids[0]", "a reference must be the whole value"),
])
def test_check_pipeline_names_what_is_wrong_and_where(steps, param, fragment):
    with pytest.raises(PipelineSpecError) as caught:
        check_pipeline(PipelineSpec.model_validate({"steps": steps}))
    assert caught.value.param == param and fragment in caught.value.message
