"""Typed dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from belle_gateway.errors import APIError
from belle_gateway.settings import GatewaySettings
from belle_shared.artifacts import ArtifactStore
from belle_shared.db.models import Team
from belle_shared.teams import team_for_key


def get_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    # GET and HEAD only read: on SQLite their session takes no write lock (engine.make_get_session_factory).
    state = request.app.state
    factory = state.get_session_factory if request.method in ("GET", "HEAD") else state.session_factory
    with factory() as session:
        yield session


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]


def get_team(request: Request, settings: SettingsDep) -> Team:
    # Its own short read-only session: the request's session must not open a transaction before the
    # route needs one, and on SQLite a read-only one takes no write lock (see belle_shared.db.engine).
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise APIError(401, "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
    with request.app.state.read_session_factory() as session:
        team = team_for_key(session, key=key.strip(), secret=settings.secret_key)
    if team is None:
        raise APIError(401, "invalid API key", code="invalid_api_key")
    request.state.team_name = team.name  # for access logs and metrics; never the key
    return team


TeamDep = Annotated[Team, Depends(get_team)]


async def json_object_body(request: Request, *, what: str) -> dict:
    """The request body as a JSON object, or a 400 saying it is not JSON or not an object (``what``
    names what the object should be: "a job spec")."""
    import json

    raw = await request.body()
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise APIError(400, f"request body must be a JSON object ({what}), not {type(payload).__name__}",
                       code="invalid_body")
    return payload
