"""`POST /v1/evals/judge`: one answer scored by the server's judge (the offline teacher, a real
process reached over HTTP), and every way a request or the judge can go wrong."""

from __future__ import annotations

import time
import uuid

import pytest

from belle_shared.judging import load_judge_prompts
from belle_shared.specs import EVAL_CLASSES
from teacher import start_teacher

pytestmark = pytest.mark.integration

JUDGE_KEY = "sk-judge-test"
QUESTION = "中国的首都是哪座城市？"


@pytest.fixture(scope="module")
def judge_server():
    with start_teacher(seed=0, api_key=JUDGE_KEY) as teacher:
        yield teacher


@pytest.fixture
def keyed_team(client, team):
    """A team with the judge's key stored as its secret JUDGE_KEY."""
    _, headers = team
    response = client.put("/v1/secrets/JUDGE_KEY", headers=headers, json={"value": JUDGE_KEY})
    assert response.status_code == 200, response.text
    return headers


def body(judge_server, **changes) -> dict:
    out = {"question": QUESTION, "class": "open qa", "reference": "北京", "answer": "北京",
           "judge": {"base_url": judge_server.base_url, "model": "belle-teacher", "api_key_secret": "JUDGE_KEY"}}
    out.update(changes)
    return out


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_a_right_and_a_wrong_answer_get_the_judges_scores_and_reasons(client, keyed_team, judge_server):
    right = client.post("/v1/evals/judge", headers=keyed_team, json=body(judge_server))
    assert right.status_code == 200, right.text
    result = right.json()
    assert result["object"] == "eval.judgment" and result["class"] == "open qa"
    assert result["score"] == 1.0 and result["parsed"] is True
    assert result["reply"].startswith("得分: 1") and "正确" in result["reason"] and "得分" not in result["reason"]
    # The prompt is the class's own template with the three texts in it.
    template = load_judge_prompts()["open qa"]
    assert result["prompt"] == template.replace("{question}", QUESTION).replace("{std_answer}", "北京") \
        .replace("{answer}", "北京")
    assert result["judge"] == {"base_url": judge_server.base_url, "model": "belle-teacher"}
    assert result["prompt_tokens"] > 0 and result["completion_tokens"] > 0

    wrong = client.post("/v1/evals/judge", headers=keyed_team, json=body(judge_server, answer="上海", **{"class": "Open_QA"}))
    assert wrong.status_code == 200, wrong.text
    assert wrong.json()["score"] == 0.0 and "不正确" in wrong.json()["reason"]
    assert wrong.json()["class"] == "open qa"   # class names match leniently, as in eval sets


def test_without_a_reference_the_prompt_says_none(client, keyed_team, judge_server):
    request = body(judge_server, reference=None, **{"class": "generation"}, question="写一句春天的诗。", answer="春风吹绿了柳梢。")
    response = client.post("/v1/evals/judge", headers=keyed_team, json=request)
    assert response.status_code == 200, response.text
    assert "标准回答: （无）" in response.json()["prompt"]


def test_the_prompt_list_has_every_class(client, team):
    _, headers = team
    response = client.get("/v1/evals/judge/prompts", headers=headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [p["class"] for p in data] == list(EVAL_CLASSES)
    assert all("{answer}" in p["template"] for p in data)


@pytest.mark.parametrize(("changes", "param"), [
    ({"class": "poetry"}, "class"),
    ({"answer": "   "}, "answer"),
    ({"question": ""}, "question"),
    ({"judge": {"base_url": "http://127.0.0.1:9/v1"}}, "judge.model"),
    ({"judge": {"base_url": "ftp://example/v1", "model": "m"}}, "judge.base_url"),
    ({"judge": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key_secret": "bad-name!"}}, "judge.api_key_secret"),
    ({"temperature": 0.5}, "temperature"),
])
def test_bad_input_is_a_400_naming_the_field(client, keyed_team, judge_server, changes, param):
    error = _error(client.post("/v1/evals/judge", headers=keyed_team, json=body(judge_server, **changes)), 400)
    assert error["param"] == param, error


def test_the_judges_key_comes_from_the_teams_secrets(client, team, judge_server):
    _, headers = team
    missing = _error(client.post("/v1/evals/judge", headers=headers, json=body(judge_server)), 400)
    assert missing["param"] == "judge.api_key_secret" and missing["code"] == "missing_secret"
    assert "PUT /v1/secrets/JUDGE_KEY" in missing["message"]

    # A key the judge refuses is the team's field to fix: a 400, never a 401 (that would mean our key).
    client.put("/v1/secrets/JUDGE_KEY", headers=headers, json={"value": "sk-wrong"})
    refused = _error(client.post("/v1/evals/judge", headers=headers, json=body(judge_server)), 400)
    assert refused["param"] == "judge.api_key_secret" and refused["code"] == "judge_unauthorized"
    assert "sk-wrong" not in refused["message"]

    no_key = body(judge_server)
    del no_key["judge"]["api_key_secret"]
    unset = _error(client.post("/v1/evals/judge", headers=headers, json=no_key), 400)
    assert unset["code"] == "judge_unauthorized" and "api_key_secret is unset" in unset["message"]


def test_another_teams_secret_is_not_used(client, team, keyed_team, judge_server, session_factory, settings):
    from belle_shared.teams import create_team

    with session_factory() as session:
        _, key = create_team(session, name=f"other-{uuid.uuid4().hex[:8]}", secret=settings.secret_key)
        session.commit()
    other = {"Authorization": f"Bearer {key}"}
    error = _error(client.post("/v1/evals/judge", headers=other, json=body(judge_server)), 400)
    assert error["code"] == "missing_secret"


def test_a_model_the_judge_does_not_serve_names_judge_model(client, keyed_team, judge_server):
    request = body(judge_server)
    request["judge"]["model"] = "gpt-nonexistent"
    error = _error(client.post("/v1/evals/judge", headers=keyed_team, json=request), 400)
    assert error["param"] == "judge.model" and error["code"] == "judge_model_not_found"


def test_an_unreachable_judge_is_a_502_within_seconds(client, keyed_team, judge_server):
    request = body(judge_server)
    request["judge"]["base_url"] = "http://127.0.0.1:9/v1"   # the discard port: nothing listens
    start = time.monotonic()
    error = _error(client.post("/v1/evals/judge", headers=keyed_team, json=request), 502)
    assert time.monotonic() - start < 15
    assert error["code"] == "judge_unavailable" and error["param"] == "judge.base_url"


def test_the_route_needs_a_team_key(client, judge_server):
    error = _error(client.post("/v1/evals/judge", json=body(judge_server)), 401)
    assert error["code"] == "missing_api_key"
