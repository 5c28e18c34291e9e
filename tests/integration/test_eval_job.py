"""Eval jobs end to end: gateway -> Redis -> evaluator worker -> a tiny local model (generated in the
worker's subprocess) and the offline teacher (as an endpoint candidate and as the judge), on an
uploaded eval set of teacher tasks whose answers the teacher computes exactly.

The teacher answers every question right and judges by recomputing the task, so its judge score is
exactly 1 and the random-init tiny model's exactly 0; the scores, rows, artifacts and the judge's
cache are checked against that. Its own module: it runs its own evaluator worker."""

from __future__ import annotations

import json
import random
import socket
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from belle_shared.artifacts import ArtifactStore
from belle_shared.models import register_model
from belle_shared.teams import create_team
from belle_teacher.tasks import generate_task
from conftest import WorkerProcess
from helpers import events, upload, wait_status
from teacher import start_teacher

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Four questions of each class; "Other" is written as BELLE's files spell it (an alias of "others").
KINDS = [("arithmetic", "math"), ("parity", "classification"), ("reverse", "Other"), ("sort", "others")]
QUESTIONS = 12
GENERATION = {"max_new_tokens": 16, "temperature": 0.0}


def _rows(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(QUESTIONS):
        kind, cls = KINDS[i % len(KINDS)]
        task = generate_task(rng, "zh", kind=kind)
        rows.append({"question": task.instruction + ("\n" + task.input if task.input else ""), "class": cls,
                     "std_answer": task.output})
    return rows


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def setup(client, settings, session_factory, tmp_path_factory):
    """A team with the tiny model and an uploaded eval set, the teacher, and an evaluator worker."""
    from belle_trainer.tiny import init_tiny_model

    model_path = init_tiny_model(tmp_path_factory.mktemp("models") / "tiny", arch="llama", seed=0)
    with session_factory() as session:
        team, key = create_team(session, name=f"team-{uuid.uuid4().hex[:8]}", secret=settings.secret_key)
        model = register_model(session, team_id=team.id, name=f"tiny-eval-{uuid.uuid4().hex[:6]}", uri=str(model_path))
        session.commit()
        ids = {"team": team.id, "model_id": str(model.id), "model": model.name}
    headers = {"Authorization": f"Bearer {key}"}
    file = upload(client, headers, _rows(), filename="tasks.jsonl", purpose="eval")
    teacher_model = f"teacher-{uuid.uuid4().hex[:8]}"  # the judge's cache key holds it: no other test's replies
    worker = WorkerProcess(settings, tmp_path_factory.mktemp("eval-logs") / "evaluator.log",
                           module="belle_evaluator.worker")
    try:
        with start_teacher(seed=0, model=teacher_model) as teacher:
            endpoint = {"base_url": teacher.base_url, "model": teacher_model}
            yield {**ids, "headers": headers, "file_id": file["id"], "endpoint": endpoint,
                   "endpoint_name": f"endpoint:{teacher_model}"}
    finally:
        worker.stop()


def _submit(client, headers, timeout: float = 120, **spec) -> dict:
    response = client.post("/v1/jobs", headers=headers, json={"type": "eval", **spec})
    assert response.status_code == 201, response.text
    return wait_status(client, headers, response.json()["id"], timeout=timeout)


def _judge_spec(setup: dict) -> dict:
    return {"model_ids": [setup["model"]], "candidate_endpoints": [setup["endpoint"]],
            "eval_file_id": setup["file_id"], "mode": "judge", "judge": setup["endpoint"], "generation": GENERATION,
            "batch_size": 4}


def _rows_of(session_factory, job_id: str) -> dict[tuple[str | None, str, str], tuple]:
    from belle_shared.db.models import EvalResult

    with session_factory() as session:
        rows = session.scalars(select(EvalResult).where(EvalResult.job_id == uuid.UUID(job_id))).all()
        return {(str(r.model_id) if r.model_id else r.details.get("name"), r.task_class, r.metric):
                (r.score, r.count, r.details) for r in rows}


@pytest.fixture(scope="module")
def judged(client, setup) -> dict:
    job = _submit(client, setup["headers"], **_judge_spec(setup))
    assert job["status"] == "succeeded", job["error"]
    return job


def test_judge_mode_scores_the_exact_teacher_1_and_the_random_model_0(judged, setup, session_factory):
    result = judged["result"]
    tiny, served = setup["model_id"], setup["endpoint_name"]
    assert result["mode"] == "judge" and result["primary_metric"] == "judge"
    assert result["eval_set"] == {"name": "tasks.jsonl", "questions": QUESTIONS}
    assert result["models"] == [{"id": tiny, "name": setup["model"]}, {"id": served, "name": served}]
    assert result["overall"] == {setup["model"]: 0.0, served: 1.0}
    assert result["judge"] == {"model": setup["endpoint"]["model"], "base_url": setup["endpoint"]["base_url"]}
    totals = result["judge_totals"]
    # 12 questions x 2 models, none cached yet (the teacher's model name is this module's own).
    assert (totals["judged"], totals["sent"], totals["cache_hits"], totals["unparsable"]) == (24, 24, 0, 0)

    rows = _rows_of(session_factory, judged["id"])
    for model_key, expected in ((tiny, 0.0), (served, 1.0)):
        for task_class, questions in (("math", 3), ("classification", 3), ("others", 6), ("overall", 12),
                                      ("overall_without_others", 6)):
            score, count, details = rows[(model_key, task_class, "judge")]
            assert (score, count, details["questions"], details["unparsable"]) == (expected, questions, questions, 0)
    # The teacher's answers are exact, so its reference metrics are 1 (math_match on the 3 math questions,
    # exact_match on the 3 classification ones, nothing for "others"), and overall over those 6.
    assert rows[(served, "math", "math_match")][:2] == (1.0, 3)
    assert rows[(served, "classification", "exact_match")][:2] == (1.0, 3)
    assert rows[(served, "overall", "reference")][:2] == (1.0, 6)
    # The endpoint candidate has no model row: its details name it.
    assert rows[(served, "overall", "judge")][2] == {"unparsable": 0, "questions": 12, "name": served,
                                                    "endpoint": setup["endpoint"]["base_url"]}
    # judge rows: 3 classes + 2 overall; reference: 2 classes + 2 overall; per model.
    assert len(rows) == 2 * (5 + 4)


def test_judge_mode_writes_the_summary_and_the_report(client, judged, setup, settings, session_factory):
    from belle_shared.db.models import Artifact

    result = judged["result"]
    with session_factory() as session:
        artifacts = {a.kind: a for a in session.scalars(select(Artifact).where(
            Artifact.job_id == uuid.UUID(judged["id"]))).all()}
        assert set(artifacts) == {"eval_summary", "eval_report"}
        assert artifacts["eval_summary"].team_id == setup["team"]
        assert (artifacts["eval_summary"].uri, artifacts["eval_report"].uri) == (result["summary_uri"],
                                                                                 result["report_uri"])
    store = ArtifactStore(settings.resolved_artifact_root)
    with store.open(result["summary_uri"]) as handle:
        summary = json.load(handle)
    with store.open(result["report_uri"]) as handle:
        report = handle.read().decode("utf-8")
    assert summary["job_id"] == judged["id"] and summary["classes"] == ["classification", "math", "others"]
    assert summary["scores"][setup["endpoint_name"]]["overall"] == {"score": 1.0, "count": 12, "unparsable": 0,
                                                                    "metric": "judge"}
    assert [item["index"] for item in summary["items"]] == list(range(QUESTIONS))
    first = summary["items"][0]
    assert (first["class"], first["line"], first["question"]) == ("math", 1, _rows()[0]["question"])
    served = first["answers"][setup["endpoint_name"]]
    assert served["answer"] == _rows()[0]["std_answer"] and served["score"] == 1.0
    assert served["judge_reply"].startswith("得分: 1") and served["reference_metric"] == "math_match"
    assert first["answers"][setup["model_id"]]["judge_reply"].startswith("得分: 0")
    assert setup["model"] in report and setup["endpoint_name"] in report and "<svg" in report

    kinds = [(e["kind"], e["message"]) for e in events(client, setup["headers"], judged["id"])]
    messages = [m for _, m in kinds]
    assert any(m.startswith(f"{setup['model']}: {QUESTIONS} answers in") for m in messages), messages
    assert any(m.startswith(f"{setup['endpoint_name']}: {QUESTIONS} answers") for m in messages), messages
    assert ("progress", "judged 24/24 (0 from the cache)") in kinds
    assert any(m.startswith("judging done: 24 judged (0 from the cache, 24 sent") for m in messages), messages


def test_the_same_eval_again_asks_the_judge_nothing(client, setup, judged):
    again = _submit(client, setup["headers"], **_judge_spec(setup))
    assert again["status"] == "succeeded", again["error"]
    totals = again["result"]["judge_totals"]
    # Greedy answers and the teacher's are the same as the first run's, so every prompt is cached.
    assert totals["cache_hits"] == totals["judged"] == 24
    assert (totals["sent"], totals["requests"], totals["prompt_tokens"]) == (0, 0, 0)
    assert again["result"]["overall"] == judged["result"]["overall"]


def test_a_redelivered_job_returns_the_recorded_result(setup, judged, settings, tmp_path):
    from belle_evaluator.job import run_eval
    from belle_shared.job_types import parse_spec
    from belle_shared.worker import JobContext, WorkerRuntime

    ctx = JobContext(job_id=uuid.UUID(judged["id"]), team_id=setup["team"], attempt=2,
                     runtime=WorkerRuntime(settings))
    # No judge, no answers: an empty work root proves nothing is generated again.
    assert run_eval(parse_spec(judged["spec"]), ctx, work_root=tmp_path) == judged["result"]
    assert list(tmp_path.iterdir()) == []


def test_pairwise_with_a_judge_that_always_prefers_answer_a_gives_only_ties(client, setup, settings, session_factory):
    biased = f"biased-{uuid.uuid4().hex[:8]}"
    with start_teacher(seed=0, model=biased, position_bias="first") as judge:
        job = _submit(client, setup["headers"], model_ids=[setup["model"]], candidate_endpoints=[setup["endpoint"]],
                      eval_file_id=setup["file_id"], mode="pairwise", generation=GENERATION,
                      judge={"base_url": judge.base_url, "model": biased})
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["primary_metric"] == "pairwise_win_rate"
    # [[A]] in both orders is a tie on every question: (0 wins + 12 ties / 2) / 12 = 0.5 each, although
    # the teacher is right and the tiny model wrong everywhere.
    assert result["overall"] == {setup["model"]: 0.5, setup["endpoint_name"]: 0.5}
    assert result["judge_totals"]["judged"] == 2 * QUESTIONS
    rows = _rows_of(session_factory, job["id"])
    assert rows[(setup["model_id"], "math", "pairwise_win_rate")][:2] == (0.5, 3)
    with ArtifactStore(settings.resolved_artifact_root).open(result["summary_uri"]) as handle:
        summary = json.load(handle)
    for item in summary["items"]:
        for answer in item["answers"].values():
            assert (answer["verdicts"], answer["outcome"], answer["score"]) == (["A", "A"], "tie", 0.5)


def test_reference_mode_needs_no_judge_and_filters_classes(client, setup, session_factory):
    # The endpoint alone, the math and "others" questions only, and of those the first 6:
    # rows 1 (math), 3, 4 (others), 5 (math), 7, 8 (others).
    job = _submit(client, setup["headers"], candidate_endpoints=[setup["endpoint"]], eval_file_id=setup["file_id"],
                  mode="reference", classes=["MATH", "other"], max_questions=6, generation=GENERATION)
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert (result["judge"], result["judge_totals"], result["primary_metric"]) == (None, None, "reference")
    assert result["eval_set"] == {"name": "tasks.jsonl", "questions": 6}
    assert result["overall"] == {setup["endpoint_name"]: 1.0}  # math_match 1 on both math questions
    rows = _rows_of(session_factory, job["id"])
    name = setup["endpoint_name"]
    assert rows == {
        (name, "math", "math_match"): (1.0, 2, {"unparsable": 0, "questions": 2, "name": name,
                                                "endpoint": setup["endpoint"]["base_url"]}),
        (name, "overall", "reference"): (1.0, 2, {"unparsable": 0, "questions": 6, "name": name,
                                                  "endpoint": setup["endpoint"]["base_url"]}),
        # No "others" question has a reference metric: nothing is left without them but math.
        (name, "overall_without_others", "reference"): (1.0, 2, {"unparsable": 0, "questions": 2, "name": name,
                                                                 "endpoint": setup["endpoint"]["base_url"]}),
    }


def test_an_unreachable_judge_fails_the_job_naming_the_judge_field(client, setup):
    judge = {"base_url": f"http://127.0.0.1:{_free_port()}/v1", "model": "nobody", "max_retries": 0}
    job = _submit(client, setup["headers"], candidate_endpoints=[setup["endpoint"]], eval_file_id=setup["file_id"],
                  mode="judge", judge=judge, generation=GENERATION)
    assert job["status"] == "failed"
    assert (job["error"]["code"], job["error"]["param"]) == ("judge_unreachable", "judge.base_url")
    # Checked before any answer was asked for.
    assert not any("answers" in e["message"] for e in events(client, setup["headers"], job["id"]))


def test_an_eval_set_row_with_an_unknown_class_fails_naming_its_line(client, setup, settings, tmp_path):
    """The worker's own check (the gateway refuses such a file at submit time already, so the job is
    run here as a worker would run it)."""
    from belle_evaluator.job import run_eval
    from belle_shared.errors import JobError
    from belle_shared.specs import EvalSpec
    from belle_shared.worker import JobContext, WorkerRuntime

    rows = _rows()[:4]
    rows[2]["class"] = "poetry"
    file = upload(client, setup["headers"], rows, filename="bad.jsonl", purpose="eval")
    ctx = JobContext(job_id=uuid.uuid4(), team_id=setup["team"], attempt=1, runtime=WorkerRuntime(settings))
    spec = EvalSpec(model_ids=[setup["model"]], eval_file_id=file["id"], mode="reference")
    with pytest.raises(JobError) as caught:
        run_eval(spec, ctx, work_root=tmp_path)
    error = caught.value.to_dict()
    assert (error["code"], error["param"], error["details"]) == ("invalid_eval_set", "eval_file_id", {"line": 3})
    assert error["message"].startswith('bad.jsonl: line 3: unknown class "poetry" (known: open qa,')
    assert not Path(tmp_path).joinpath(str(ctx.job_id)).exists()  # nothing was generated


class _Events:
    """A stand-in for the job context where only events are used."""

    def __init__(self):
        self.messages: list[str] = []

    def event(self, message: str, **_) -> None:
        self.messages.append(message)


def test_an_endpoint_candidate_that_cannot_be_reached_names_its_own_field(tmp_path):
    from belle_evaluator.evalset import EvalQuestion
    from belle_evaluator.job import Candidate, _endpoint_answers
    from belle_shared.errors import RetryableJobError
    from belle_shared.specs import EvalSpec, TeacherEndpoint

    endpoint = TeacherEndpoint(base_url=f"http://127.0.0.1:{_free_port()}/v1", model="gone", max_retries=0)
    spec = EvalSpec(candidate_endpoints=[endpoint, endpoint.model_copy(update={"model": "b"})], mode="reference")
    candidate = Candidate("endpoint:b", "endpoint:b", "candidate_endpoints[1].model", endpoint=endpoint)
    with pytest.raises(RetryableJobError) as caught:
        _endpoint_answers(candidate, [EvalQuestion(1, "1+1=?", "math", "2")], spec, _Events(), tmp_path)
    # The shared client says "candidate.base_url"; the spec's field is the second endpoint's.
    assert (caught.value.code, caught.value.param) == ("candidate_unavailable", "candidate_endpoints[1].base_url")
    assert not (tmp_path / "answers.jsonl").exists()
