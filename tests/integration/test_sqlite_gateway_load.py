"""The embedded gateway (SQLite) under many concurrent GETs, over a real port.

A GET's session used to begin with the write lock (BEGIN IMMEDIATE) and hold it while FastAPI validated
the response in the thread pool: with 40 requests waiting for the lock the pool was full, the holder
never got a thread back, and every request failed after the 30 s busy timeout (bench/load.py, 60
clients and more). GET sessions now begin deferred (belle_shared.db.engine.make_get_session_factory).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import text

from belle_shared.db.engine import make_engine, make_get_session_factory, make_session_factory
from belle_shared.db.migrate import upgrade
from belle_shared.db.models import Job, JobStatus
from belle_shared.teams import create_team
from helpers import LiveGateway

pytestmark = pytest.mark.integration

CLIENTS = 120  # past the gateway's 40 threads


@pytest.fixture(scope="module")
def sqlite_gateway(settings, tmp_path_factory):
    from belle_gateway.settings import GatewaySettings

    folder = tmp_path_factory.mktemp("embedded")
    gateway_settings = GatewaySettings(**{**settings.model_dump(), "database_url": f"sqlite:///{folder / 'belle.db'}",
                                          "run_sweeper": False, "key_prefix": f"{settings.key_prefix}-sqlite"})
    upgrade(gateway_settings)
    engine = make_engine(gateway_settings)
    with make_session_factory(engine)() as session:
        team, key = create_team(session, name=f"team-{uuid.uuid4().hex[:8]}", secret=gateway_settings.secret_key)
        now = dt.datetime.now(dt.timezone.utc)
        jobs = [Job(id=uuid.uuid4(), team_id=team.id, type="import", status=JobStatus.succeeded,
                    spec={"type": "import", "file_id": str(uuid.uuid4())}, created_at=now, finished_at=now)
                for _ in range(10)]
        session.add_all(jobs)
        session.commit()
    gateway = LiveGateway(gateway_settings)
    yield gateway.url, {"Authorization": f"Bearer {key}"}, [str(job.id) for job in jobs], engine
    gateway.stop()
    engine.dispose()


def test_many_concurrent_gets_are_all_answered_at_once(sqlite_gateway):
    url, headers, job_ids, _ = sqlite_gateway

    def get(n: int) -> int:
        path = f"/v1/jobs/{job_ids[n % len(job_ids)]}" if n % 2 else "/v1/jobs?limit=5"
        return httpx.get(url + path, headers=headers, timeout=25).status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        codes = list(pool.map(get, range(3 * CLIENTS)))
    assert codes == [200] * (3 * CLIENTS)
    assert time.perf_counter() - started < 20  # before: 30 s of busy timeout, then 500s


def test_a_get_reads_while_a_writer_holds_the_lock(sqlite_gateway):
    url, headers, job_ids, engine = sqlite_gateway
    with make_session_factory(engine)() as writer:
        writer.execute(text("UPDATE jobs SET attempts = 7 WHERE id IS NOT NULL AND 0"))  # takes the write lock
        response = httpx.get(f"{url}/v1/jobs/{job_ids[0]}", headers=headers, timeout=10)
        assert response.status_code == 200 and response.json()["status"] == "succeeded"
        writer.rollback()
    with make_get_session_factory(engine)() as session:  # and a GET session can still write, deferred
        session.execute(text("UPDATE jobs SET attempts = 1 WHERE 0"))
        session.commit()
