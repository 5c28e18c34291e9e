"""The OpenAPI document, with the request bodies that routes reading raw JSON cannot declare.

`POST /v1/jobs` reads its body itself (to answer a malformed spec with OpenAI's error shape and the
field's path); its schema is the union of the registered job specs (`belle_shared.job_types`), built
when the document is first asked for, so a type a module registered at start is in it. `POST
/v1/pipelines` takes a `PipelineSpec`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from belle_shared.job_types import spec_adapter
from belle_shared.pipelines import PipelineSpec

REF_TEMPLATE = "#/components/schemas/{model}"


def _body(adapter: TypeAdapter, components: dict[str, Any]) -> dict[str, Any]:
    schema = adapter.json_schema(ref_template=REF_TEMPLATE)
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            components = document.setdefault("components", {}).setdefault("schemas", {})
            bodies = {"/v1/jobs": _body(spec_adapter(), components),
                      "/v1/pipelines": _body(TypeAdapter(PipelineSpec), components)}
            for path, body in bodies.items():
                operation = document.get("paths", {}).get(path, {}).get("post")
                if operation is not None:
                    operation["requestBody"] = body
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
