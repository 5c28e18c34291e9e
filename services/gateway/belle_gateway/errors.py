"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``, never a bare 500."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

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


# Where a value matched no member of a plain union (`stop: str | list[str]`), pydantic names the member in
# the location ("stop", "str"); the field is what a client knows.
_UNION_MEMBERS = {"str", "int", "float", "bool", "bytes", "none", "decimal"}


def _is_union_member(part) -> bool:
    return isinstance(part, str) and (part in _UNION_MEMBERS or (part.endswith("]") and "[" in part))


def loc_to_param(loc: tuple | list) -> str:
    """("body", "hyperparameters", "epochs") -> "hyperparameters.epochs"; list indexes as [i]."""
    out = ""
    for part in loc:
        if part in ("body", "query", "path", "header") and not out:
            continue
        if _is_union_member(part):
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
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return JSONResponse(error_body(exc.status_code, message), status_code=exc.status_code, headers=headers)

    # Not `@app.exception_handler(Exception)`: Starlette hands that one to its ServerErrorMiddleware, which
    # sends the handler's response and then raises the exception again, and uvicorn answers an exception
    # after a response has started by logging a second traceback and closing the keep-alive connection
    # (a pooled client's next request on it fails). This layer answers and returns.
    app.add_middleware(CatchUnexpected)
    app.add_middleware(RefuseUnstorableText)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path. Starlette's 405 names only the first route whose path
    matched (GET /v1/files lives beside POST /v1/files), so its Allow header left the others out."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"}) if hasattr(route, "methods") else (Match.NONE, {})
        if match != Match.NONE:
            methods |= set(route.methods or ())
    return sorted(methods)


class CatchUnexpected:
    """An exception no handler answered becomes a JSON 500 in OpenAI's shape, its traceback logged once,
    and the connection stays open. One raised after the response has started (a broken stream) cannot
    be answered: it goes on to the server, which logs it and closes the connection."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception:
            if started:
                raise
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            body = error_body(500, "internal server error", code="internal_error")
            await JSONResponse(body, status_code=500)(scope, receive, send)


def unstorable(text: str) -> str | None:
    """Why PostgreSQL text or a file path cannot hold ``text`` (a NUL, or a lone UTF-16 surrogate that
    UTF-8 cannot encode), or None."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate (\\u{ord(text[exc.start]):04x}) that is not valid Unicode text"
    return None


def _find_unstorable(value, path: tuple = ()) -> tuple[tuple, str] | None:
    """The location and reason of the first string (key or value) in parsed JSON that cannot be stored."""
    if isinstance(value, str):
        why = unstorable(value)
        return (path, why) if why else None
    if isinstance(value, dict):
        for key, item in value.items():
            why = unstorable(key)
            if why:
                return path + (key,), f"key {why}"
            found = _find_unstorable(item, path + (key,))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_unstorable(item, path + (index,))
            if found:
                return found
    return None


# A JSON string can only hold a NUL or a surrogate as an escape: \u0000, \ud800..\udfff (an escaped
# backslash before it, \\u0000, is text). Bodies without one, nearly all, are not parsed here.
_SUSPECT_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


class RefuseUnstorableText:
    """Refuses, as a 400 naming the field, a request whose path, query or JSON body holds a string that
    PostgreSQL text or a file path cannot hold (see `unstorable`), before any route stores it or hands it
    to the filesystem. One place for every route; a multipart upload's fields are the files route's."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._url_problem(scope)
        if problem is None and _is_json(scope):
            body, receive = await _buffer_body(receive)
            if _SUSPECT_ESCAPE.search(body):
                problem = _body_problem(body)
        if problem is None:
            await self.app(scope, receive, send)
            return
        param, message = problem
        await JSONResponse(error_body(400, message, param, "invalid_characters"), status_code=400)(scope, receive, send)

    @staticmethod
    def _url_problem(scope) -> tuple[str | None, str] | None:
        why = unstorable(scope.get("path", ""))
        if why:
            return None, f"the URL path {why}"
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if "\x00" in name or "\x00" in value:
                    name = name.replace("\x00", "")
                    return name or None, f"{name or 'query'}: {unstorable(chr(0))}"
        return None


def _is_json(scope) -> bool:
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            return b"json" in value.lower()
    return False


async def _buffer_body(receive):
    """The whole request body, and a `receive` that replays it and then goes on to the real one."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # a disconnect: the route will see an empty body
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay():
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _body_problem(body: bytes) -> tuple[str | None, str] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None  # not JSON: the route's own parsing says so
    found = _find_unstorable(value)
    if found is None:
        return None
    loc, why = found
    param = "".join(f"[{part}]" if isinstance(part, int) else f"{'.' if i else ''}{part}"
                    for i, part in enumerate(loc)) or None
    return param, f"{param}: {why}" if param else f"request body {why}"
