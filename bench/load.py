"""Gateway load: job status, job listing and event streams under 100 concurrent clients, driven by locust.

    .venv/bin/pip install -c constraints.txt -r requirements-bench.txt   # locust
    .venv/bin/python bench/load.py                     # 100 clients, 30 s or 20,000 requests, whichever first
    .venv/bin/python bench/load.py --users 200 --run-time 60 --max-requests 50000 --think 0.5

It starts what `belle up` starts for the API, with the embedded defaults: a fresh data folder, SQLite
(migrated), the embedded Redis on a unix socket, and the gateway (`python -m belle_gateway`, uvicorn,
one process) on a free loopback port; no workers, so nothing else takes CPU. It creates a team and
``--jobs`` finished import jobs with ``--events`` events each (rows written directly, as a worker
writes them), sends 100 sequential warm-up requests, then runs locust headless in a child process (`locust -f bench/load.py`: this file is
also the locustfile) with ``--users`` clients, each one looping over:

- ``GET /v1/jobs/{id}``: one random job's status (weight 6);
- ``GET /v1/jobs?limit=20``: the newest page of the team's jobs (weight 3);
- ``GET /v1/jobs/{id}/events?stream=true``: a finished job's server-sent event stream, read to its
  ``end`` event (weight 1). Its time is the whole stream (a finished job's stream ends as soon as its
  events are sent; before 2026-12-06 it lasted one more poll interval, 0.5 s).

Each client waits a random ``[0.5, 1.5] x --think`` seconds between requests (closed loop: with no
think time, 100 clients measure only how long the queue in front of the server is). Clients start
at ``--spawn-rate`` a second (5 s for 100) and the statistics restart once all of them run (locust's
``--reset-stats``: the start is not measured; 100 clients started at once wait ~0.2 s). The run stops
at ``--run-time`` seconds or after ``--max-requests`` requests, whichever comes first. Printed per
endpoint: requests, errors, requests/s, p50 and p99 (locust's: exact ms under 100 ms, 10 ms steps
above); requests unanswered for over 5 s when the run stops (locust records nothing for them) are
counted as errors; then whether the targets hold: no errors, p99 of job status under 50 ms. Exit status 1 if
they do not. Everything (locust, the gateway, Redis) shares the machine.
"""

from __future__ import annotations

import os

if os.environ.get("BELLE_LOAD_ROLE") == "locust":  # imported by locust in the child process
    import random
    import time

    import gevent
    from locust import HttpUser, between, events, task

    _KEY = os.environ["BELLE_LOAD_KEY"]
    _JOBS = os.environ["BELLE_LOAD_JOBS"].split(",")
    _MAX_REQUESTS = int(os.environ["BELLE_LOAD_MAX_REQUESTS"])
    _THINK = float(os.environ["BELLE_LOAD_THINK"])
    _sent = 0
    _in_flight: dict[int, float] = {}  # task call -> when it started
    HUNG_AFTER_S = 5.0

    @events.quitting.add_listener
    def _report_hung(**_kwargs) -> None:
        # A request still unanswered when the run stops is cut off by the stop (locust records nothing for
        # it); one unanswered for over HUNG_AFTER_S is an error: a server that stopped answering.
        now = time.perf_counter()
        with open(os.environ["BELLE_LOAD_UNFINISHED_FILE"], "w") as f:
            f.write(str(sum(now - started > HUNG_AFTER_S for started in _in_flight.values())))

    def _timed(method):
        def run(self) -> None:
            token = object()
            _in_flight[id(token)] = time.perf_counter()
            try:
                method(self)
            except gevent.GreenletExit:  # killed by the stop while waiting for its answer: stays counted
                raise
            except BaseException:
                del _in_flight[id(token)]
                raise
            del _in_flight[id(token)]
        run.__name__ = method.__name__
        return run


    class GatewayClient(HttpUser):
        wait_time = between(0.5 * _THINK, 1.5 * _THINK)

        def on_start(self) -> None:
            self.client.headers["Authorization"] = f"Bearer {_KEY}"

        @task(6)
        @_timed
        def job_status(self) -> None:
            with self.client.get(f"/v1/jobs/{random.choice(_JOBS)}", name="GET /v1/jobs/{id}",
                                 catch_response=True) as response:
                if response.status_code == 200 and response.json().get("status") != "succeeded":
                    response.failure(f"unexpected status {response.json().get('status')!r}")

        @task(3)
        @_timed
        def job_list(self) -> None:
            with self.client.get("/v1/jobs?limit=20", name="GET /v1/jobs?limit=20", catch_response=True) as response:
                if response.status_code == 200 and len(response.json()["data"]) != 20:
                    response.failure("a page of fewer than 20 jobs")

        @task(1)
        @_timed
        def event_stream(self) -> None:
            # Not streamed by requests: the body (the whole SSE stream) is read before the time is taken.
            with self.client.get(f"/v1/jobs/{random.choice(_JOBS)}/events?stream=true",
                                 name="GET /v1/jobs/{id}/events?stream=true", catch_response=True,
                                 timeout=30) as response:
                if response.status_code == 200 and "event: end" not in response.text:
                    response.failure("the stream did not end with an end event")

