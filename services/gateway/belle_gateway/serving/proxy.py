"""The proxy backend: chat for a model forwarded to another OpenAI-compatible server (vLLM on GPUs).

The gateway has already checked the key and the team's access to the model; the upstream server sees
the request as the client sent it, with the model name it knows. Replies, streamed ones included, go
back byte for byte. An upstream error keeps its status and OpenAI-shaped body; an unreachable upstream
is a 502 in OpenAI's shape.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from belle_gateway.errors import error_body
from belle_gateway.settings import ProxyRoute

log = logging.getLogger(__name__)


class ChatProxy:
    def __init__(self) -> None:
        self._clients: dict[tuple[str, float], httpx.AsyncClient] = {}

    def _client(self, route: ProxyRoute) -> httpx.AsyncClient:
        key = (route.url, route.timeout)
        if key not in self._clients:
            self._clients[key] = httpx.AsyncClient(timeout=httpx.Timeout(route.timeout, connect=10.0))
        return self._clients[key]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def forward(self, route: ProxyRoute, body: dict[str, Any], *, model_name: str) -> Response:
        payload = {**body, "model": route.model or model_name}
        headers = {"Authorization": f"Bearer {route.api_key}"} if route.api_key else {}
        request = self._client(route).build_request("POST", route.url.rstrip("/") + "/chat/completions",
                                                     json=payload, headers=headers)
        try:
            upstream = await self._client(route).send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("chat proxy to %s failed: %s", route.url, exc)
            return JSONResponse(error_body(502, f"the server that serves {model_name!r} is unreachable "
                                           f"({type(exc).__name__})", code="upstream_unreachable"), status_code=502)
        if upstream.status_code >= 400:
            content = await upstream.aread()
            await upstream.aclose()
            return _upstream_error(upstream.status_code, content, model_name)
        media_type = upstream.headers.get("content-type", "application/json")
        if body.get("stream"):
            return StreamingResponse(upstream.aiter_raw(), status_code=upstream.status_code, media_type=media_type,
                                     background=BackgroundTask(upstream.aclose))
        content = await upstream.aread()
        await upstream.aclose()
        return Response(content, status_code=upstream.status_code, media_type=media_type)


def _upstream_error(status: int, content: bytes, model_name: str) -> Response:
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        # A 5xx of the upstream server is a bad gateway from the client's side.
        return JSONResponse(body, status_code=502 if status >= 500 else status)
    text = content.decode("utf-8", "replace")[:500]
    code = 502 if status >= 500 else status
    return JSONResponse(error_body(code, f"the server that serves {model_name!r} answered {status}: {text}",
                                   code="upstream_error"), status_code=code)
