"""Pipelines over HTTP with a real worker on PostgreSQL + Redis: submit, run in order, fail, retry, cancel.

The steps here are import jobs (cheap); the rules for references between steps are in
test_pipeline_rules.py, and a whole datagen -> train -> quantize -> eval pipeline runs in
test_demo.py (`belle demo`).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

from belle_shared.db.models import File
from helpers import big_import_rows, events, upload, wait_for

pytestmark = pytest.mark.integration

ROWS = [{"instruction": f"把 {i} 写成中文数字", "output": f"第{i}个"} for i in range(6)]


def _wait_pipeline(client, headers, pipeline_id, statuses=("succeeded", "failed", "cancelled"), timeout=60.0):
    def current():
        body = client.get(f"/v1/pipelines/{pipeline_id}", headers=headers).json()
        return body if body["status"] in statuses else None

    return wait_for(current, timeout=timeout, message=f"pipeline {pipeline_id} to reach {statuses}")


def _submit(client, headers, spec) -> dict:
    response = client.post("/v1/pipelines", headers=headers, json=spec)
    assert response.status_code == 201, response.text
    return response.json()


def test_steps_run_in_order_side_by_side_where_independent(client, team, module_worker):
    _, headers = team
    first, second = upload(client, headers, ROWS), upload(client, headers, ROWS[:3])
    pipeline = _submit(client, headers, {"name": "imports", "steps": [
        {"name": "a", "spec": {"type": "import", "file_id": first["id"], "name": "first"}},
        {"name": "b", "spec": {"type": "import", "file_id": second["id"], "name": "second"}, "after": ["a"]},
        {"name": "c", "spec": {"type": "import", "file_id": second["id"], "name": "third"}},
    ]})
    assert pipeline["object"] == "pipeline" and pipeline["status"] == "running"
    steps = {s["name"]: s for s in pipeline["steps"]}
    assert steps["a"]["status"] == "queued" and steps["c"]["status"] == "queued"
    assert steps["b"]["status"] == "pending" and steps["b"]["reason"] == "waiting for 'a'" and steps["b"]["job_id"] is None

    done = _wait_pipeline(client, headers, pipeline["id"])
    assert done["status"] == "succeeded", done["error"]
    steps = {s["name"]: s for s in done["steps"]}
    assert [steps[n]["result"]["rows"] for n in "abc"] == [6, 3, 3]
    # b's job was created only once a had succeeded.
    b_job = client.get(f"/v1/jobs/{steps['b']['job_id']}", headers=headers).json()
    assert b_job["parent_id"] == pipeline["id"] and b_job["pipeline_step"] == "b"
    assert b_job["created_at"] >= steps["a"]["finished_at"]

    # A pipeline is a job: its events tell the story, and it is listed with the team's pipelines.
    messages = [e["message"] for e in events(client, headers, pipeline["id"])]
    assert messages[0] == "pipeline created with 3 steps" and messages[-1] == "pipeline succeeded"
    assert sum("queued as job" in m for m in messages) == 3
    listed = client.get("/v1/pipelines", headers=headers).json()
    assert [p["id"] for p in listed["data"]] == [pipeline["id"]] and listed["count"] == 1


def test_a_failed_step_stops_its_dependants_and_retry_reruns_only_it(client, team, module_worker, session_factory,
                                                                   settings):
    _, headers = team
    good, lost = upload(client, headers, ROWS), upload(client, headers, ROWS[:4])
    with session_factory() as session:
        stored = Path(session.get(File, uuid.UUID(lost["id"])).uri.removeprefix("file://"))
    hidden = stored.with_name(stored.name + ".away")
    stored.rename(hidden)  # the file's bytes are gone from the store: its import fails

    pipeline = _submit(client, headers, {"steps": [
        {"name": "ok", "spec": {"type": "import", "file_id": good["id"]}},
        {"name": "flaky", "spec": {"type": "import", "file_id": lost["id"]}, "after": ["ok"]},
        {"name": "last", "spec": {"type": "import", "file_id": good["id"], "name": "last"}, "after": ["flaky"]},
    ]})
    failed = _wait_pipeline(client, headers, pipeline["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "step_failed" and failed["error"]["param"] == "steps[1]"
    assert failed["error"]["message"].startswith(f"step 'flaky' failed: file 'data.jsonl' ({lost['id']}) is recorded "
                                                 "but its contents are missing from the artifact store")
    assert str(stored) not in failed["error"]["message"]  # where the store keeps it is not the team's business
    assert failed["error"]["message"].endswith("; not run: last")
    steps = {s["name"]: s for s in failed["steps"]}
    assert steps["last"]["status"] == "skipped" and steps["last"]["reason"] == "step 'flaky' failed"
    assert steps["flaky"]["error"] is not None

    conflict = client.post(f"/v1/pipelines/{uuid.uuid4()}/retry", headers=headers)
    assert conflict.status_code == 404 and conflict.json()["error"]["param"] == "pipeline_id"

    hidden.rename(stored)  # the storage came back
    retried = client.post(f"/v1/pipelines/{pipeline['id']}/retry", headers=headers)
    assert retried.status_code == 200, retried.text
    done = _wait_pipeline(client, headers, pipeline["id"])
    assert done["status"] == "succeeded", done["error"]
    steps = {s["name"]: s for s in done["steps"]}
    assert len(steps["ok"]["job_ids"]) == 1  # not repeated
    assert len(steps["flaky"]["job_ids"]) == 2 and steps["flaky"]["job_id"] == steps["flaky"]["job_ids"][1]
    assert len(steps["last"]["job_ids"]) == 1 and steps["last"]["result"]["rows"] == 6

    again = client.post(f"/v1/pipelines/{pipeline['id']}/retry", headers=headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "pipeline_not_retryable"


def test_cancel_stops_the_running_step_and_starts_no_more(client, team, module_worker):
    _, headers = team
    big = upload(client, headers, list(big_import_rows(300_000)), filename="big.jsonl")  # seconds of import
    small = upload(client, headers, ROWS)
    pipeline = _submit(client, headers, {"steps": [
        {"name": "slow", "spec": {"type": "import", "file_id": big["id"]}},
        {"name": "next", "spec": {"type": "import", "file_id": small["id"]}, "after": ["slow"]},
    ]})
    wait_for(lambda: client.get(f"/v1/pipelines/{pipeline['id']}", headers=headers).json()["steps"][0]["status"]
             == "running", message="the slow step to start")
    # Cancelling through the jobs API works on a pipeline too.
    response = client.post(f"/v1/jobs/{pipeline['id']}/cancel", headers=headers)
    assert response.status_code == 200, response.text
    done = _wait_pipeline(client, headers, pipeline["id"])
    assert done["status"] == "cancelled"
    steps = {s["name"]: s for s in done["steps"]}
    assert steps["slow"]["status"] == "cancelled" and steps["next"]["job_id"] is None

    finished = client.post(f"/v1/pipelines/{pipeline['id']}/cancel", headers=headers)
    assert finished.status_code == 409 and finished.json()["error"]["code"] == "pipeline_finished"


@pytest.mark.parametrize("body, param, fragment", [
    ({"steps": []}, "steps", "at least 1 item"),
    ({"steps": [{"name": "a", "spec": {"type": "import"}}]}, "steps[0].spec.file_id", "Field required"),
    ({"steps": [{"name": "a", "spec": {"type": "datagen", "teacher": {"base_url": "http://u", "model": "m"},
                                        "target_count": 0}}]},
     "steps[0].spec.target_count", "greater than or equal to 1"),
    ({"steps": [{"name": "a b", "spec": {"type": "import"}}]}, "steps[0].name", "should match pattern"),
    ({"steps": [{"name": "a", "spec": {"type": "import", "file_id": str(uuid.UUID(int=7))}}]},
     "steps[0].spec.file_id", "steps[0] (a): file_id: no file with id"),
    ({"steps": [{"name": "t", "spec": {"type": "train", "base_model": "no-such-model", "dataset_id": "${d.dataset_id}"}}]},
     "steps[0].spec.dataset_id", "no step 'd' before this one"),
    ({"steps": [{"name": "d", "spec": {"type": "import", "file_id": str(uuid.UUID(int=7))}},
                {"name": "t", "spec": {"type": "train", "base_model": "no-such-model",
                                       "dataset_id": "${d.dataset_id}"}}]},
     "steps[0].spec.file_id", "no file with id"),
    ({"steps": [{"name": "a", "spec": {"type": "import", "file_id": str(uuid.UUID(int=7))}}], "extra": 1},
     "extra", "Extra inputs are not permitted"),
])
def test_bad_pipelines_are_400s_naming_the_field(client, team, body, param, fragment):
    _, headers = team
    response = client.post("/v1/pipelines", headers=headers, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and fragment in error["message"], error


def test_a_referring_step_is_checked_now_for_what_does_not_depend_on_earlier_steps(client, team):
    _, headers = team
    file = upload(client, headers, ROWS)
    response = client.post("/v1/pipelines", headers=headers, json={"steps": [
        {"name": "d", "spec": {"type": "import", "file_id": file["id"]}},
        {"name": "q", "spec": {"type": "eval", "mode": "reference", "model_ids": ["${d.dataset_id}", "nope"]}},
    ]})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "steps[1].spec.model_ids[1]"
    assert client.get("/v1/pipelines", headers=headers).json()["count"] == 0  # nothing was created
    other = client.get(f"/v1/pipelines/{file['id']}", headers=headers)
    assert other.status_code == 404


@pytest.fixture(scope="module")
def live_gateway(gateway_settings):
    from helpers import LiveGateway

    gateway = LiveGateway(gateway_settings)
    yield gateway
    gateway.stop()


def _belle(live_gateway, headers, *args):
    import subprocess
    import sys

    key = headers["Authorization"].split()[1]
    return subprocess.run([sys.executable, "-m", "belle_cli.main", *args, "--api-url", live_gateway.url,
                           "--api-key", key], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})


def test_belle_pipeline_run_follows_every_step_and_fails_with_the_reason(client, team, module_worker, live_gateway,
                                                                        tmp_path):
    _, headers = team
    file = upload(client, headers, ROWS)
    path = tmp_path / "p.yaml"
    path.write_text(f"""\
