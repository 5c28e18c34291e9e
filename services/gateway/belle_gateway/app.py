"""The gateway application factory.

    app = create_app(GatewaySettings())   # or: python -m belle_gateway
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from belle_gateway.errors import install_error_handlers
from belle_gateway.metrics import make_registry
from belle_gateway.observe import ObserveRequests
from belle_gateway.openapi import install_openapi
from belle_gateway.routers import (chat, datasets, eval_judge, evals, files, fine_tuning, health, job_types, jobs,
                                   models, pipelines, secrets, web)
from belle_gateway.serving.service import ChatService
from belle_gateway.settings import GatewaySettings
from belle_shared.artifacts import ArtifactStore
from belle_shared.db.engine import make_engine, make_get_session_factory, make_read_session_factory, make_session_factory
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
    app.state.read_session_factory = make_read_session_factory(engine)  # lookups: auth, model names
    app.state.get_session_factory = make_get_session_factory(engine)  # GET requests' SessionDep
    app.state.celery = celery
    app.state.store = ArtifactStore(settings.resolved_artifact_root)
    app.state.chat = ChatService(settings, app.state.store)  # loads nothing until the first chat request
    app.state.metrics_registry = make_registry(session_factory)

    install_error_handlers(app)
    install_openapi(app)

    app.add_middleware(ObserveRequests, max_upload_bytes=settings.max_upload_bytes)

    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(job_types.router)
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
