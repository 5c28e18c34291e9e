"""The gateway application factory.

    app = create_app(GatewaySettings())   # or: python -m belle_gateway
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from belle_gateway.errors import error_body, install_error_handlers
from belle_gateway.metrics import HTTP_LATENCY, HTTP_REQUESTS, make_registry
from belle_gateway.routers import (chat, datasets, eval_judge, evals, files, fine_tuning, health, jobs, models,
                                   pipelines, secrets, web)
from belle_gateway.serving.service import ChatService
from belle_gateway.settings import GatewaySettings
from belle_shared.artifacts import ArtifactStore
from belle_shared.db.engine import make_engine, make_session_factory
from belle_shared.queue import make_celery
from belle_shared.sweeper import SweeperThread

log = logging.getLogger(__name__)


def create_app(settings: GatewaySettings) -> FastAPI:
    engine = make_engine(settings)
    session_factory = make_session_factory(engine)
    celery = make_celery(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        sweeper = SweeperThread(session_factory, celery, settings) if settings.run_sweeper else None
        if sweeper:
            sweeper.start()
        try:
            yield
        finally:
            await app.state.chat.close()
            if sweeper:
                sweeper.stop()
            engine.dispose()

    app = FastAPI(title="BELLE gateway", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.session_factory = session_factory
    app.state.celery = celery
    app.state.store = ArtifactStore(settings.resolved_artifact_root)
    app.state.chat = ChatService(settings, app.state.store)  # loads nothing until the first chat request
    app.state.metrics_registry = make_registry(session_factory)

    install_error_handlers(app)

    @app.middleware("http")
    async def observe(request: Request, call_next):
        # Refuse an oversized upload from its Content-Length, before the body is read.
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > settings.max_upload_bytes + 1024 * 1024:
            body = error_body(413, f"request is larger than the upload limit of {settings.max_upload_bytes} bytes",
                              param="file", code="file_too_large")
            return JSONResponse(body, status_code=413)
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        HTTP_LATENCY.labels(request.method, path).observe(time.perf_counter() - start)
        return response

    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(pipelines.router)
    app.include_router(files.router)
    app.include_router(datasets.router)
    app.include_router(secrets.router)
    app.include_router(models.router)
    app.include_router(fine_tuning.router)
    app.include_router(evals.router)
    app.include_router(eval_judge.router)
    app.include_router(chat.router)
    app.include_router(web.router)  # the web pages under /ui/ (no key needed to load them)
    return app
