"""Job queue benchmark: jobs submitted through the gateway vs bare Celery ``send_task``, same workers.

    python bench/job_queue.py              # defaults sized for a 2-core machine (~45 s); needs the project's
                                       # packages (e.g. .venv/bin/python) and PostgreSQL + Redis running
    python bench/job_queue.py --jobs 500 --clients 16 --rounds 5 --worker-concurrency 4
    python bench/job_queue.py --database-url postgresql+psycopg://postgres@db:5432/postgres \\
        --broker-url redis://redis:6379/0

It runs the production configuration: PostgreSQL (a fresh database ``belle_bench_<hex>`` on the
server that ``--database-url`` names, dropped at the end) and Redis (a fresh key prefix, whose keys
are deleted at the end). It starts a real gateway (``python -m belle_gateway``, uvicorn) and one
real datagen worker (``python -m belle_datagen.worker``, the ``belle-datagen-worker`` entry point,
prefork pool), creates a team in the database and uploads a one-row JSONL file. Every job is an
``import`` of that file, so both paths make the workers do exactly the same work: claim the row,
mark it running, import one row, write the dataset file and its database rows, record success.

The two paths differ only in what the gateway adds in front of the broker:

- **bare**: the job rows (job + first event, like an outbox already written) are created in the
  database beforehand, untimed; the timed part is one ``celery.send_task("belle.job.import",
  args=[job_id], queue="datagen")`` per job.
- **gateway**: one ``POST /v1/jobs`` per job over HTTP (auth, validation, spec checks, the
  transactional write of job + event, the send, the ``sent_at`` update).

Each round measures each path in two phases:

- **throughput**: ``--jobs`` jobs submitted as fast as ``--clients`` threads can (one
  ``httpx.Client`` each on the gateway path), then waited on. jobs/s = jobs / (last job finished -
  first submit), i.e. end to end until all are done. The "loaded p50" column is the
  submit-to-running latency in this phase; it is mostly queueing behind the backlog.
- **latency**: ``--latency-jobs`` jobs submitted one at a time, each only after the previous one
  finished, so the workers are idle: submit-to-running latency = the job's ``running`` event
  (``JobEvent.created_at``, written by the worker when it claims the job) minus the client's clock
  just before the request / ``send_task``. Same host, same clock.

Rounds alternate bare, gateway, bare, gateway ... after a warm-up of both; jobs/s is the median
of the rounds, latency percentiles are over all rounds' samples pooled. Everything (client
threads, gateway, worker, PostgreSQL, Redis) shares the machine, so the gateway's CPU is taken from
the workers: on 2 cores that is part of what it costs. Timings vary run to run; nothing is asserted.

Targets (from the backbone issue): the gateway keeps >= 50% of bare Celery's throughput and adds
<= 20 ms of idle submit-to-running latency at p50. The last line is ``ratio: X``, gateway jobs/s
over bare jobs/s (higher is better). Exit status 2 if PostgreSQL or Redis cannot be reached.

A benchmark is one self-contained script (the project, the baseline, the table and the targets in
one file), so it can be read and run alone; hence over 400 lines.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's `queue`, which Celery, kombu and httpx import.
# Running it as a script puts bench/ first on sys.path; drop it before anything imports `queue`.
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import argparse
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import redis
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from belle_shared.db.engine import make_engine, make_session_factory
from belle_shared.db.migrate import upgrade
from belle_shared.db.models import Job, JobEvent, TERMINAL_STATUSES
from belle_shared.db.types import utcnow
from belle_shared.jobs import create_job
from belle_shared.job_types import queue_for
from belle_shared.queue import make_celery, task_name
from belle_shared.settings import Settings
from belle_shared.specs import ImportSpec
from belle_shared.teams import create_team

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
TERMINAL = [s.value for s in TERMINAL_STATUSES]
ROW = {"instruction": "你好", "output": "你好！"}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------- statistics


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Phase:
    """One batch of submissions, measured from the database once every job ended."""

    jobs_per_s: float
    latencies_ms: list[float]


@dataclass
class PathResults:
    name: str
    throughput: list[float] = field(default_factory=list)
    loaded_ms: list[float] = field(default_factory=list)
    idle_ms: list[float] = field(default_factory=list)

    @property
    def jobs_per_s(self) -> float:
        return statistics.median(self.throughput)


# ---------------------------------------------------------------------------------------- stack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_servers(database_url: str, broker_url: str) -> str | None:
    """None if both servers answer, else what is wrong."""
    try:
        engine = create_engine(database_url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {make_url(database_url).render_as_string(hide_password=True)} is unreachable: " \
               f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    try:
        redis.Redis.from_url(broker_url, socket_timeout=3, socket_connect_timeout=3).ping()
    except Exception as exc:
        return f"Redis at {broker_url} is unreachable: {type(exc).__name__}: {exc}"
    return None


class Stack:
    """A fresh database and key prefix, a gateway and a datagen worker; ``close()`` removes it all."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        suffix = secrets.token_hex(4)
        self.db_name = f"belle_bench_{suffix}"
        self.key_prefix = f"belle-bench-{suffix}"
        self.admin_url = make_url(args.database_url)
        self.database_url = self.admin_url.set(database=self.db_name).render_as_string(hide_password=False)
        self.tmp = Path(tempfile.mkdtemp(prefix="belle-bench-"))
        self.secret = secrets.token_hex(16)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.settings = Settings(database_url=self.database_url, broker_url=args.broker_url,
                                 key_prefix=self.key_prefix, artifact_root=str(self.tmp / "artifacts"),
                                 secret_key=self.secret)
        self.procs: dict[str, subprocess.Popen] = {}
        self.engine = None
        self.session_factory = None
        self.celery = None
        self.db_created = False

    # -- set up

    def start(self) -> None:
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.db_name}"'))
        admin.dispose()
        self.db_created = True
        upgrade(self.settings)
        self.engine = make_engine(self.settings)
        self.session_factory = make_session_factory(self.engine)
        self.celery = make_celery(self.settings, queues=("datagen",))
        with self.session_factory() as session:
            self.team, self.api_key = create_team(session, name="bench", secret=self.secret)
            session.commit()

        env = {k: v for k, v in os.environ.items() if not k.startswith("BELLE_")}
        env.update(
            BELLE_DATABASE_URL=self.database_url, BELLE_BROKER_URL=self.args.broker_url,
            BELLE_KEY_PREFIX=self.key_prefix, BELLE_ARTIFACT_ROOT=str(self.tmp / "artifacts"),
            BELLE_SECRET_KEY=self.secret, BELLE_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1",
        )
        self._spawn("gateway", [sys.executable, "-m", "belle_gateway"], {**env, "BELLE_PORT": str(self.port)})
        self._spawn("worker", [sys.executable, "-m", "belle_datagen.worker"],
                    {**env, "BELLE_WORKER_CONCURRENCY": str(self.args.worker_concurrency)})
        self._wait_gateway()
        with self.client() as client:
            r = client.post("/v1/files", files={"file": ("bench.jsonl", (json.dumps(ROW, ensure_ascii=False) + "\n")
                                                         .encode(), "application/jsonl")},
                            data={"purpose": "import"})
            if r.status_code != 201:
                raise RuntimeError(f"file upload failed: {r.status_code} {r.text}")
            self.file_id = r.json()["id"]
        self.spec = {"type": "import", "file_id": self.file_id}

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        out = open(self.tmp / f"{name}.log", "wb")
        # Own session: a Ctrl-C in the terminal reaches only this script, which then stops the
        # children in order (SIGTERM to the main process, SIGKILL to the group if it hangs).
        self.procs[name] = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            cwd=self.tmp)  # not bench/, whose queue.py shadows the stdlib
        out.close()

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.tmp / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with status {proc.returncode}:\n{self.log_tail(name)}")

    def _wait_gateway(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway not ready after {timeout:.0f}s:\n{self.log_tail('gateway')}")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.api_key}"},
                            timeout=60)

    # -- measuring

    def create_rows(self, n: int) -> list[uuid.UUID]:
        """Job rows for the bare path: written and committed up front, like an outbox."""
        spec = ImportSpec(file_id=self.file_id)
        with self.session_factory() as session:
            jobs = [create_job(session, team_id=self.team.id, spec=spec) for _ in range(n)]
            now = utcnow()
            for job in jobs:
                job.sent_at = now  # or the gateway's sweeper re-sends rows still unsent after 10 s
            session.commit()
            return [job.id for job in jobs]

    def wait_done(self, ids: list[uuid.UUID], timeout: float, poll: float = 0.25) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.session_factory() as session:
                done = session.scalar(select(func.count()).select_from(Job)
                                      .where(Job.id.in_(ids), Job.status.in_(TERMINAL)))
            if done == len(ids):
                return
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done}/{len(ids)} jobs ended within {timeout:.0f}s:\n"
                                   f"{self.log_tail('worker')}")
            time.sleep(poll)

    def measure(self, submitted: list[tuple[float, uuid.UUID]]) -> Phase:
        """Throughput and submit-to-running latencies of jobs that have all ended."""
        ids = [job_id for _, job_id in submitted]
        running: dict[uuid.UUID, float] = {}
        finished: list[float] = []
        with self.session_factory() as session:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                for job_id, status, finished_at, error in session.execute(
                        select(Job.id, Job.status, Job.finished_at, Job.error).where(Job.id.in_(chunk))):
                    if status != "succeeded":
                        raise RuntimeError(f"job {job_id} ended {status}: {error}")
                    finished.append(finished_at.timestamp())
                for job_id, created_at, data in session.execute(
                        select(JobEvent.job_id, JobEvent.created_at, JobEvent.data)
                        .where(JobEvent.job_id.in_(chunk), JobEvent.kind == "status")):
                    if data and data.get("status") == "running":
                        ts = created_at.timestamp()
                        running[job_id] = min(ts, running.get(job_id, ts))
        latencies = [(running[job_id] - ts) * 1000 for ts, job_id in submitted]
        first_submit = min(ts for ts, _ in submitted)
        return Phase(jobs_per_s=len(ids) / (max(finished) - first_submit), latencies_ms=latencies)

    # -- tear down

    def close(self) -> None:
        for name in ("worker", "gateway"):  # stop consumers before the server they talk to
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)  # the main process only: it stops its own children
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop within 20 s; killing its process group")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.engine is not None:
            self.engine.dispose()
        if self.db_created:
            try:
                admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
                admin.dispose()
            except Exception as exc:
                log(f"could not drop database {self.db_name}: {exc}")
        try:
            r = redis.Redis.from_url(self.args.broker_url)
            keys = list(r.scan_iter(match=f"{self.key_prefix}:*", count=1000))
            if keys:
                r.delete(*keys)
        except Exception as exc:
            log(f"could not delete Redis keys {self.key_prefix}:*: {exc}")
        shutil.rmtree(self.tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------- paths

Submit = Callable[[object, int], tuple[float, uuid.UUID]]


def fire(n: int, states: list[object], submit: Submit) -> list[tuple[float, uuid.UUID]]:
    """Submit n jobs from one thread per state, as fast as they go; returns (submit time, job id)."""
    results: list[tuple[float, uuid.UUID] | None] = [None] * n
    counter = itertools.count()  # next() on it is atomic under the GIL
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(states))

    def loop(state: object) -> None:
        try:
            barrier.wait()
            while (i := next(counter)) < n and not errors:
                results[i] = submit(state, i)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=loop, args=(s,), daemon=True) for s in states]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]


