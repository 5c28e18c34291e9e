"""Self-instruct generation end to end: gateway -> Redis -> datagen worker -> offline teacher (a real
OpenAI-compatible server reached by the real `openai` client) -> dataset in PostgreSQL."""

from __future__ import annotations

import json
import time

import pytest

from belle_teacher.tasks import solve
from conftest import WorkerProcess
from helpers import events, upload, wait_status
from teacher import start_teacher

pytestmark = pytest.mark.integration

KEY_NAME = "BELLE_TEST_TEACHER_KEY"


@pytest.fixture(scope="module")
def teacher():
    with start_teacher(latency=0.02, noise=0.15, seed=7) as server:
        yield server


@pytest.fixture(scope="module")
def keyed_teacher():
    with start_teacher(api_key="right-key", latency=0.01, seed=3) as server:
        yield server


@pytest.fixture(scope="module")
def flaky_teacher():
    with start_teacher(latency=0.01, error_rate=0.3, seed=5) as server:
        yield server


@pytest.fixture(scope="module")
def worker(settings, tmp_path_factory):
    """A datagen worker whose environment holds a (wrong) teacher key secret."""
    log = tmp_path_factory.mktemp("logs") / "datagen-worker.log"
    process = WorkerProcess(settings, log, BELLE_WORKER_CONCURRENCY=2, BELLE_SHARED_SECRET_NAMES=KEY_NAME,
                            **{KEY_NAME: "wrong-key", "BELLE_TEST_UNLISTED_KEY": "never-read"})
    yield process
    process.stop()


def _spec(teacher, **overrides) -> dict:
    """A datagen spec for ``teacher`` (a running server, or a base URL string)."""
    base_url = teacher if isinstance(teacher, str) else teacher.base_url
    spec = {
        "type": "datagen",
        "teacher": {"base_url": base_url, "model": "belle-teacher", "max_retries": 8},
        "target_count": 40,
        "concurrency": 8,
        "seed": 1,
    }
    spec.update(overrides)
    return spec


def _submit(client, headers, spec) -> dict:
    response = client.post("/v1/jobs", headers=headers, json=spec)
    assert response.status_code == 201, response.text
    return response.json()


def _download(client, headers, dataset_id, fmt) -> list[dict]:
    response = client.get(f"/v1/datasets/{dataset_id}/content", headers=headers, params={"format": fmt})
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def test_generates_a_clean_dataset(client, team, worker, teacher):
    _, headers = team
    job = _submit(client, headers, _spec(teacher, target_count=60, name="generated"))
    job = wait_status(client, headers, job["id"], timeout=120)
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["rows"] == 60 and job["result"]["stop_reason"] == "target_count"

    dataset = client.get(f"/v1/datasets/{job['result']['dataset_id']}", headers=headers).json()
    stats = dataset["stats"]
    assert dataset["name"] == "generated" and dataset["rows"] == 60
    generation = stats["generation"]
    assert generation["replies"] > 0 and generation["total_tokens"] > 0
    # The teacher's noise (blacklisted words, answers in English, near-copies ...) was caught and counted.
    assert stats["dropped_total"] > 0
    assert set(stats["dropped"]) <= set(generation["drop_reasons"])
    assert stats["chinese_share"] > 0.5

    rows = _download(client, headers, dataset["id"], "instructions")
    assert len(rows) == 60
    assert len({row["instruction"] for row in rows}) == 60
    answers = [solve(row["instruction"], row["input"]) for row in rows]
    checkable = [(row, answer) for row, answer in zip(rows, answers) if answer is not None]
    assert len(checkable) >= 0.9 * len(rows)
    assert all(row["output"] == answer for row, answer in checkable)

    conversations = _download(client, headers, dataset["id"], "conversations")
    assert len(conversations) == 60
    first = conversations[0]["conversations"]
    assert [turn["from"] for turn in first] == ["human", "assistant"]
    assert first[0]["value"].startswith(rows[0]["instruction"])

    progress = [e for e in events(client, headers, job["id"]) if e["kind"] in ("progress", "metrics")]
    assert progress and "tokens" in progress[-1]["data"]


def test_completion_api_teacher(client, team, worker, teacher):
    _, headers = team
    spec = _spec(teacher, target_count=20)
    spec["teacher"]["api"] = "completion"
    job = wait_status(client, headers, _submit(client, headers, spec)["id"], timeout=120)
    assert job["status"] == "succeeded", job["error"]
    rows = _download(client, headers, job["result"]["dataset_id"], "instructions")
    assert len(rows) == 20
    assert sum(solve(row["instruction"], row["input"]) == row["output"] for row in rows) >= 18


