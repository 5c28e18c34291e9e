"""Models (`/v1/models`), shaped as OpenAI's model object."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from belle_gateway.schemas.common import unix_time
from belle_shared.db.models import Model


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Name to register the model under (letters, digits and . _ / + -).")
    path: str = Field(
        min_length=1, max_length=4096,
        description="The model folder: a path under one of the gateway's model roots (absolute, or relative to "
        "a root), or a URI of the team's own folder in the artifact store.",
    )


class ModelPublic(BaseModel):
    """OpenAI's model object (`id` is the name) plus BELLE's own fields."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str  # "belle" for a shared base model, else the owning team's name
    belle_id: uuid.UUID
    kind: str
    parent: str | None  # the parent model's name (fine-tuned and quantized models)
    details: dict[str, Any] | None

    @classmethod
    def of(cls, model: Model, *, owner: str, parent: str | None = None) -> "ModelPublic":
        return cls(id=model.name, created=unix_time(model.created_at), owned_by=owner, belle_id=model.id,
                   kind=model.kind, parent=parent, details=model.details)


class ModelsPublic(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelPublic]


class ModelDeleted(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool = True
