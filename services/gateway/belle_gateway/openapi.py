"""The OpenAPI document: request bodies that routes reading raw JSON cannot declare, the errors every
operation can answer in OpenAI's shape, and the bearer key.

`POST /v1/jobs` reads its body itself (to answer a malformed spec with OpenAI's error shape and the
field's path); its schema is the union of the registered job specs (`belle_shared.job_types`), built
when the document is first asked for, so a type a module registered at start is in it. `POST
/v1/pipelines` takes a `PipelineSpec`.

FastAPI documents a 422 with its own validation-error schema on every operation that takes input; this
gateway answers bad input with a 400 in OpenAI's error shape (`errors.py`), so the document says that:
400 where an operation takes input, 401 under /v1 (the API key), 404 where the path names something, and
whatever else a route declares with `responses=error_responses(...)`. tests/integration/test_openapi_fuzz.py
holds the gateway to it: a status or a body the document does not describe fails the build."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from belle_shared.job_types import spec_adapter
from belle_shared.pipelines import PipelineSpec

REF_TEMPLATE = "#/components/schemas/{model}"

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "description": "OpenAI's error shape: what was wrong (`message`), the field it was in (`param`, a dotted "
                   "path such as hyperparameters.n_epochs or steps[0].spec), and a stable `code`.",
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string"},
            "param": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "code": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    }},
}

ERROR_DESCRIPTIONS = {
    400: "The request is malformed or refused; `error.param` names the field",
    401: "Missing or unknown API key",
    403: "Not allowed for this team",
    404: "Nothing with that id or name (for this team)",
    409: "In conflict with the current state",
    413: "The body is larger than the gateway accepts",
    502: "A server this calls (the judge) cannot be reached or failed",
    503: "A service this needs is unavailable; retry later",
}


# `responses=` for a route that answers `?stream=true` with server-sent events besides its JSON. Before
# OpenAPI 3.2 (FastAPI writes 3.1) a sequential media type's `schema` describes each event.
SERVER_SENT_EVENT = {"type": "object", "required": ["data"], "properties": {
    "event": {"type": "string"}, "data": {"type": "string", "description": "JSON"}, "id": {"type": "string"}}}
EVENT_STREAM: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {"schema": SERVER_SENT_EVENT}}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can answer these error statuses besides the ones every route gets."""
    return {status: {"description": ERROR_DESCRIPTIONS[status]} for status in statuses}


def _body(adapter: TypeAdapter, components: dict[str, Any]) -> dict[str, Any]:
    schema = adapter.json_schema(ref_template=REF_TEMPLATE)
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _document_errors(document: dict[str, Any]) -> None:
    components = document["components"]
    components["schemas"]["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer",
                                                "description": "A team's API key (`belle admin create-team`)"}}
    for name in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(name, None)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            statuses = {int(code) for code in responses if code.isdigit() and int(code) >= 400 and code != "422"}
            if responses.pop("422", None) is not None or operation.get("parameters") or operation.get("requestBody"):
                statuses.add(400)
            if path.startswith("/v1/"):
                statuses.add(401)
                operation["security"] = [{"apiKey": []}]
            if any(p.get("in") == "path" for p in operation.get("parameters", ())):
                statuses.add(404)
            for status in sorted(statuses):
                documented = responses.setdefault(str(status), {})
                documented.setdefault("description", ERROR_DESCRIPTIONS.get(status, "Error"))
                documented.setdefault("content", error)


def _mark_uploads_binary(document: dict[str, Any]) -> None:
    """An upload field as OpenAPI 3.0 and 3.1 both say it (`format: binary` beside FastAPI's
    `contentMediaType`): client generators read the former, and would otherwise send the file as a string."""
    for schema in document["components"]["schemas"].values():
        for prop in (schema.get("properties") or {}).values():
            if prop.get("type") == "string" and prop.get("contentMediaType") == "application/octet-stream":
                prop["format"] = "binary"


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
            _document_errors(document)
            _mark_uploads_binary(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
