"""A generation job whose worker is SIGKILLed mid-run continues from its checkpoint on another
worker: the final dataset has exactly the target rows, none lost and none duplicated.

Its own module: the test controls every worker on the queue (no shared module worker)."""

from __future__ import annotations

import json

import pytest

from helpers import events, wait_for, wait_status
from teacher import start_teacher

pytestmark = pytest.mark.integration


def _accepted(client, headers, job_id) -> int:
    progress = [e for e in events(client, headers, job_id) if e["kind"] == "progress"]
    return progress[-1]["data"]["accepted"] if progress else 0


def test_killed_worker_resumes_from_checkpoint(client, team, start_worker):
    _, headers = team
    target = 150
    with start_teacher(latency=0.25, seed=21) as teacher:
        worker = start_worker()
        spec = {
            "type": "datagen", "target_count": target, "concurrency": 2, "tasks_per_request": 6, "seed": 4,
            "teacher": {"base_url": teacher.base_url, "model": "belle-teacher"},
        }
        job = client.post("/v1/jobs", headers=headers, json=spec).json()
        # Progress events come after commits, so rows reported here are on disk.
        wait_for(lambda: _accepted(client, headers, job["id"]) >= 30, timeout=60, message="30 rows generated")
        worker.kill()
        killed_at = _accepted(client, headers, job["id"])
        assert killed_at < target, "the job finished before the kill; slow the teacher down"

        start_worker()  # the sweeper re-queues the job once its lease expires
        job = wait_status(client, headers, job["id"], timeout=120)
        assert job["status"] == "succeeded", job["error"]
        assert job["attempts"] == 2
        resumed = [e for e in events(client, headers, job["id"]) if "resuming from checkpoint" in e["message"]]
        assert resumed and resumed[0]["data"]["rows"] >= 30

        response = client.get(f"/v1/datasets/{job['result']['dataset_id']}/content", headers=headers,
                              params={"format": "instructions"})
        rows = [json.loads(line) for line in response.text.splitlines()]
        assert len(rows) == target
        assert len({row["instruction"] for row in rows}) == target
        generation = client.get(f"/v1/datasets/{job['result']['dataset_id']}",
                                headers=headers).json()["stats"]["generation"]
        assert generation["attempts"] == 2 and generation["accepted"] == target
