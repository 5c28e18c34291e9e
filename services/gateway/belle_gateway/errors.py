"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``, never a bare 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from belle_shared.errors import SpecRefused
from belle_shared.job_types import job_type_names

log = logging.getLogger(__name__)

_TYPE_FOR_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    503: "service_unavailable",
}


class APIError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": _TYPE_FOR_STATUS.get(status, "api_error"), "param": param, "code": code}}


def loc_to_param(loc: tuple | list) -> str:
    """("body", "hyperparameters", "epochs") -> "hyperparameters.epochs"; list indexes as [i]."""
    out = ""
    for part in loc:
        if part in ("body", "query", "path", "header") and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def validation_error(exc: ValidationError | RequestValidationError, prefix: tuple = ()) -> APIError:
    """The first problem as message/param, and how many more there are."""
    errors = exc.errors()
    first = errors[0]
    loc = tuple(prefix) + tuple(first.get("loc", ()))
    # A discriminated union puts the tag in the location ("import", "file_id"); drop it.
    tags = set(job_type_names())
    loc = tuple(part for part in loc if part not in tags)
    param = loc_to_param(loc) or None
    if first["type"] == "union_tag_invalid":
        ctx = first.get("ctx", {})
        message = f"unknown job type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
        param = "type"
    elif first["type"] == "union_tag_not_found":
        message = "missing field 'type' (the job type)"
        param = "type"
    elif first["type"] == "json_invalid":
        message = f"request body is not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}"
        param = None
    else:
        message = f"{param}: {first['msg']}" if param else first["msg"]
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return APIError(400, message, param=param, code=first["type"])


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError):
        return JSONResponse(error_body(exc.status, exc.message, exc.param, exc.code), status_code=exc.status)

    @app.exception_handler(SpecRefused)
    async def _spec_refused(_request: Request, exc: SpecRefused):
        return JSONResponse(error_body(exc.status, exc.message, exc.param, exc.code), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_request: Request, exc: RequestValidationError):
        err = validation_error(exc)
        return JSONResponse(error_body(err.status, err.message, err.param, err.code), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return JSONResponse(error_body(exc.status_code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "internal server error", code="internal_error"), status_code=500)
