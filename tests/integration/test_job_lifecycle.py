"""A job's life through HTTP with a real worker on PostgreSQL + Redis: submit, run, events, result."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import select

from belle_shared.db.models import Artifact, Dataset, JobStatus
from belle_shared.jobs import create_job, set_terminal
from belle_shared.specs import ImportSpec
from helpers import events, upload, wait_status

pytestmark = pytest.mark.integration

ROWS = [
    {"instruction": "把下面的句子翻译成英文。", "input": "我爱北京。", "output": "I love Beijing."},
    {"input": "Human: 你好\n\nAssistant: ", "target": "你好！有什么可以帮你？"},
    {"conversations": [{"from": "human", "value": "1+1=?"}, {"from": "assistant", "value": "2"},
                       {"from": "human", "value": "再加 1 呢？"}, {"from": "assistant", "value": "3"}]},
    {"messages": [{"role": "system", "content": "你是助手"}, {"role": "user", "content": "说 hi"},
                  {"role": "assistant", "content": "hi"}]},
    {"instruction": "没有回答"},  # dropped: no output
    {"instruction": "把下面的句子翻译成英文。", "input": "我爱北京。", "output": "I love Beijing."},  # duplicate
]


def test_import_job_runs_to_success_with_events_and_dataset(client, team, module_worker, session_factory, settings):
    _, headers = team
    file = upload(client, headers, ROWS, filename="mixed.jsonl")
    assert file["lines"] == 6

    response = client.post("/v1/jobs", headers=headers, json={"type": "import", "file_id": file["id"]})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "queued" and job["type"] == "import"

    job = wait_status(client, headers, job["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 1
    assert job["result"]["rows"] == 4 and job["result"]["dropped"] == 2
    assert job["started_at"] <= job["finished_at"]

    statuses = [e["data"]["status"] for e in events(client, headers, job["id"]) if e["kind"] == "status"]
    assert statuses == ["queued", "running", "succeeded"]

    dataset = client.get(f"/v1/datasets/{job['result']['dataset_id']}", headers=headers).json()
    assert dataset["rows"] == 4 and dataset["name"] == "mixed"
    assert dataset["stats"]["dropped"] == {"invalid_row": 1, "duplicate": 1}
    assert {d["line"] for d in dataset["stats"]["drop_examples"]} == {5, 6}
    assert dataset["stats"]["formats"] == {"belle_instruction": 1, "belle_hf": 1, "belle_conversations": 1,
                                           "openai_messages": 1}

    # The stored rows are the canonical conversations, in order.
    with session_factory() as session:
        record = session.scalar(select(Dataset).where(Dataset.job_id == job["id"]))
        artifact = session.get(Artifact, record.artifact_id)
    from belle_shared.artifacts import ArtifactStore

    with ArtifactStore(settings.resolved_artifact_root).open(artifact.uri) as f:
        rows = [json.loads(line) for line in f]
    assert rows[0] == {"conversations": [{"from": "human", "value": "把下面的句子翻译成英文。\n我爱北京。"},
                                         {"from": "assistant", "value": "I love Beijing."}]}
    assert rows[1]["conversations"][0]["value"] == "你好"
    assert len(rows[2]["conversations"]) == 4
    assert rows[3]["system"] == "你是助手"


def test_a_preference_file_imports_as_a_preference_dataset(client, team, module_worker, settings):
    """DPO's data: a file whose first row is a pair becomes a dataset of canonical pairs (format
    `preferences`) that a DPO train job takes and a supervised one refuses."""
    _, headers = team
    rows = [
        {"input": {"messages": [{"role": "system", "content": "简短回答"}, {"role": "user", "content": "1+1?"}]},
         "preferred_output": [{"role": "assistant", "content": "2"}],
         "non_preferred_output": [{"role": "assistant", "content": "3"}]},
        {"conversations": [{"from": "human", "value": "你好"}], "chosen": {"from": "gpt", "value": "你好！"},
         "rejected": {"from": "gpt", "value": "嗯"}},
        {"prompt": "same", "chosen": "a", "rejected": "a"},  # dropped: the same reply twice
        {"instruction": "a supervised row", "output": "x"},  # dropped: not a pair
    ]
    file = upload(client, headers, rows, filename="pairs.jsonl")
    job = wait_status(client, headers, client.post("/v1/jobs", headers=headers, json={
        "type": "import", "file_id": file["id"]}).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    dataset = client.get(f"/v1/datasets/{job['result']['dataset_id']}", headers=headers).json()
    assert dataset["format"] == "preferences" and dataset["rows"] == 2
    assert dataset["stats"]["dropped"] == {"invalid_row": 1, "not_a_pair": 1}
    assert dataset["stats"]["formats"] == {"openai_preference": 1, "sharegpt_preference": 1}

    from belle_shared.artifacts import ArtifactStore
    from belle_shared.db.models import Dataset as DatasetRecord

    with client.app.state.session_factory() as session:
        uri = session.get(DatasetRecord, uuid.UUID(dataset["id"])).artifact.uri
    with ArtifactStore(settings.resolved_artifact_root).open(uri) as f:
        pairs = [json.loads(line) for line in f]
    assert pairs[0] == {"conversations": [{"from": "human", "value": "1+1?"}], "system": "简短回答",
                        "chosen": "2", "rejected": "3"}
    assert pairs[1] == {"conversations": [{"from": "human", "value": "你好"}], "chosen": "你好！", "rejected": "嗯"}

    # Supervised fine-tuning refuses it before anything is queued (DPO's acceptance: test_fine_tuning_api.py).
    response = client.post("/v1/jobs", headers=headers, json={
        "type": "train", "base_model": "any", "dataset_id": dataset["id"], "objective": "sft"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "dataset_id"
    assert "holds preference pairs" in response.json()["error"]["message"]


def test_import_with_no_usable_row_fails_with_line_numbers_and_no_dataset(client, team, module_worker, session_factory):
    _, headers = team
    file = upload(client, headers, [{"foo": 1}, {"instruction": "", "output": "x"}])
    job = client.post("/v1/jobs", headers=headers, json={"type": "import", "file_id": file["id"]}).json()
    job = wait_status(client, headers, job["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "no_usable_rows"
    assert "line 1" in job["error"]["message"] and "line 2" in job["error"]["message"]
    with session_factory() as session:
        assert session.scalar(select(Dataset).where(Dataset.job_id == job["id"])) is None


def test_event_stream_follows_job_until_it_ends(client, team, module_worker):
    _, headers = team
    file = upload(client, headers, ROWS[:2])
    job = client.post("/v1/jobs", headers=headers, json={"type": "import", "file_id": file["id"]}).json()
    seen, end = [], None
    with client.stream("GET", f"/v1/jobs/{job['id']}/events", headers=headers, params={"stream": "true"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                payload = json.loads(line[6:])
                if name == "end":
                    end = payload
                    break
                seen.append(payload)
    assert end == {"status": "succeeded"}
    assert [e["data"]["status"] for e in seen if e["kind"] == "status"] == ["queued", "running", "succeeded"]
    assert [e["id"] for e in seen] == sorted(e["id"] for e in seen)


def test_the_event_stream_of_a_finished_job_ends_at_once(gateway_settings, team, session_factory):
    """Its events and `end` in one go, not one poll interval later (30 s here, so a wait would show)."""
    from fastapi.testclient import TestClient

    from belle_gateway.app import create_app

    created, headers = team
    with session_factory() as session:
        job = create_job(session, team_id=created.id, spec=ImportSpec(file_id=uuid.uuid4()))
        set_terminal(session, job=job, status=JobStatus.succeeded, message="job succeeded", result={"rows": 0})
        session.commit()
    slow_polls = gateway_settings.model_copy(update={"sse_poll_interval": 30.0, "run_sweeper": False})
    with TestClient(create_app(slow_polls)) as client:
        started = time.monotonic()
        with client.stream("GET", f"/v1/jobs/{job.id}/events", headers=headers, params={"stream": "true"}) as r:
            text = r.read().decode()
        took = time.monotonic() - started
    assert "event: job.event" in text and text.rstrip().endswith('data: {"status": "succeeded"}')
    assert took < 15, f"the stream of a finished job took {took:.1f}s to end"


def test_list_jobs_filters_and_paginates(client, team, module_worker):
    _, headers = team
    file = upload(client, headers, ROWS[:1])
    ids = [client.post("/v1/jobs", headers=headers, json={"type": "import", "file_id": file["id"]}).json()["id"]
           for _ in range(3)]
    for job_id in ids:
        wait_status(client, headers, job_id)
    page = client.get("/v1/jobs", headers=headers, params={"limit": 2}).json()
    assert page["count"] == 3 and len(page["data"]) == 2 and page["has_more"] is True
    rest = client.get("/v1/jobs", headers=headers, params={"limit": 2, "offset": 2}).json()
    assert len(rest["data"]) == 1 and rest["has_more"] is False
    assert {j["id"] for j in page["data"] + rest["data"]} == set(ids)
    assert client.get("/v1/jobs", headers=headers, params={"status": "failed"}).json()["count"] == 0
    assert client.get("/v1/jobs", headers=headers, params={"type": "import", "status": "succeeded"}).json()["count"] == 3


def test_readyz_checks_database_and_broker(client):
    body = client.get("/readyz").json()
    assert body == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}, "message": None}
    assert client.get("/healthz").json() == {"status": "ok"}


def test_metrics_count_jobs_by_status(client, team, module_worker):
    _, headers = team
    file = upload(client, headers, ROWS[:1])
    job = client.post("/v1/jobs", headers=headers, json={"type": "import", "file_id": file["id"]}).json()
    wait_status(client, headers, job["id"])
    text = client.get("/metrics").text
    assert 'belle_jobs_submitted_total{type="import"}' in text
    line = next(l for l in text.splitlines() if l.startswith('belle_jobs{status="succeeded",type="import"}'))
    assert float(line.split()[-1]) >= 1


def _sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (0 when the series does not exist yet)."""
    wanted = "{" + ",".join(f'{key}="{value}"' for key, value in sorted(labels.items())) + "}"
    for line in text.splitlines():
        if line.startswith(name + "{"):
            series, value = line.rsplit(" ", 1)
            if "{" + ",".join(sorted(series[len(name) + 1:-1].split(","))) + "}" == wanted:
                return float(value)
    return 0.0


def test_metrics_count_http_requests_by_route_template_and_status(client, team):
    _, headers = team
    requests = "belle_http_requests_total"
    before = client.get("/metrics").text
    job_id = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/v1/jobs/{job_id}", headers=headers).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}").status_code == 401
    assert client.get("/healthz").status_code == 200
    assert client.get("/no-such-page").status_code == 404
    after = client.get("/metrics").text

    def delta(**labels):
        return _sample(after, requests, **labels) - _sample(before, requests, **labels)

    # Counted under the route's template (not the concrete id), with the status that was sent.
    assert delta(method="GET", route="/v1/jobs/{job_id}", status="404") == 1
    assert delta(method="GET", route="/v1/jobs/{job_id}", status="401") == 1
    assert delta(method="GET", route="/healthz", status="200") == 1
    assert delta(method="GET", route="unmatched", status="404") == 1
    assert _sample(after, "belle_http_request_seconds_count", method="GET", route="/healthz") >= 1