name: cli-demo
steps:
  - name: first
    spec: {{type: import, file_id: "{file['id']}"}}
  - name: second
    after: [first]
    spec:
      type: import
      file_id: "{file['id']}"
      max_rows: 2
""", encoding="utf-8")
    done = _belle(live_gateway, headers, "pipeline", "run", str(path))
    assert done.returncode == 0, done.stderr
    # The first poll may come after the worker already took (or finished) a step: any state, then the end.
    assert re.search(r"step first: (queued|running|succeeded) \(job ", done.stderr)
    assert "step second: succeeded (job " in done.stderr
    assert "cli-demo" in done.stdout and done.stdout.count("succeeded") >= 3  # the table: title + two steps

    listed = _belle(live_gateway, headers, "pipeline", "list")
    assert listed.returncode == 0 and "2/2 done" in listed.stdout

    path.write_text("steps:\n  - name: a\n    spec: {type: import, file_id: 7\n", encoding="utf-8")
    broken = _belle(live_gateway, headers, "pipeline", "run", str(path))
    assert broken.returncode == 1 and "not valid YAML (line" in broken.stderr

    path.write_text("steps:\n  - name: a\n    spec: {type: import}\n", encoding="utf-8")
    refused = _belle(live_gateway, headers, "pipeline", "run", str(path))
    assert refused.returncode == 1 and "steps[0].spec.file_id" in refused.stderr


def test_a_worker_sends_the_next_step_to_another_service_queue_at_once(client, team, module_worker, session_factory):
    """The datagen worker that ends step `a` sends step `b` to the eval queue itself (no eval worker
    runs here, so `b` stays queued); the sweeper would only send it seconds later."""
    from belle_shared.db.models import Job

    _, headers = team
    file = upload(client, headers, ROWS)
    pipeline = _submit(client, headers, {"steps": [
        {"name": "a", "spec": {"type": "import", "file_id": file["id"]}},
        {"name": "b", "after": ["a"], "spec": {"type": "eval", "mode": "reference", "candidate_endpoints": [
            {"base_url": "http://127.0.0.1:9/v1", "model": "nobody"}]}},
    ]})
    def step_b():
        steps = client.get(f"/v1/pipelines/{pipeline['id']}", headers=headers).json()["steps"]
        return next((s for s in steps if s["name"] == "b" and s["job_id"]), None)

    step = wait_for(step_b, message="step b to be created")
    with session_factory() as session:
        job = session.get(Job, uuid.UUID(step["job_id"]))
        assert job.sent_at is not None and (job.sent_at - job.created_at).total_seconds() < 1.0
    assert client.post(f"/v1/pipelines/{pipeline['id']}/cancel", headers=headers).json()["status"] == "cancelled"
