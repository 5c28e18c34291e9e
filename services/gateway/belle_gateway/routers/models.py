"""Models: the registry in OpenAI's `/v1/models` shape, and registration of a team's base models.

A registration records a model folder where it is (nothing is copied): a folder under one of the
gateway's model roots (`BELLE_MODEL_ROOTS`), or one of the team's own folders in the artifact store.
Shared base models are registered by operators (`belle admin register-model`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from belle_gateway.deps import SessionDep, SettingsDep, StoreDep, TeamDep
from belle_gateway.errors import APIError
from belle_gateway.lineage import LineagePublic, model_lineage
from belle_gateway.schemas import ModelDeleted, ModelPublic, ModelsPublic
from belle_shared.db.models import Model
from belle_shared.models import ModelExists, check_model_name, find_model, list_models, register_model

router = APIRouter(prefix="/v1/models", tags=["models"])

SHARED_OWNER = "belle"


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Name to register the model under (letters, digits and . _ / + -).")
    path: str = Field(
        min_length=1, max_length=4096,
        description="The model folder: a path under one of the gateway's model roots (absolute, or relative to "
        "a root), or a URI of the team's own folder in the artifact store.",
    )


def _public(session, team, models: list[Model]) -> list[ModelPublic]:
    parent_ids = {m.parent_model_id for m in models if m.parent_model_id is not None}
    parents = dict(session.execute(select(Model.id, Model.name).where(Model.id.in_(parent_ids))).all()) if parent_ids else {}
    return [
        ModelPublic.of(m, owner=SHARED_OWNER if m.team_id is None else team.name,
                       parent=parents.get(m.parent_model_id, str(m.parent_model_id) if m.parent_model_id else None))
        for m in models
    ]


def _visible_model(session, team, ref: str) -> Model:
    model = find_model(session, team.id, ref)
    if model is None:
        raise APIError(404, f"no model {ref!r}", param="model", code="model_not_found")
    return model


@router.get("", response_model=ModelsPublic)
def list_(session: SessionDep, team: TeamDep):
    """The team's models and the shared base models."""
    return ModelsPublic(data=_public(session, team, list_models(session, team_id=team.id)))


# Before `GET /{model:path}`, which would otherwise take "NAME/lineage" for a model name.
@router.get("/{model:path}/lineage", response_model=LineagePublic)
def lineage(model: str, session: SessionDep, team: TeamDep):
    """Where a model came from: each model back to its base, with the job that made it, its dataset and
    the job that made that, its eval scores, and the pipeline they ran in."""
    found = _visible_model(session, team, model)
    return model_lineage(session, team, found, owner_of=lambda m: SHARED_OWNER if m.team_id is None else team.name)


@router.get("/{model:path}", response_model=ModelPublic)
def get(model: str, session: SessionDep, team: TeamDep):
    """One model, by name or id."""
    return _public(session, team, [_visible_model(session, team, model)])[0]


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def resolve_model_path(raw: str, *, roots: list[Path], team_prefix: str, store_root: str) -> str:
    """The folder a registration may record, or APIError(400, param="path").

    Local paths are resolved (symlinks and `..` included) before they are compared with the roots,
    so a link inside a root cannot point a team at a folder outside it. ``team_prefix`` is the
    team's own part of the artifact store (a local folder or a URL) and the only part of
    ``store_root`` a team may name, even where an operator's model root contains the store.
    """
    candidate = raw[len("file://"):] if raw.startswith("file://") else raw
    if "://" in candidate:
        # A remote artifact store: only the team's own prefix, and no climbing out of it.
        if ".." in candidate.split("/") or not _within(candidate.rstrip("/"), team_prefix):
            raise APIError(400, f"path: {raw!r} is not in this team's part of the artifact store ({team_prefix})",
                           param="path", code="path_not_allowed")
        return candidate.rstrip("/")
    path = Path(candidate).expanduser()
    if not path.is_absolute():
        # Relative to a root: the first root where it exists (else the first root, to report it missing).
        options = [root / path for root in roots]
        path = next((p for p in options if p.exists()), options[0])
    resolved = str(path.resolve())
    allowed = [str(root) for root in roots]
    if "://" not in team_prefix:
        own = str(Path(team_prefix).resolve())
        if _within(resolved, str(Path(store_root).resolve())) and not _within(resolved, own):
            raise APIError(400, f"path: {raw!r} is in the artifact store but not in this team's part of it",
                           param="path", code="path_not_allowed")
        allowed.append(own)
    if not any(_within(resolved, root) for root in allowed):
        raise APIError(400, f"path: {raw!r} is outside the folders models may be registered from "
                       f"({', '.join(str(r) for r in roots)}, or the team's artifacts)", param="path",
                       code="path_not_allowed")
    return resolved


def _register(session, settings, store, team, body: ModelCreate) -> Model:
    try:
        check_model_name(body.name)
    except ValueError as exc:
        raise APIError(400, f"name: {exc}", param="name", code="invalid_name") from None
    uri = resolve_model_path(body.path, roots=settings.resolved_model_roots,
                             team_prefix=store.uri(f"teams/{team.id}"), store_root=store.uri(""))
    try:
        model = register_model(session, team_id=team.id, name=body.name, uri=uri)
    except ModelExists as exc:
        raise APIError(409, str(exc), param="name", code="model_exists") from None
    except ValueError as exc:  # the folder is missing something
        raise APIError(400, f"path: {exc}", param="path", code="invalid_model") from None
    session.commit()
    return model


@router.post("", status_code=201, response_model=ModelPublic)
async def create(body: ModelCreate, session: SessionDep, settings: SettingsDep, store: StoreDep, team: TeamDep):
    """Register a base model folder for the team (checked: config, weights, tokenizer)."""
    model = await run_in_threadpool(_register, session, settings, store, team, body)
    return ModelPublic.of(model, owner=team.name)


@router.delete("/{model:path}", response_model=ModelDeleted)
def delete(model: str, session: SessionDep, team: TeamDep):
    """Remove one of the team's models from the registry (its files stay where they are)."""
    found = _visible_model(session, team, model)
    if found.team_id is None:
        raise APIError(403, f"{found.name!r} is a shared base model; only an operator can remove it",
                       param="model", code="model_shared")
    name = found.name
    session.delete(found)
    session.commit()
    return ModelDeleted(id=name)

