"""Liveness, readiness and metrics (no authentication: probes and Prometheus scrape these)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz():
    """The process is up."""
    return {"status": "ok"}


def _check_database(app) -> str | None:
    try:
        with app.state.session_factory() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


def _check_broker(app) -> str | None:
    try:
        with app.state.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


@router.get("/readyz")
async def readyz(request: Request):
    """Ready to serve: the database and the broker answer."""
    checks = {
        "database": await run_in_threadpool(_check_database, request.app),
        "broker": await run_in_threadpool(_check_broker, request.app),
    }
    body = {"status": "ok" if not any(checks.values()) else "unavailable",
            "checks": {name: (error or "ok") for name, error in checks.items()}}
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


@router.get("/metrics")
async def metrics(request: Request):
    """Prometheus metrics."""
    data = await run_in_threadpool(generate_latest, request.app.state.metrics_registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)
