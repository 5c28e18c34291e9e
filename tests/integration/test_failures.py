"""What happens when things go wrong: cancel, a SIGKILLed worker, a lost message, a stolen lease."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select

from belle_shared.db.models import Dataset, Job, JobEvent
from belle_shared.db.types import utcnow
from belle_shared.specs import ImportSpec
from belle_shared.worker import claim_job
from helpers import big_import_rows, events, jsonl, upload, wait_for, wait_status

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIG = 300_000  # rows: the import takes several seconds, long enough to act on a running job


@pytest.fixture(scope="module")
def big_file_bytes() -> bytes:
    return jsonl(big_import_rows(BIG))


def _gateway_without_broker(gateway_settings):
    """A gateway that cannot reach the broker (and runs no sweeper): its jobs stay unsent."""
    from fastapi.testclient import TestClient

    from belle_gateway.app import create_app

    settings = gateway_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0", "run_sweeper": False})
    return TestClient(create_app(settings))


def _running(client, headers, job_id):
    job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
    return job if job["status"] == "running" else None


def test_cancel_running_job_stops_it_without_a_dataset(client, team, start_worker, big_file_bytes, session_factory):
    _, headers = team
    start_worker()
    file = upload(client, headers, content=big_file_bytes)
    job = client.post("/v1/jobs", headers=headers, json={"type": "import", "file_id": file["id"]}).json()
    wait_for(lambda: _running(client, headers, job["id"]), message="job running")

    response = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    assert response.status_code == 200
    assert response.json()["cancel_requested"] is True

    job = wait_status(client, headers, job["id"], timeout=15)
    assert job["status"] == "cancelled"
    with session_factory() as session:
        assert session.scalar(select(Dataset).where(Dataset.job_id == job["id"])) is None
    messages = [e["message"] for e in events(client, headers, job["id"])]
    assert "cancellation requested" in messages and messages[-1] == "job cancelled"

    # A finished job cannot be cancelled again: 409 with the reason.
    again = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_finished"


def test_cancel_queued_job_is_immediate_and_worker_skips_it(client, team, gateway_settings, settings, start_worker):
    from belle_shared.queue import make_celery, send_job

    _, headers = team
    file = upload(client, headers, [{"instruction": "a", "output": "b"}])
    # Submitted through a gateway that cannot reach the broker, so the job is certainly still queued.
    with _gateway_without_broker(gateway_settings) as lonely:
        job = lonely.post("/v1/jobs", headers=headers, json={"type": "import", "file_id": file["id"]}).json()
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None

    # Its message arrives anyway (a late send): the worker finds the job terminal and skips it.
    send_job(make_celery(settings), job_id=uuid.UUID(job["id"]), job_type="import")
    start_worker(BELLE_WORKER_CONCURRENCY=1)
    later = client.post("/v1/jobs", headers=headers, json={"type": "import", "file_id": file["id"]}).json()
    assert wait_status(client, headers, later["id"])["status"] == "succeeded"
    job = client.get(f"/v1/jobs/{job['id']}", headers=headers).json()
    assert job["status"] == "cancelled" and job["attempts"] == 0 and job["started_at"] is None


def test_sigkilled_worker_job_is_redelivered_and_finished_once(client, team, start_worker, big_file_bytes, session_factory):
    _, headers = team
    first = start_worker()
    file = upload(client, headers, content=big_file_bytes)
    job = client.post("/v1/jobs", headers=headers, json={"type": "import", "file_id": file["id"]}).json()
    running = wait_for(lambda: _running(client, headers, job["id"]), message="job running")
    assert running["attempts"] == 1

    first.kill()  # the whole worker, pool included: no ack, no cleanup, no outcome
    start_worker()
    # The gateway's sweeper sees the stopped heartbeat (lease timeout 3 s) and re-queues the job.
    job = wait_status(client, headers, job["id"], timeout=90)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2
    assert job["result"]["rows"] == BIG

    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Dataset).where(Dataset.job_id == job["id"])) == 1
    log = events(client, headers, job["id"])
    statuses = [e["data"]["status"] for e in log if e["kind"] == "status"]
    assert statuses == ["queued", "running", "queued", "running", "succeeded"]
    assert any("stopped responding" in e["message"] for e in log)


def test_message_lost_between_commit_and_send_is_resent_by_sweeper(gateway_settings, team, start_worker, client):
    """A gateway whose broker is unreachable still accepts the job; the sweeper sends it later."""
    _, headers = team
    start_worker()
    file = upload(client, headers, [{"instruction": "a", "output": "b"}])
    with _gateway_without_broker(gateway_settings) as lonely:
        response = lonely.post("/v1/jobs", headers=headers, json={"type": "import", "file_id": file["id"]})
        assert response.status_code == 201, response.text
        # Degraded, not unready: a load balancer keeps sending it the submissions it can still take.
        ready = lonely.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["database"] == "ok" and ready.json()["checks"]["broker"] != "ok"
    job_id = response.json()["id"]
    # The healthy gateway (`client`) runs the sweeper, which sends the unsent job.
    job = wait_status(client, headers, job_id, timeout=30)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 1


def test_redelivery_for_a_job_held_by_a_live_worker_is_dropped(session_factory, settings, team):
    created, _ = team
    spec = ImportSpec(file_id=uuid.uuid4())
    with session_factory() as session:
        from belle_shared.jobs import create_job

        job = create_job(session, team_id=created.id, spec=spec)
        session.commit()
        job_id = job.id

    first = claim_job(session_factory, settings, job_id=job_id, worker_id="host-a:1")
    assert first is not None and first.attempt == 1
    # A second delivery while host-a's lease is fresh: dropped.
    assert claim_job(session_factory, settings, job_id=job_id, worker_id="host-b:2") is None

    # Once the heartbeat is older than the lease, a redelivery takes the job over.
    with session_factory() as session:
        row = session.get(Job, job_id)
        row.heartbeat_at = utcnow() - dt.timedelta(seconds=settings.lease_timeout + 1)
        session.commit()
    second = claim_job(session_factory, settings, job_id=job_id, worker_id="host-b:2")
    assert second is not None and second.attempt == 2
    with session_factory() as session:
        row = session.get(Job, job_id)
        assert row.worker_id == "host-b:2"
        messages = session.scalars(select(JobEvent.message).where(JobEvent.job_id == job_id)).all()
    assert "taking over from lost worker host-a:1" in messages


def test_job_that_keeps_losing_its_worker_fails_after_max_attempts(session_factory, settings, team):
    from belle_shared.jobs import create_job
    from belle_shared.sweeper import sweep
    from belle_shared.queue import make_celery

    created, _ = team
    with session_factory() as session:
        job = create_job(session, team_id=created.id, spec=ImportSpec(file_id=uuid.uuid4()))
        job.status = "running"
        job.attempts = settings.max_attempts
        job.worker_id = "gone:1"
        job.heartbeat_at = utcnow() - dt.timedelta(seconds=settings.lease_timeout + 1)
        session.commit()
        job_id = job.id
    report = sweep(session_factory, make_celery(settings), settings)
    with session_factory() as session:
        row = session.get(Job, job_id)
        assert row.status == "failed" and row.error["code"] == "worker_lost"
    # This sweep failed it, unless the session's gateway, whose sweeper runs every 0.5 s on the same
    # database, got there between the commit above and this sweep (seen once in CI under load).
    assert str(job_id) in report.failed or report.failed == []


@pytest.mark.parametrize("raised, status, code", [
    ("retryable", "queued", "teacher_rate_limited"),
    ("job_error", "failed", "bad_input"),
    ("crash", "failed", "internal_error"),
])
def test_task_decorator_classifies_errors(session_factory, settings, team, raised, status, code):
    """The one task wrapper turns what a job function raises into a recorded, typed outcome."""
    from belle_shared.errors import JobError, RetryableJobError
    from belle_shared.jobs import create_job
    from belle_shared.queue import make_celery
    from belle_shared.worker import JobHandler, WorkerRuntime, execute_job

    def job_function(spec, ctx):
        ctx.progress("halfway", done=0.5)
        if raised == "retryable":
            raise RetryableJobError("teacher_rate_limited", "429 from the teacher")
        if raised == "job_error":
            raise JobError("bad_input", "row 3 is broken", param="file_id")
        raise ZeroDivisionError("division by zero")

    created, _ = team
    with session_factory() as session:
        job = create_job(session, team_id=created.id, spec=ImportSpec(file_id=uuid.uuid4()))
        session.commit()
        job_id = job.id
    runtime = WorkerRuntime(settings)
    runtime.bind_celery(make_celery(settings))
    # A backoff far beyond the test run, so the retry message is never consumed by a later test's worker.
    handler = JobHandler("import", job_function, retry_backoff=36_000)

    outcome = execute_job(handler, runtime, job_id)

    assert outcome.status == status and outcome.error["code"] == code
    with session_factory() as session:
        row = session.get(Job, job_id)
        log = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
    assert row.status == status and row.attempts == 1 and row.worker_id is None
    assert [e.kind for e in log][:3] == ["status", "status", "progress"]
    assert log[2].data == {"done": 0.5}
    if status == "queued":
        assert outcome.retry_in == 36_000 and row.sent_at is not None and row.finished_at is None
        assert "retrying in 36000s" in log[-1].message
    else:
        assert row.error["code"] == code and row.finished_at is not None
    if raised == "job_error":
        assert row.error == {"code": "bad_input", "message": "row 3 is broken", "param": "file_id"}
    if raised == "crash":
        assert "ZeroDivisionError" in row.error["message"] and "traceback" in row.error["details"]