def test_dialogue_mode_generates_multi_turn_conversations(client, team, worker, teacher):
    _, headers = team
    job = _submit(client, headers, _spec(teacher, mode="dialogue", turns=2, target_count=5))
    job = wait_status(client, headers, job["id"], timeout=120)
    assert job["status"] == "succeeded", job["error"]
    conversations = _download(client, headers, job["result"]["dataset_id"], "conversations")
    assert len(conversations) == 5
    for row in conversations:
        assert [turn["from"] for turn in row["conversations"]] == ["human", "assistant"] * 2
    instructions = client.get(f"/v1/datasets/{job['result']['dataset_id']}/content", headers=headers,
                              params={"format": "instructions"})
    assert instructions.status_code == 400 and instructions.json()["error"]["param"] == "format"


def test_transient_teacher_errors_are_retried(client, team, worker, flaky_teacher):
    _, headers = team
    job = _submit(client, headers, _spec(flaky_teacher, target_count=30))
    job = wait_status(client, headers, job["id"], timeout=120)
    assert job["status"] == "succeeded", job["error"]
    generation = client.get(f"/v1/datasets/{job['result']['dataset_id']}", headers=headers).json()["stats"]["generation"]
    assert generation["retries"] > 0
    assert set(generation["transient_errors"]) <= {"rate_limited", "http_503"}
    assert generation["transient_errors"]


def test_token_budget_stops_generation_early(client, team, worker, teacher):
    _, headers = team
    job = _submit(client, headers, _spec(teacher, target_count=10_000, max_tokens=400, max_total_tokens=6000))
    job = wait_status(client, headers, job["id"], timeout=120)
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["stop_reason"] == "token_budget"
    assert 0 < job["result"]["rows"] < 10_000
    assert job["result"]["tokens"] <= 6000


def test_unreachable_teacher_fails_fast(client, team, worker):
    _, headers = team
    spec = _spec("http://127.0.0.1:9/v1")
    started = time.monotonic()
    job = wait_status(client, headers, _submit(client, headers, spec)["id"], timeout=60)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "teacher_unreachable" and job["error"]["param"] == "teacher.base_url"
    assert time.monotonic() - started < 30


def test_wrong_key_fails_before_any_generation(client, team, worker, keyed_teacher):
    _, headers = team
    spec = _spec(keyed_teacher)
    spec["teacher"]["api_key_secret"] = KEY_NAME
    job = wait_status(client, headers, _submit(client, headers, spec)["id"], timeout=60)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "teacher_unauthorized"
    assert job["error"]["param"] == "teacher.api_key_secret"
    assert "wrong-key" not in json.dumps(job) and "right-key" not in json.dumps(job)
    assert not [e for e in events(client, headers, job["id"]) if e["kind"] == "progress"]


def test_unset_secret_is_a_clear_error(client, team, worker, keyed_teacher):
    _, headers = team
    spec = _spec(keyed_teacher)
    spec["teacher"]["api_key_secret"] = "BELLE_TEST_NO_SUCH_SECRET"
    job = wait_status(client, headers, _submit(client, headers, spec)["id"], timeout=60)
    assert job["status"] == "failed" and job["error"]["code"] == "missing_secret"
    assert "BELLE_TEST_NO_SUCH_SECRET" in job["error"]["message"]


def test_a_worker_variable_the_operator_did_not_share_is_never_read_as_a_secret(client, team, worker, keyed_teacher):
    # The worker has BELLE_TEST_UNLISTED_KEY set, but not in BELLE_SHARED_SECRET_NAMES: a team that names
    # it (or BELLE_DATABASE_URL) must not get its value sent to a server the team chose.
    _, headers = team
    for name in ("BELLE_TEST_UNLISTED_KEY", "BELLE_DATABASE_URL"):
        spec = _spec(keyed_teacher)
        spec["teacher"]["api_key_secret"] = name
        job = wait_status(client, headers, _submit(client, headers, spec)["id"], timeout=60)
        assert job["status"] == "failed" and job["error"]["code"] == "missing_secret", job["error"]
        assert "never-read" not in json.dumps(job)


def test_unknown_teacher_model_fails(client, team, worker, teacher):
    _, headers = team
    spec = _spec(teacher)
    spec["teacher"]["model"] = "no-such-model"
    job = wait_status(client, headers, _submit(client, headers, spec)["id"], timeout=60)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "teacher_model_not_found" and job["error"]["param"] == "teacher.model"


def test_invalid_uploaded_seed_file_fails_with_its_line(client, team, worker, teacher):
    _, headers = team
    seeds = upload(client, headers, [
        {"instruction": "把下面的句子翻译成英文", "instances": [{"input": "你好", "output": "Hello"}]},
        {"instruction": "写一句问候语", "instances": [{"input": "", "output": None}]},
    ], purpose="datagen")
    job = wait_status(client, headers, _submit(client, headers, _spec(teacher, seed_file_id=seeds["id"]))["id"],
                      timeout=60)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_seed_file" and job["error"]["param"] == "seed_file_id"
    assert "line 2" in job["error"]["message"] and "output" in job["error"]["message"]


