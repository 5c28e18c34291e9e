"""The outermost layer of the gateway: refuses an oversized upload early and counts every request.

A plain ASGI middleware, not `@app.middleware("http")`: Starlette's `BaseHTTPMiddleware` relays every
message of a response through an extra task and memory stream, which for a streamed chat reply is one
relay per token on the event loop's thread (measured: the loop held the GIL about as long as the
batching engine did). Here each message goes straight through, observed in passing.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from starlette.responses import JSONResponse

from belle_gateway.errors import error_body
from belle_gateway.metrics import HTTP_LATENCY, HTTP_REQUESTS

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ObserveRequests:
    """Counts requests per method, route and status, and their latency (until the response has been
    sent in full, so a streamed reply counts its whole stream); refuses, from its Content-Length alone,
    a request body larger than the upload limit (plus 1 MiB for the multipart framing) with a 413."""

    def __init__(self, app: ASGIApp, *, max_upload_bytes: int):
        self.app = app
        self.max_body_bytes = max_upload_bytes + 1024 * 1024
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length.isdigit() and int(length) > self.max_body_bytes:
            body = error_body(413, f"request is larger than the upload limit of {self.max_upload_bytes} bytes",
                              param="file", code="file_too_large")
            await JSONResponse(body, status_code=413)(scope, receive, send)
            return

        start = time.perf_counter()
        status = 500  # what an exception escaping the app becomes

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            # The router records the matched route in the scope it was given (this same dict).
            path = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], path, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], path).observe(time.perf_counter() - start)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""
