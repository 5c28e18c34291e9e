"""Models (`/v1/models`), shaped as OpenAI's model object."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel

from belle_gateway.schemas.common import unix_time
from belle_shared.db.models import Model


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