class BarePath:
    name = "bare"

    def __init__(self, stack: Stack, clients: int):
        self.stack = stack
        self.states: list[object] = [None] * clients
        self.task = task_name("import")
        self.queue = queue_for("import")
        self.ids: list[uuid.UUID] = []

    def prepare(self, n: int) -> None:
        self.ids = self.stack.create_rows(n)

    def submit(self, _state: object, i: int) -> tuple[float, uuid.UUID]:
        job_id = self.ids[i]
        ts = time.time()
        self.stack.celery.send_task(self.task, args=[str(job_id)], queue=self.queue)
        return ts, job_id

    def close(self) -> None:
        pass


class GatewayPath:
    name = "gateway"

    def __init__(self, stack: Stack, clients: int):
        self.stack = stack
        self.states: list[object] = [stack.client() for _ in range(clients)]
        self.body = json.dumps(stack.spec).encode()

    def prepare(self, n: int) -> None:
        pass

    def submit(self, client: httpx.Client, i: int) -> tuple[float, uuid.UUID]:
        ts = time.time()
        r = client.post("/v1/jobs", content=self.body, headers={"Content-Type": "application/json"})
        if r.status_code != 201:
            raise RuntimeError(f"POST /v1/jobs: {r.status_code} {r.text[:500]}")
        return ts, uuid.UUID(r.json()["id"])

    def close(self) -> None:
        for client in self.states:
            client.close()


