"""The `/v1/evals` routes and the eval job's submit-time checks.

Eval jobs, their EvalResult rows and their two artifacts (eval_summary, eval_report) are written
straight into this run's database and artifact store, as the evaluator would leave them, so the
routes are tested without a worker (the worker's own tests run it end to end). Submit-time checks go
through `POST /v1/jobs` on a gateway that serves eval jobs.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid

import pytest
from fastapi.testclient import TestClient

from belle_gateway.app import create_app
from belle_shared.artifacts import ArtifactStore
from belle_shared.db.models import Artifact, EvalResult, File, Job, Model
from belle_shared.specs import EVAL_CLASSES
from helpers import jsonl, upload

pytestmark = pytest.mark.integration

JUDGE = {"model": "judge-1", "base_url": "http://127.0.0.1:9/v1"}
ENDPOINT = "endpoint:gpt-x"
REPORT_HTML = "<!DOCTYPE html>\n<html><body><h1>Evaluation</h1><p>数学 80.0</p></body></html>\n"
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def eval_client(gateway_settings):
    """A gateway that serves eval jobs (no worker consumes them: nothing here needs one to run)."""
    types = list(dict.fromkeys([*gateway_settings.enabled_job_types, "eval"]))
    settings = gateway_settings.model_copy(update={"enabled_job_types": types, "run_sweeper": False})
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def store(settings) -> ArtifactStore:
    return ArtifactStore(settings.resolved_artifact_root)


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def add_model(session_factory, team_id, name: str) -> str:
    with session_factory() as session:
        model = Model(id=uuid.uuid4(), team_id=team_id, name=name, kind="base", uri=f"/models/{name}", details={})
        session.add(model)
        session.commit()
        return str(model.id)


def add_job(session_factory, team_id, *, type="eval", status="succeeded", spec=None, result=None,
            created_at=T0) -> str:
    with session_factory() as session:
        job = Job(id=uuid.uuid4(), team_id=team_id, type=type, status=status, spec=spec or {"type": type},
                  result=result, created_at=created_at,
                  finished_at=created_at + dt.timedelta(minutes=5) if status == "succeeded" else None)
        session.add(job)
        session.commit()
        return str(job.id)


def add_rows(session_factory, job_id: str, rows) -> None:
    """rows: (model id or None, class, metric, score, count, details)."""
    with session_factory() as session:
        for model_id, cls, metric, score, count, details in rows:
            session.add(EvalResult(job_id=uuid.UUID(job_id), model_id=uuid.UUID(model_id) if model_id else None,
                                   task_class=cls, metric=metric, score=score, count=count, details=details))
        session.commit()


def add_artifact(session_factory, store, team_id, job_id: str, kind: str, data: bytes, name: str) -> None:
    stored = store.put_stream(io.BytesIO(data), f"teams/{team_id}/evals/{job_id}/{name}")
    with session_factory() as session:
        session.add(Artifact(team_id=team_id, job_id=uuid.UUID(job_id), kind=kind, uri=stored.uri,
                             sha256=stored.sha256, bytes=stored.bytes))
        session.commit()


def judge_eval(session_factory, store, team_id) -> dict:
    """A finished judge-mode eval of alpha, beta and an endpoint model on three questions."""
    alpha, beta = add_model(session_factory, team_id, "alpha"), add_model(session_factory, team_id, "beta")
    models = [{"id": alpha, "name": "alpha"}, {"id": beta, "name": "beta"}, {"id": ENDPOINT, "name": ENDPOINT}]
    result = {"mode": "judge", "eval_set": {"name": "eval_set_zh.jsonl", "questions": 3}, "models": models,
              "primary_metric": "judge", "overall": {"alpha": 0.66, "beta": 0.4, ENDPOINT: 1.0}, "judge": JUDGE,
              "judge_totals": {"requests": 9, "cached": 0}, "summary_uri": "x", "report_uri": "y"}
    spec = {"type": "eval", "model_ids": ["alpha", "beta"], "mode": "judge", "judge": JUDGE, "eval_file_id": None}
    job_id = add_job(session_factory, team_id, spec=spec, result=result, created_at=T0)
    endpoint = {"endpoint": "http://127.0.0.1:9/v1", "name": ENDPOINT, "unparsable": 0, "questions": 2}
    # Written out of canonical order on purpose: the route sorts classes (math before code) and metrics.
    add_rows(session_factory, job_id, [
        (alpha, "overall_without_others", "judge", 0.66, 9, {"unparsable": 1, "questions": 3}),
        (alpha, "code", "judge", 0.5, 4, {"unparsable": 0, "questions": 1}),
        (alpha, "overall", "judge", 0.66, 9, {"unparsable": 1, "questions": 3}),
        (alpha, "overall", "reference", 0.6, 5, {"unparsable": 0, "questions": 3}),
        (alpha, "math", "math_match", 0.6, 5, {"unparsable": 0, "questions": 2}),
        (alpha, "math", "judge", 0.8, 5, {"unparsable": 1, "questions": 2}),
        (beta, "math", "judge", 0.4, 5, {"unparsable": 0, "questions": 2}),
        (beta, "code", "judge", None, 0, {"unparsable": 4, "questions": 1}),
        (beta, "overall", "judge", 0.4, 5, {"unparsable": 4, "questions": 3}),
        (None, "math", "judge", 1.0, 5, endpoint),
        (None, "overall", "judge", 1.0, 5, endpoint),
    ])

    def answer(text, score, reply="得分: 1"):
        return {"answer": text, "judge_reply": reply, "score": score, "reference_metric": None, "reference_score": None}

    items = [
        {"index": 0, "line": 1, "class": "math", "question": "1+1=?", "std_answer": "2",
         "answers": {alpha: answer("2", 1.0), beta: answer("3", 0.0, "得分: 0"), ENDPOINT: answer("2", 1.0)}},
        {"index": 1, "class": "math", "question": "2+2=?", "std_answer": "4",
         "answers": {alpha: answer("4", 1.0), beta: answer("5", 0.0, "得分: 0")}},
        {"index": 2, "class": "code", "question": "写一个 hello world", "std_answer": None,
         "answers": {alpha: answer("print('hi')", 0.5), beta: answer("?", None, "无法评分")}},
    ]
    summary = {"job_id": job_id, "mode": "judge", "eval_set": result["eval_set"], "judge": JUDGE, "models": models,
               "classes": ["math", "code"], "scores": {}, "items": items}
    add_artifact(session_factory, store, team_id, job_id, "eval_summary",
                 json.dumps(summary, ensure_ascii=False).encode(), "summary.json")
    add_artifact(session_factory, store, team_id, job_id, "eval_report", REPORT_HTML.encode(), "report.html")
    return {"id": job_id, "alpha": alpha, "beta": beta}


@pytest.fixture
def judged(session_factory, store, team):
    created, headers = team
    return judge_eval(session_factory, store, created.id), headers


# ----------------------------------------------------------------------------------- one eval


def test_scores_are_grouped_by_model_class_and_metric(eval_client, judged):
    ids, headers = judged
    body = eval_client.get(f"/v1/evals/{ids['id']}", headers=headers).json()
    assert body["object"] == "eval" and body["status"] == "succeeded" and body["mode"] == "judge"
    scores = body["scores"]
    # Models in the result's order; classes in canonical order (math before code), overall rows last.
    assert list(scores) == ["alpha", "beta", ENDPOINT]
    assert list(scores["alpha"]) == ["math", "code", "overall", "overall_without_others"]
    # The judge's metric first, then reference metrics.
    assert list(scores["alpha"]["math"]) == ["judge", "math_match"]
    assert list(scores["alpha"]["overall"]) == ["judge", "reference"]
    assert scores["alpha"]["math"] == {"judge": {"score": 0.8, "count": 5, "unparsable": 1},
                                       "math_match": {"score": 0.6, "count": 5, "unparsable": 0}}
    assert scores["beta"]["code"] == {"judge": {"score": None, "count": 0, "unparsable": 4}}
    # The endpoint model has no registry row: its rows are shown under the name in their details.
    assert scores[ENDPOINT] == {"math": {"judge": {"score": 1.0, "count": 5, "unparsable": 0}},
                                "overall": {"judge": {"score": 1.0, "count": 5, "unparsable": 0}}}
    assert body["overall"] == {"alpha": 0.66, "beta": 0.4, ENDPOINT: 1.0}
    assert body["models"] == [{"id": ids["alpha"], "name": "alpha"}, {"id": ids["beta"], "name": "beta"},
                              {"id": ENDPOINT, "name": ENDPOINT}]
    assert body["judge"] == JUDGE and body["judge_totals"] == {"requests": 9, "cached": 0}
    assert body["primary_metric"] == "judge" and body["eval_set"] == {"name": "eval_set_zh.jsonl", "questions": 3}
    assert body["report_url"] == f"/v1/evals/{ids['id']}/report"
    assert body["items_url"] == f"/v1/evals/{ids['id']}/items"


def test_unfinished_eval_has_status_and_empty_scores(eval_client, session_factory, team):
    created, headers = team
    job_id = add_job(session_factory, created.id, status="running",
                     spec={"type": "eval", "model_ids": ["alpha"], "mode": "reference",
                           "candidate_endpoints": [{"base_url": "http://e/v1", "model": "m1"}]})
    body = eval_client.get(f"/v1/evals/{job_id}", headers=headers).json()
    assert body["status"] == "running" and body["scores"] == {} and body["overall"] == {}
    assert body["report_url"] is None and body["items_url"] is None
    # Before the worker resolves them, the models are shown as submitted.
    assert body["models"] == [{"id": None, "name": "alpha"}, {"id": "endpoint:m1", "name": "endpoint:m1"}]
    assert _error(eval_client.get(f"/v1/evals/{job_id}/report", headers=headers), 404)["code"] == "eval_report_not_found"
    assert _error(eval_client.get(f"/v1/evals/{job_id}/items", headers=headers), 404)["code"] == "eval_summary_not_found"


def test_list_has_only_the_teams_evals_newest_first(eval_client, session_factory, judged, team):
    ids, headers = judged
    created, _ = team
    add_job(session_factory, created.id, type="train", created_at=T0 + dt.timedelta(hours=2))
    later = add_job(session_factory, created.id, status="queued", created_at=T0 + dt.timedelta(hours=1),
                    spec={"type": "eval", "model_ids": ["beta"], "mode": "reference"})
    body = eval_client.get("/v1/evals", headers=headers).json()
    assert body["count"] == 2 and [e["id"] for e in body["data"]] == [later, ids["id"]]
    assert body["data"][1]["overall"] == {"alpha": 0.66, "beta": 0.4, ENDPOINT: 1.0}
    assert body["data"][0]["overall"] == {} and body["data"][0]["mode"] == "reference"
    only = eval_client.get("/v1/evals", headers=headers, params={"status": "succeeded"}).json()
    assert [e["id"] for e in only["data"]] == [ids["id"]]
    page = eval_client.get("/v1/evals", headers=headers, params={"limit": 1}).json()
    assert page["count"] == 2 and page["has_more"] is True and len(page["data"]) == 1


def test_another_teams_eval_is_404(eval_client, session_factory, judged, team):
    ids, _ = judged
    created, headers = team  # the team that owns `judged`
    other_team_headers = _other_team(session_factory, eval_client)
    for path in ("", "/items", "/report"):
        error = _error(eval_client.get(f"/v1/evals/{ids['id']}{path}", headers=other_team_headers), 404)
        assert error["code"] == "eval_not_found" and error["type"] == "not_found_error" and ids["id"] in error["message"]
    assert _error(eval_client.get(f"/v1/evals/{uuid.uuid4()}", headers=headers), 404)["param"] == "eval_id"
    # A job of the team that is not an eval is not an eval.
    train = add_job(session_factory, created.id, type="train")
    assert _error(eval_client.get(f"/v1/evals/{train}", headers=headers), 404)["code"] == "eval_not_found"
    assert eval_client.get("/v1/evals", headers=other_team_headers).json()["count"] == 0


def _other_team(session_factory, client) -> dict:
    from belle_shared.teams import create_team

    settings = client.app.state.settings
    with session_factory() as session:
        _, key = create_team(session, name=f"other-{uuid.uuid4().hex[:8]}", secret=settings.secret_key)
        session.commit()
    return {"Authorization": f"Bearer {key}"}


# ------------------------------------------------------------------------------------ items


def test_items_link_scores_to_answers_and_replies(eval_client, judged):
    ids, headers = judged
    body = eval_client.get(f"/v1/evals/{ids['id']}/items", headers=headers).json()
    assert body["count"] == 3 and body["has_more"] is False
    first = body["data"][0]
    assert first["class"] == "math" and first["question"] == "1+1=?" and first["std_answer"] == "2"
    assert first["line"] == 1 and body["data"][1]["line"] is None
    # Answers are keyed by model name, in the eval's model order.
    assert list(first["answers"]) == ["alpha", "beta", ENDPOINT]
    assert first["answers"]["beta"] == {"answer": "3", "judge_reply": "得分: 0", "score": 0.0,
                                        "reference_metric": None, "reference_score": None}
    assert body["data"][2]["answers"]["beta"]["score"] is None
    assert body["data"][2]["answers"]["beta"]["judge_reply"] == "无法评分"


def test_items_filters_and_paging(eval_client, judged):
    ids, headers = judged
    url = f"/v1/evals/{ids['id']}/items"
    # The class filter takes any spelling of a class.
    math = eval_client.get(url, headers=headers, params={"class": "MATH"}).json()
    assert math["count"] == 2 and [i["index"] for i in math["data"]] == [0, 1]
    beta = eval_client.get(url, headers=headers, params={"model": "beta", "class": "code"}).json()
    assert beta["count"] == 1 and list(beta["data"][0]["answers"]) == ["beta"]
    by_id = eval_client.get(url, headers=headers, params={"model": ids["alpha"]}).json()
    assert [list(i["answers"]) for i in by_id["data"]] == [["alpha"], ["alpha"], ["alpha"]]
    # Paging: 3 items, one per page; the second page holds item 1 and there is a third.
    page = eval_client.get(url, headers=headers, params={"limit": 1, "offset": 1}).json()
    assert [i["index"] for i in page["data"]] == [1] and page["count"] == 3 and page["has_more"] is True
    last = eval_client.get(url, headers=headers, params={"limit": 1, "offset": 2}).json()
    assert [i["index"] for i in last["data"]] == [2] and last["has_more"] is False


def test_items_unknown_filters_are_400_naming_them(eval_client, judged):
    ids, headers = judged
    url = f"/v1/evals/{ids['id']}/items"
    error = _error(eval_client.get(url, headers=headers, params={"class": "opne qa"}), 400)
    assert error["param"] == "class" and "'opne qa'" in error["message"] and "math, code" in error["message"]
    # A real class that this eval set has no questions of is unknown to this eval too.
    error = _error(eval_client.get(url, headers=headers, params={"class": "open_qa"}), 400)
    assert error["code"] == "unknown_class" and "'open_qa'" in error["message"]
    error = _error(eval_client.get(url, headers=headers, params={"model": "gamma"}), 400)
    assert error["param"] == "model" and "'gamma'" in error["message"] and "alpha, beta" in error["message"]


def test_report_is_html(eval_client, judged):
    ids, headers = judged
    response = eval_client.get(f"/v1/evals/{ids['id']}/report", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == REPORT_HTML
    assert "default-src 'none'" in response.headers["content-security-policy"]


# ---------------------------------------------------------------------------------- compare


def reference_eval(session_factory, store, team_id, alpha: str) -> str:
    """A finished reference-mode eval of alpha on another eval set (an uploaded one of 6 questions).

    The overall rows' metric is "reference": math_match 0.5 on 4 questions and exact_match 1.0 on 2
    give (0.5*4 + 1.0*2) / 6 = 2/3 over the 6 scored answers."""
    result = {"mode": "reference", "eval_set": {"name": "mine.jsonl", "questions": 6},
              "models": [{"id": alpha, "name": "alpha"}], "primary_metric": "reference", "overall": {"alpha": 0.6667},
              "judge": None, "judge_totals": None}
    spec = {"type": "eval", "model_ids": ["alpha"], "mode": "reference", "eval_file_id": str(uuid.uuid4())}
    job_id = add_job(session_factory, team_id, spec=spec, result=result, created_at=T0 + dt.timedelta(hours=1))
    add_rows(session_factory, job_id, [
        (alpha, "math", "math_match", 0.5, 4, {"unparsable": 0, "questions": 4}),
        (alpha, "classification", "exact_match", 1.0, 2, {"unparsable": 0, "questions": 2}),
        (alpha, "overall", "reference", 2 / 3, 6, {"unparsable": 0, "questions": 6}),
        (alpha, "overall_without_others", "reference", 2 / 3, 6, {"unparsable": 0, "questions": 6}),
    ])
    return job_id


def test_compare_two_evals_side_by_side(eval_client, session_factory, store, judged, team):
    ids, headers = judged
    created, _ = team
    other = reference_eval(session_factory, store, created.id, ids["alpha"])
    body = eval_client.get("/v1/evals/compare", headers=headers, params={"ids": f"{ids['id']}, {other}"}).json()
    assert body["object"] == "eval.comparison"
    assert [(c["eval_id"], c["model"], c["metric"]) for c in body["columns"]] == [
        (ids["id"], "alpha", "judge"), (ids["id"], "beta", "judge"), (ids["id"], ENDPOINT, "judge"),
        (other, "alpha", "reference")]
    rows = {r["class"]: r for r in body["rows"]}
    # Classes in canonical order (classification before math before code), then the overall rows.
    assert [r["class"] for r in body["rows"]] == ["classification", "math", "code", "overall",
                                                  "overall_without_others"]
    # Judge columns use the judge score, never the math_match row beside it (alpha: 0.8, not 0.6).
    assert rows["math"]["scores"] == [0.8, 0.4, 1.0, 0.5] and rows["math"]["counts"] == [5, 5, 5, 4]
    assert rows["classification"]["scores"] == [None, None, None, 1.0]
    assert rows["code"]["scores"] == [0.5, None, None, None]
    # Judge columns take the judge's overall (alpha 0.66), not the "reference" overall row (0.6);
    # the reference column takes its "reference" overall row (2/3 on 6 answers).
    assert rows["overall"]["scores"][:3] == [0.66, 0.4, 1.0]
    assert rows["overall"]["scores"][3] == pytest.approx(2 / 3) and rows["overall"]["counts"] == [9, 5, 5, 6]
    assert rows["overall_without_others"]["scores"][:3] == [0.66, None, None]
    assert rows["overall_without_others"]["scores"][3] == pytest.approx(2 / 3)
    notes = " ".join(body["notes"])
    assert "different eval sets" in notes and "mine.jsonl (6 questions)" in notes
    assert "eval_set_zh.jsonl (3 questions)" in notes and "different metrics" in notes


def test_compare_same_eval_set_has_no_note(eval_client, judged):
    ids, headers = judged
    body = eval_client.get("/v1/evals/compare", headers=headers, params={"ids": ids["id"]}).json()
    assert body["notes"] == [] and len(body["columns"]) == 3


def test_compare_bad_ids_are_400_naming_them(eval_client, session_factory, judged, team):
    ids, headers = judged
    created, _ = team
    url = "/v1/evals/compare"
    error = _error(eval_client.get(url, headers=headers, params={"ids": f"{ids['id']},nope"}), 400)
    assert error["param"] == "ids" and "'nope'" in error["message"]
    missing = str(uuid.uuid4())
    error = _error(eval_client.get(url, headers=headers, params={"ids": f"{ids['id']},{missing}"}), 400)
    assert error["code"] == "eval_not_found" and missing in error["message"]
    train = add_job(session_factory, created.id, type="train")
    error = _error(eval_client.get(url, headers=headers, params={"ids": train}), 400)
    assert error["code"] == "not_an_eval" and train in error["message"]
    running = add_job(session_factory, created.id, status="running", spec={"type": "eval", "model_ids": ["alpha"]})
    error = _error(eval_client.get(url, headers=headers, params={"ids": f"{ids['id']},{running}"}), 400)
    assert error["code"] == "eval_not_finished" and running in error["message"]
    assert _error(eval_client.get(url, headers=headers, params={"ids": " , "}), 400)["param"] == "ids"
    # Another team's eval is unknown to this one.
    other = _other_team(session_factory, eval_client)
    assert _error(eval_client.get(url, headers=other, params={"ids": ids["id"]}), 400)["code"] == "eval_not_found"


# ------------------------------------------------------------------------- submit-time checks


def eval_job(file_id: str | None = None, models=("alpha",), **extra) -> dict:
    spec = {"type": "eval", "model_ids": list(models), "mode": "reference", **extra}
    if file_id is not None:
        spec["eval_file_id"] = file_id
    return spec


GOOD_ROWS = [{"question": "1+1=?", "class": "math", "std_answer": "2"},
             {"question": "天空是什么颜色？", "class": "Open_QA", "std_answer": None},
             {"question": "写一首诗", "class": "generation"}]


def test_unknown_model_is_400_naming_its_index(eval_client, session_factory, team):
    created, headers = team
    add_model(session_factory, created.id, "alpha")
    error = _error(eval_client.post("/v1/jobs", headers=headers, json=eval_job(models=("alpha", "ghost"))), 400)
    assert error["param"] == "model_ids[1]" and "'ghost'" in error["message"] and error["code"] == "model_not_found"


def test_bad_eval_files_are_400_naming_the_line(eval_client, session_factory, team):
    created, headers = team
    add_model(session_factory, created.id, "alpha")
    bad_class = upload(eval_client, headers, [*GOOD_ROWS[:2], {"question": "2+2=?", "class": "opne qa"}],
                       purpose="eval")
    error = _error(eval_client.post("/v1/jobs", headers=headers, json=eval_job(bad_class["id"])), 400)
    assert error["param"] == "eval_file_id" and error["code"] == "invalid_eval_row"
    assert error["message"] == f'eval_file_id: line 3: unknown class "opne qa" (known: {", ".join(EVAL_CLASSES)})'

    # Line 2 is blank; the row without a question is line 3 of the file.
    no_question = upload(eval_client, headers, content=jsonl(GOOD_ROWS[:1]) + b"\n" + jsonl([{"class": "math"}]),
                         purpose="eval")
    error = _error(eval_client.post("/v1/jobs", headers=headers, json=eval_job(no_question["id"])), 400)
    assert error["message"] == 'eval_file_id: line 3: "question" is missing or empty'

    wrong_purpose = upload(eval_client, headers, GOOD_ROWS, purpose="import")
    error = _error(eval_client.post("/v1/jobs", headers=headers, json=eval_job(wrong_purpose["id"])), 400)
    assert error["code"] == "wrong_file_purpose" and error["param"] == "eval_file_id"
    assert eval_client.get("/v1/evals", headers=headers).json()["count"] == 0


def test_eval_file_with_zero_rows_is_400(eval_client, session_factory, store, team):
    created, headers = team
    add_model(session_factory, created.id, "alpha")
    # An upload needs at least one JSON line, so a file with no rows can only be one stored before
    # that rule or written by hand: it is put in the store directly.
    stored = store.put_stream(io.BytesIO(b"\n  \n"), f"teams/{created.id}/files/empty.jsonl")
    with session_factory() as session:
        file = File(team_id=created.id, filename="empty.jsonl", purpose="eval", bytes=stored.bytes, lines=0,
                    sha256=stored.sha256, uri=stored.uri)
        session.add(file)
        session.commit()
        file_id = str(file.id)
    error = _error(eval_client.post("/v1/jobs", headers=headers, json=eval_job(file_id)), 400)
    assert error["code"] == "empty_eval_set" and "'empty.jsonl' has no questions" in error["message"]


def test_class_filter_that_keeps_no_question_is_400(eval_client, session_factory, team):
    created, headers = team
    add_model(session_factory, created.id, "alpha")
    good = upload(eval_client, headers, GOOD_ROWS, purpose="eval")
    error = _error(eval_client.post("/v1/jobs", headers=headers, json=eval_job(good["id"], classes=["Code"])), 400)
    # GOOD_ROWS has math, open qa and generation questions; the filter is shown canonical.
    assert error["param"] == "classes" and error["code"] == "no_questions"
    assert "'code'" in error["message"] and "(its classes: generation, math, open qa)" in error["message"]


def test_judge_mode_without_a_judge_is_400(eval_client, session_factory, team):
    created, headers = team
    add_model(session_factory, created.id, "alpha")
    error = _error(eval_client.post("/v1/jobs", headers=headers, json=eval_job(mode="judge")), 400)
    assert "judge" in error["message"]


def test_good_eval_file_is_queued_and_listed(eval_client, session_factory, team):
    created, headers = team
    add_model(session_factory, created.id, "alpha")
    good = upload(eval_client, headers, GOOD_ROWS, purpose="eval")
    response = eval_client.post("/v1/jobs", headers=headers, json=eval_job(good["id"], classes=["open_qa"]))
    assert response.status_code == 201, response.text
    listed = eval_client.get("/v1/evals", headers=headers).json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == response.json()["id"]
    assert listed["data"][0]["status"] == "queued" and listed["data"][0]["models"] == [{"id": None, "name": "alpha"}]