else:
    import argparse
    import csv
    import signal
    import subprocess
    import sys
    import tempfile
    import time
    import uuid
    from pathlib import Path

    ENDPOINTS = ("GET /v1/jobs/{id}", "GET /v1/jobs?limit=20", "GET /v1/jobs/{id}/events?stream=true")
    STATUS_P99_TARGET_MS = 50.0

    def parse_args(argv=None) -> argparse.Namespace:
        parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        parser.add_argument("--users", type=int, default=100, help="concurrent clients (default 100)")
        parser.add_argument("--spawn-rate", type=float, default=20,
                            help="clients started per second (default 20); the statistics restart once all run")
        parser.add_argument("--run-time", type=int, default=30, help="seconds of load at most (default 30)")
        parser.add_argument("--max-requests", type=int, default=20000, help="requests at most (default 20000)")
        parser.add_argument("--think", type=float, default=1.0,
                            help="mean seconds a client waits between requests (default 1.0)")
        parser.add_argument("--jobs", type=int, default=200, help="finished jobs in the team (default 200)")
        parser.add_argument("--events", type=int, default=20, help="events per job (default 20)")
        parser.add_argument("--database-url", help="a PostgreSQL server to use instead of SQLite: a fresh database "
                            "belle_load_<hex> is created on it and dropped at the end")
        parser.add_argument("--broker-url", help="a Redis to use instead of the embedded one (a fresh key prefix)")
        parser.add_argument("--keep", action="store_true", help="keep the data folder and locust's CSV files")
        return parser.parse_args(argv)

    def seed(settings, jobs: int, events_per_job: int) -> tuple[str, list[str]]:
        """A team with ``jobs`` finished import jobs of ``events_per_job`` events each: (API key, job ids)."""
        import datetime as dt

        from belle_shared.db.engine import make_engine, make_session_factory
        from belle_shared.db.models import Job, JobEvent, JobStatus
        from belle_shared.teams import create_team

        engine = make_engine(settings)
        ids: list[str] = []
        try:
            with make_session_factory(engine)() as session:
                team, key = create_team(session, name=f"load-{uuid.uuid4().hex[:8]}", secret=settings.secret_key)
                start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
                for n in range(jobs):
                    at = start + dt.timedelta(seconds=n)
                    job = Job(id=uuid.uuid4(), team_id=team.id, type="import", status=JobStatus.succeeded,
                              spec={"type": "import", "file_id": str(uuid.uuid4())}, attempts=1, created_at=at,
                              started_at=at, finished_at=at, sent_at=at, result={"dataset_id": str(uuid.uuid4())})
                    session.add(job)
                    session.add_all(JobEvent(job_id=job.id, created_at=at, kind="progress", message=f"step {i}",
                                             data={"done": i, "total": events_per_job})
                                    for i in range(events_per_job - 1))
                    session.add(JobEvent(job_id=job.id, created_at=at, kind="status", message="job succeeded",
                                         data={"status": "succeeded"}))
                    ids.append(str(job.id))
                session.commit()
        finally:
            engine.dispose()
        return key, ids

    def start_gateway(settings):
        """The embedded stack of `belle up` without its workers: Redis, the migrated SQLite, the gateway."""
        from belle_cli.demo import free_port
        from belle_cli.stack import Child, Stack
        from belle_shared.db.migrate import upgrade

        stack = Stack(settings, port=free_port(), log=lambda m: None)
        try:
            stack.data_dir.mkdir(parents=True, exist_ok=True)
            if settings.broker_url is None:
                stack._start_redis()
            upgrade(settings)
            gateway = Child("gateway", [sys.executable, "-m", "belle_gateway"], signal.SIGTERM)
            stack.children.append(gateway)
            stack._spawn(gateway)
            stack._wait_healthy(60)
        except BaseException:
            stack.stop()
            raise
        return stack

    def warm_up(url: str, key: str, job_ids: list[str], requests: int = 50) -> None:
        """A few sequential requests first: the gateway's first ones (connections, imports) are not load."""
        import httpx

        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            for n in range(requests):
                for path in (f"/v1/jobs/{job_ids[n % len(job_ids)]}", "/v1/jobs?limit=20"):
                    client.get(path).raise_for_status()
            client.get(f"/v1/jobs/{job_ids[0]}/events?stream=true").raise_for_status()

    def create_database(server_url: str, name: str) -> str:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return make_url(server_url).set(database=name).render_as_string(hide_password=False)

    def drop_database(server_url: str | None, url: str | None) -> None:
        if not server_url or not url:
            return
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
        finally:
            admin.dispose()

    def read_stats(path: Path) -> dict[str, dict[str, str]]:
        with open(path, newline="") as f:
            return {row["Name"]: row for row in csv.DictReader(f)}

    def main(argv=None) -> int:
        args = parse_args(argv)
        from belle_shared.settings import Settings

        work = Path(tempfile.mkdtemp(prefix="belle-load-"))
        tag = uuid.uuid4().hex[:8]
        database_url = create_database(args.database_url, f"belle_load_{tag}") if args.database_url else None
        # The gateway child reads its settings from the environment (Stack passes ours on).
        os.environ.update({"BELLE_KEY_PREFIX": f"belle-load-{tag}", **({"BELLE_DATABASE_URL": database_url}
                           if database_url else {}), **({"BELLE_BROKER_URL": args.broker_url} if args.broker_url else {})})
        settings = Settings(_env_file=None, data_dir=work / "belle", database_url=database_url,
                            broker_url=args.broker_url, key_prefix=f"belle-load-{tag}")
        try:
            stack = start_gateway(settings)
        except BaseException:
            drop_database(args.database_url, database_url)
            raise
        try:
            key, job_ids = seed(settings, args.jobs, args.events)
            warm_up(stack.url, key, job_ids)
            env = {**os.environ, "BELLE_LOAD_ROLE": "locust", "BELLE_LOAD_KEY": key,
                   "BELLE_LOAD_JOBS": ",".join(job_ids), "BELLE_LOAD_MAX_REQUESTS": str(args.max_requests),
                   "BELLE_LOAD_THINK": str(args.think), "BELLE_LOAD_UNFINISHED_FILE": str(work / "unfinished")}
            prefix = work / "locust"
            command = [sys.executable, "-m", "locust", "-f", str(Path(__file__).resolve()), "--headless",
                       "--host", stack.url, "-u", str(args.users), "-r", str(args.spawn_rate),
                       "-t", f"{args.run_time}s", "--stop-timeout", "10", "--csv", str(prefix), "--only-summary",
                       "--loglevel", "WARNING", "--exit-code-on-error", "0", "--reset-stats"]
            where = f"{'PostgreSQL' if database_url else 'SQLite'} + {'Redis ' + args.broker_url if args.broker_url else 'embedded Redis'}"
            print(f"gateway {stack.url} ({where}, data in {work}); {args.jobs} jobs x {args.events} "
                  f"events; {args.users} clients, think {args.think:g} s, at most {args.run_time} s or "
                  f"{args.max_requests} requests", flush=True)
            started = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.run_time + 120)
            elapsed = time.perf_counter() - started
            if done.returncode != 0 or not Path(f"{prefix}_stats.csv").exists():
                print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
                print(f"locust exited with {done.returncode}")
                return 1
            stats = read_stats(Path(f"{prefix}_stats.csv"))
            unfinished_file = work / "unfinished"
            unfinished = int(unfinished_file.read_text()) if unfinished_file.exists() else -1
        finally:
            stack.stop()
            drop_database(args.database_url, database_url)
        print(f"locust ran {elapsed:.1f} s (with start and stop)")
        print(f"{'endpoint':42} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
        for name in (*ENDPOINTS, "Aggregated"):
            row = stats.get(name)
            if row is None:
                continue
            print(f"{name:42} {row['Request Count']:>9} {row['Failure Count']:>7} {float(row['Requests/s']):>8.1f} "
                  f"{row['50%']:>7} {row['99%']:>7} {float(row['Max Response Time']):>7.0f}")
        errors = sum(int(stats[name]["Failure Count"]) for name in ENDPOINTS if name in stats)
        if unfinished != 0:  # locust records no time for them: counted as errors here
            print(f"requests unanswered for over 5 s when the run stopped: {unfinished if unfinished > 0 else 'unknown'}")
            errors += max(unfinished, 1)
        status_p99 = float(stats.get(ENDPOINTS[0], {}).get("99%", "inf"))
        ok = errors == 0 and status_p99 < STATUS_P99_TARGET_MS
        print(f"targets: errors {errors} (0 wanted), job status p99 {status_p99:g} ms "
              f"(< {STATUS_P99_TARGET_MS:g} wanted): {'met' if ok else 'NOT met'}")
        if args.keep:
            print(f"kept {work}")
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        return 0 if ok else 1

    if __name__ == "__main__":
        sys.exit(main())
