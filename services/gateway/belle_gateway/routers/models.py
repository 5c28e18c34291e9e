"""Models: the registry in OpenAI's `/v1/models` shape, and registration of a team's base models.

A registration records a model folder where it is (nothing is copied): a folder under one of the
gateway's model roots (`BELLE_MODEL_ROOTS`), or one of the team's own folders in the artifact store.
Shared base models are registered by operators (`belle admin register-model`).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from belle_gateway.deps import SessionDep, SettingsDep, StoreDep, TeamDep
from belle_gateway.errors import APIError
from belle_gateway.lineage import model_lineage
from belle_gateway.model_paths import resolve_model_path
from belle_gateway.openapi import error_responses
from belle_gateway.schemas import LineagePublic, ModelCreate, ModelDeleted, ModelPublic, ModelsPublic
from belle_shared.db.models import Model
from belle_shared.model_sources import is_gguf_file
from belle_shared.models import ModelExists, check_model_name, find_model, list_models, register_model

router = APIRouter(prefix="/v1/models", tags=["models"])

SHARED_OWNER = "belle"


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


def _register(session, settings, store, team, body: ModelCreate) -> Model:
    try:
        check_model_name(body.name)
    except ValueError as exc:
        raise APIError(400, f"name: {exc}", param="name", code="invalid_name") from None
    uri = resolve_model_path(body.path, roots=settings.resolved_model_roots,
                             team_prefix=store.uri(f"teams/{team.id}"), store_root=store.uri(""))
    if "://" not in uri and is_gguf_file(uri):
        raise APIError(400, f"path: {body.path!r} is a GGUF file; registration records a Hugging Face folder as it "
                       "is. Import it instead: `belle models import PATH`, or POST /v1/jobs with "
                       '{"type": "model_import", "path": ...}, which converts it', param="path",
                       code="invalid_model")
    try:
        model = register_model(session, team_id=team.id, name=body.name, uri=uri)
    except ModelExists as exc:
        raise APIError(409, str(exc), param="name", code="model_exists") from None
    except ValueError as exc:  # the folder is missing something
        raise APIError(400, f"path: {exc}", param="path", code="invalid_model") from None
    session.commit()
    return model


@router.post("", status_code=201, response_model=ModelPublic, responses=error_responses(409))
async def create(body: ModelCreate, session: SessionDep, settings: SettingsDep, store: StoreDep, team: TeamDep):
    """Register a base model folder for the team (checked: config, weights, tokenizer)."""
    model = await run_in_threadpool(_register, session, settings, store, team, body)
    return ModelPublic.of(model, owner=team.name)


@router.delete("/{model:path}", response_model=ModelDeleted, responses=error_responses(403))
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