def throughput_phase(stack: Stack, path, n: int) -> Phase:
    path.prepare(n)
    submitted = fire(n, path.states, path.submit)
    stack.wait_done([job_id for _, job_id in submitted], timeout=60 + n)
    return stack.measure(submitted)


def latency_phase(stack: Stack, path, n: int) -> Phase:
    """One job at a time, each submitted once the previous one ended: idle pickup latency."""
    path.prepare(n)
    submitted = []
    for i in range(n):
        ts, job_id = path.submit(path.states[0], i)
        submitted.append((ts, job_id))
        stack.wait_done([job_id], timeout=60, poll=0.005)
        time.sleep(0.02)  # let the worker finish acknowledging before the next one
    return stack.measure(submitted)


# ------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=200, help="jobs per throughput phase (default 200)")
    p.add_argument("--latency-jobs", type=int, default=30,
                   help="jobs per latency phase, submitted one at a time (default 30)")
    p.add_argument("--clients", type=int, default=8, help="concurrent submitting threads (default 8)")
    p.add_argument("--rounds", type=int, default=5, help="measured rounds per path, alternating (default 5)")
    p.add_argument("--worker-concurrency", type=int, default=2, help="datagen worker pool size (default 2)")
    p.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                   help="PostgreSQL server (SQLAlchemy URL; its database is only used to create and drop "
                        f"the benchmark's own; default {DEFAULT_DATABASE_URL})")
    p.add_argument("--broker-url", default=DEFAULT_BROKER_URL, help=f"Redis URL (default {DEFAULT_BROKER_URL})")
    args = p.parse_args(argv)
    for name in ("jobs", "latency_jobs", "clients", "rounds", "worker_concurrency"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def run(args: argparse.Namespace) -> int:
    problem = check_servers(args.database_url, args.broker_url)
    if problem:
        print(f"cannot run the queue benchmark: {problem}\n"
              "It needs PostgreSQL and Redis; point --database-url / --broker-url at them.", file=sys.stderr)
        return 2

    stack = Stack(args)
    paths = []
    try:
        log(f"starting gateway on :{stack.port} and a datagen worker (concurrency {args.worker_concurrency}); "
            f"database {stack.db_name}")
        stack.start()
        paths = [BarePath(stack, args.clients), GatewayPath(stack, args.clients)]
        results = {p.name: PathResults(p.name) for p in paths}

        log("warm-up")
        for path in paths:
            throughput_phase(stack, path, min(args.jobs, 4 * args.clients))
            latency_phase(stack, path, min(args.latency_jobs, 5))

        for round_no in range(1, args.rounds + 1):
            for path in paths:
                fast = throughput_phase(stack, path, args.jobs)
                idle = latency_phase(stack, path, args.latency_jobs)
                res = results[path.name]
                res.throughput.append(fast.jobs_per_s)
                res.loaded_ms.extend(fast.latencies_ms)
                res.idle_ms.extend(idle.latencies_ms)
                log(f"round {round_no}/{args.rounds} {path.name:8s} {fast.jobs_per_s:7.1f} jobs/s, "
                    f"idle p50 {percentile(idle.latencies_ms, 50):6.1f} ms")
    finally:
        for path in paths:
            path.close()
        log("stopping gateway and worker, dropping the database")
        stack.close()

    bare, gw = results["bare"], results["gateway"]
    print(f"queue benchmark: {args.jobs} jobs x {args.rounds} rounds from {args.clients} clients, "
          f"{args.latency_jobs} idle jobs per round; 1 datagen worker, concurrency {args.worker_concurrency}; "
          "PostgreSQL + Redis")
    print(f"{'path':<8} {'jobs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'loaded p50 ms':>14}")
    for r in (bare, gw):
        print(f"{r.name:<8} {r.jobs_per_s:8.1f} {percentile(r.idle_ms, 50):8.1f} {percentile(r.idle_ms, 99):8.1f} "
              f"{percentile(r.loaded_ms, 50):14.1f}")
    added = percentile(gw.idle_ms, 50) - percentile(bare.idle_ms, 50)
    kept = gw.jobs_per_s / bare.jobs_per_s
    print(f"p50 added by gateway: {added:.1f} ms (target <= 20 ms: {'PASS' if added <= 20 else 'MISS'})")
    print(f"throughput kept: {kept:.0%} (target >= 50%: {'PASS' if kept >= 0.5 else 'MISS'})")
    print(f"ratio: {kept:.2f}")
    return 0


def main() -> None:
    # SIGTERM unwinds like Ctrl-C, so the children, database and keys are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(run(parse_args()))
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
