"""A job type added in one place (tests/plugins/echo_job_type.py: its spec, queue, outputs, check and
worker) is accepted, checked, queued, run by its own worker process, listed and usable as a pipeline
step, with nothing else in the platform changed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from belle_shared import job_types
from conftest import WorkerProcess
from helpers import events, wait_for, wait_status

pytestmark = pytest.mark.integration

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


@pytest.fixture
def echo_registered(monkeypatch):
    """The registry as a fresh process sees it; the echo type is gone again after the test."""
    monkeypatch.setattr(job_types, "_TYPES", dict(job_types._TYPES))
    monkeypatch.setattr(job_types, "_adapter", None)
    monkeypatch.syspath_prepend(str(PLUGINS))
    sys.modules.pop("echo_job_type", None)
    yield
    sys.modules.pop("echo_job_type", None)


@pytest.fixture
def echo_gateway(echo_registered, settings):
    from belle_gateway.app import create_app
    from belle_gateway.settings import GatewaySettings

    gateway_settings = GatewaySettings(**{**settings.model_dump(), "job_type_modules": ["echo_job_type"]})
    assert "echo" in gateway_settings.enabled_job_types  # every registered type, unless the deployment says
    with TestClient(create_app(gateway_settings)) as client:
        yield client


@pytest.fixture
def echo_worker(echo_registered, settings, tmp_path):
    worker = WorkerProcess(settings, tmp_path / "echo-worker.log", call="echo_job_type:main",
                           PYTHONPATH=str(PLUGINS), BELLE_JOB_TYPE_MODULES="echo_job_type")
    yield worker
    worker.stop()


def test_a_type_declared_once_is_accepted_run_listed_and_documented(echo_gateway, echo_worker, team):
    _, headers = team
    client = echo_gateway

    listed = {t["name"]: t for t in client.get("/v1/job_types", headers=headers).json()["data"]}
    assert listed["echo"] == {"object": "job_type", "name": "echo", "description": "Repeat a text: the smallest job "
                              "a worker can run.", "queue": "echo", "outputs": ["echoed"], "enabled": True,
                              "spec_schema": "EchoSpec"}
    assert listed["train"]["queue"] == "train" and listed["train"]["outputs"] == ["model_id"]

    body = client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]["requestBody"]
    mapping = body["content"]["application/json"]["schema"]["discriminator"]["mapping"]
    assert mapping["echo"] == "#/components/schemas/EchoSpec" and mapping["train"].endswith("/TrainSpec")

    # The spec's own rules and the type's submit-time check: 400s naming the field, nothing queued.
    for bad, param in (({"text": ""}, "text"), ({"text": "hi", "times": 11}, "times"), ({"text": "refuse"}, "text")):
        response = client.post("/v1/jobs", headers=headers, json={"type": "echo", **bad})
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text
    assert client.get("/v1/jobs", headers=headers, params={"type": "echo"}).json()["count"] == 0

    response = client.post("/v1/jobs", headers=headers, json={"type": "echo", "text": "hi", "times": 3})
    assert response.status_code == 201, response.text
    job = wait_status(client, headers, response.json()["id"], timeout=30)
    assert job["status"] == "succeeded" and job["result"] == {"echoed": "hi hi hi"}, job
    assert any(e["kind"] == "progress" and e["data"] == {"done": 0, "total": 3} for e in events(client, headers, job["id"]))
    listed_jobs = client.get("/v1/jobs", headers=headers, params={"type": "echo"}).json()
    assert [j["id"] for j in listed_jobs["data"]] == [job["id"]]


def test_a_declared_type_is_a_pipeline_step_with_its_outputs(echo_gateway, echo_worker, team):
    _, headers = team
    client = echo_gateway
    wrong = {"steps": [{"name": "a", "spec": {"type": "echo", "text": "x"}},
                       {"name": "b", "spec": {"type": "echo", "text": "${a.dataset_id}"}}]}
    response = client.post("/v1/pipelines", headers=headers, json=wrong)
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "unknown_output" and "echoed" in error["message"], error

    spec = {"steps": [{"name": "a", "spec": {"type": "echo", "text": "x"}},
                      {"name": "b", "spec": {"type": "echo", "text": "${a.echoed}"}}]}
    response = client.post("/v1/pipelines", headers=headers, json=spec)
    assert response.status_code == 201, response.text
    pipeline_id = response.json()["id"]

    def finished():
        body = client.get(f"/v1/pipelines/{pipeline_id}", headers=headers).json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None

    pipeline = wait_for(finished, timeout=30, message="the echo pipeline to end")
    assert pipeline["status"] == "succeeded", pipeline
    assert pipeline["steps"][1]["result"] == {"echoed": "x x x x"}, pipeline["steps"]
