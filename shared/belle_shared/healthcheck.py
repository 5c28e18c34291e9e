"""Container health checks: Docker HEALTHCHECK and Kubernetes exec probes (standard library + belle-shared).

    python -m belle_shared.healthcheck --http http://127.0.0.1:8000/healthz   # the gateway answers 200
    python -m belle_shared.healthcheck --broker                                # a worker can reach its broker
    python -m belle_shared.healthcheck --broker --database                     # ... and the database

Exits 0 when every requested check passes, else 1 with one line per failure on stderr. Settings
(BELLE_BROKER_URL, BELLE_DATABASE_URL) come from the same environment as the process it checks.
A worker has no HTTP port, so its check is that the services it cannot work without answer from
inside its container (a pod with a broken network or DNS gets replaced).
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

from belle_shared.settings import Settings


def check_http(url: str, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return None if response.status == 200 else f"{url}: HTTP {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"


def check_broker(settings: Settings, timeout: float) -> str | None:
    from kombu import Connection

    try:
        with Connection(settings.resolved_broker_url, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except Exception as exc:  # kombu raises several connection error types
        return f"broker: {type(exc).__name__}: {exc}"[:300]
    return None


def check_database(settings: Settings) -> str | None:
    from sqlalchemy import text

    from belle_shared.db.engine import make_engine

    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return f"database: {type(exc).__name__}: {exc}"[:300]
    finally:
        engine.dispose()
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m belle_shared.healthcheck", description=__doc__.split("\n")[0])
    parser.add_argument("--http", metavar="URL", help="GET this URL and expect 200")
    parser.add_argument("--broker", action="store_true", help="connect to BELLE_BROKER_URL")
    parser.add_argument("--database", action="store_true", help="run SELECT 1 on BELLE_DATABASE_URL")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per check (default 5)")
    args = parser.parse_args(argv)
    if not (args.http or args.broker or args.database):
        parser.error("name at least one check")
    failures: list[str] = []
    if args.http:
        failures.append(check_http(args.http, args.timeout))
    if args.broker or args.database:
        settings = Settings()
        if args.broker:
            failures.append(check_broker(settings, args.timeout))
        if args.database:
            failures.append(check_database(settings))
    failures = [failure for failure in failures if failure]
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