def test_uploaded_seeds_and_prompt_are_used(client, team, worker, teacher):
    _, headers = team
    seed_rows = [{"instruction": f"把数字 {n} 写成中文数字", "instances": [{"input": "", "output": out}]}
                 for n, out in ((12, "十二"), (305, "三百零五"), (4000, "四千"))]
    seeds = upload(client, headers, seed_rows, purpose="datagen")
    template = "请写出{num_tasks}个不同的任务，每个任务都要正确完成。\n{examples}"
    prompt = upload(client, headers, content=template.encode(), filename="prompt.txt", purpose="prompt")
    spec = _spec(teacher, seed_file_id=seeds["id"], prompt_file_id=prompt["id"], target_count=10)
    job = wait_status(client, headers, _submit(client, headers, spec)["id"], timeout=120)
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["rows"] == 10


def test_submission_errors_are_4xx_naming_the_field(client, team, teacher):
    _, headers = team
    bad_prompt = upload(client, headers, content="请写出一些任务。{examples}".encode(), filename="p.txt", purpose="prompt")
    seeds_as_prompt = upload(client, headers, [{"instruction": "x", "output": "y"}], purpose="datagen")
    cases = [
        (_spec(teacher, prompt_file_id=bad_prompt["id"]), "prompt_file_id", "{num_tasks}"),
        (_spec(teacher, prompt_file_id=seeds_as_prompt["id"]), "prompt_file_id", "purpose"),
        (_spec(teacher, seed_file_id="00000000-0000-0000-0000-000000000000"), "seed_file_id", "no file"),
        (_spec(teacher, num_prompt_instructions=5, tasks_per_request=5), None, "tasks_per_request"),
        (_spec(teacher, topics_file_id=bad_prompt["id"]), "topics_file_id", "dialogue"),
        (_spec(teacher, concurrency=0), "concurrency", ""),
    ]
    for spec, param, text in cases:
        response = client.post("/v1/jobs", headers=headers, json=spec)
        assert 400 <= response.status_code < 500, (spec, response.text)
        error = response.json()["error"]
        if param:
            assert error["param"] == param, error
        assert text in error["message"], error
    api_key = _spec(teacher)
    api_key["teacher"]["api_key"] = "sk-should-never-be-stored"
    response = client.post("/v1/jobs", headers=headers, json=api_key)
    assert response.status_code in (400, 422) and response.json()["error"]["param"] == "teacher.api_key"


def test_prompt_uploads_must_be_text(client, team):
    _, headers = team
    response = client.post("/v1/files", headers=headers, files={"file": ("p.txt", b"\xff\xfe\x00bad")},
                           data={"purpose": "prompt"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_text"


def test_cancel_stops_a_running_generation(client, team, worker, settings):
    _, headers = team
    with start_teacher(latency=1.0, seed=11) as slow:
        job = _submit(client, headers, _spec(slow, target_count=100_000, concurrency=4))
        wait_status(client, headers, job["id"], statuses=("running",), timeout=30)
        time.sleep(1.5)
        assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).status_code == 200
        started = time.monotonic()
        job = wait_status(client, headers, job["id"], timeout=30)
        assert job["status"] == "cancelled"
        assert time.monotonic() - started < 10


def test_team_secret_supplies_the_teacher_key(client, team, worker, keyed_teacher, session_factory):
    _, headers = team
    # The worker's environment holds a wrong key under the same name: the team's own secret wins.
    response = client.put(f"/v1/secrets/{KEY_NAME}", headers=headers, json={"value": "right-key"})
    assert response.status_code == 200 and "right-key" not in response.text
    listed = client.get("/v1/secrets", headers=headers)
    assert [s["name"] for s in listed.json()["data"]] == [KEY_NAME] and "right-key" not in listed.text
    from belle_shared.db.models import TeamSecret

    with session_factory() as session:
        stored = session.query(TeamSecret).filter_by(name=KEY_NAME).all()
    assert stored and all("right-key" not in s.ciphertext for s in stored)

    spec = _spec(keyed_teacher, target_count=5)
    spec["teacher"]["api_key_secret"] = KEY_NAME
    job = wait_status(client, headers, _submit(client, headers, spec)["id"], timeout=60)
    assert job["status"] == "succeeded", job["error"]

    assert client.delete(f"/v1/secrets/{KEY_NAME}", headers=headers).status_code == 204
    assert client.delete(f"/v1/secrets/{KEY_NAME}", headers=headers).status_code == 404
    bad = client.put("/v1/secrets/not-a-name", headers=headers, json={"value": "x"})
    assert bad.status_code in (400, 422) and "name" in bad.json()["error"]["param"]
