"""Liveness, readiness and metrics (no authentication: probes and Prometheus scrape these)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
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


class Readiness(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, str] = Field(description="each dependency: 'ok', or what is wrong with it")
    message: str | None = None


@router.get("/readyz", response_model=Readiness,
            responses={503: {"model": Readiness, "description": "The database does not answer: nothing works"}})
async def readyz(request: Request):
    """Ready to serve while the database answers. With the broker down the gateway is `degraded`, not
    unready: it still answers reads and chat and takes job submissions into its outbox (the sweeper
    sends them when the broker is back), so a load balancer keeps sending it traffic."""
    errors = {
        "database": await run_in_threadpool(_check_database, request.app),
        "broker": await run_in_threadpool(_check_broker, request.app),
    }
    checks = {name: (error or "ok") for name, error in errors.items()}
    if errors["database"]:
        body = Readiness(status="unavailable", checks=checks, message="the database does not answer")
    elif errors["broker"]:
        body = Readiness(status="degraded", checks=checks,
                         message="the broker does not answer: jobs are accepted and queued when it is back")
    else:
        body = Readiness(status="ok", checks=checks)
    return JSONResponse(body.model_dump(), status_code=503 if body.status == "unavailable" else 200)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request):
    """Prometheus metrics."""
    data = await run_in_threadpool(generate_latest, request.app.state.metrics_registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)
