"""The teacher's HTTP side: OpenAI-compatible `/v1/models`, `/v1/chat/completions` (with SSE
streaming) and `/v1/completions`, with configurable latency, injected errors and an optional key.

    app = create_app(TeacherOptions(seed=0))     # or: serve(TeacherOptions(port=0))

The serving object (`Teacher`) is built once per app and kept on `app.state.teacher`; the reply
text comes from `replies.reply`. Only the generation endpoints are delayed and fail on purpose:
listing models stays cheap and reliable, like a real provider's.
"""

from __future__ import annotations

import asyncio
import hmac
import random
import sys
import time
import uuid
from typing import Annotated, AsyncIterator

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from belle_teacher import protocol as P
from belle_teacher.evalset import load_holdout
from belle_teacher.options import TeacherOptions
from belle_teacher.replies import reply
from belle_teacher.tokens import count_tokens, pieces, truncate


class Teacher:
    """State shared by all requests: options, the seeded random source, the error alternation."""

    def __init__(self, options: TeacherOptions):
        self.options = options
        self.rng = random.Random(options.seed)
        # Question keys of a held-out eval set: generated tasks never ask one of them.
        self.holdout = load_holdout(options.holdout) if options.holdout is not None else frozenset()
        self.created = int(time.time())
        self._injected = 0

    def card(self) -> P.ModelCard:
        return P.ModelCard(id=self.options.model, created=self.created)

    def check_model(self, name: str) -> None:
        if name != self.options.model:
            raise P.model_not_found(name)

    async def before_generation(self) -> None:
        """The configured delay (awaited, so concurrent requests overlap), then maybe an injected error."""
        delay = self.options.latency + (self.rng.uniform(0, self.options.jitter) if self.options.jitter else 0.0)
        if delay:
            await asyncio.sleep(delay)
        if self.options.error_rate and self.rng.random() < self.options.error_rate:
            self._injected += 1
            raise P.rate_limited() if self._injected % 2 else P.overloaded()

    def answer(self, texts: list[str], instruction: str, *, completion: bool, max_tokens: int | None) -> tuple[str, str]:
        text = reply(texts, instruction, self.rng, noise=self.options.noise, completion=completion,
                     position_bias=self.options.position_bias, holdout=self.holdout)
        text, cut = truncate(text, max_tokens)
        return text, "length" if cut else "stop"


def get_teacher(request: Request) -> Teacher:
    return request.app.state.teacher


TeacherDep = Annotated[Teacher, Depends(get_teacher)]


def require_key(request: Request, teacher: TeacherDep) -> None:
    expected = teacher.options.api_key
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise P.invalid_api_key()


router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])


@router.get("/models", response_model=P.ModelList)
def list_models(teacher: TeacherDep) -> P.ModelList:
    """The one model this teacher serves."""
    return P.ModelList(data=[teacher.card()])


@router.get("/models/{model_id}", response_model=P.ModelCard)
def get_model(model_id: str, teacher: TeacherDep) -> P.ModelCard:
    """One model by name (404 model_not_found for any other name)."""
    teacher.check_model(model_id)
    return teacher.card()


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: P.ChatCompletionRequest, teacher: TeacherDep):
    """A chat reply: self-instruct blocks, a judge's score, a dialogue, or the answer to a task."""
    teacher.check_model(body.model)
    await teacher.before_generation()
    user = [m for m in body.messages if m.role == "user"] or body.messages
    instruction = user[-1].text()
    context = "\n\n".join(m.text() for m in body.messages if m.role in ("system", "developer", "user"))
    texts = [instruction] + ([context] if context != instruction else [])
    answers = [teacher.answer(texts, instruction, completion=False, max_tokens=body.token_limit()) for _ in range(body.n)]
    usage = _usage(sum(count_tokens(m.text()) for m in body.messages), answers)
    reply_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return _sse(_chat_chunks(reply_id, created, body.model, answers, usage if include_usage else None))
    choices = [P.ChatChoice(index=i, message=P.AssistantMessage(content=text), finish_reason=finish)
               for i, (text, finish) in enumerate(answers)]
    return P.ChatCompletion(id=reply_id, created=created, model=body.model, choices=choices, usage=usage)


@router.post("/completions", response_model=None)
async def completions(body: P.CompletionRequest, teacher: TeacherDep):
    """A text continuation: after a self-instruct prompt, the rest of its blocks; else as chat."""
    teacher.check_model(body.model)
    await teacher.before_generation()
    prompts = body.prompts()
    answers = [teacher.answer([prompt], prompt, completion=True, max_tokens=body.max_tokens)
               for prompt in prompts for _ in range(body.n)]
    usage = _usage(sum(count_tokens(p) for p in prompts), answers)
    reply_id, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return _sse(_completion_chunks(reply_id, created, body.model, answers, usage if include_usage else None))
    choices = [P.CompletionChoice(index=i, text=text, finish_reason=finish) for i, (text, finish) in enumerate(answers)]
    return P.Completion(id=reply_id, created=created, model=body.model, choices=choices, usage=usage)


def _usage(prompt_tokens: int, answers: list[tuple[str, str]]) -> P.Usage:
    completion_tokens = sum(count_tokens(text) for text, _ in answers)
    return P.Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                   total_tokens=prompt_tokens + completion_tokens)


def _sse(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache"})


def _event(model) -> str:
    return f"data: {model.model_dump_json()}\n\n"


async def _chat_chunks(reply_id, created, model, answers, usage) -> AsyncIterator[str]:
    def chunk(choices, usage=None):
        return _event(P.ChatCompletionChunk(id=reply_id, created=created, model=model, choices=choices, usage=usage))

    for index, (text, finish) in enumerate(answers):
        yield chunk([P.ChunkChoice(index=index, delta={"role": "assistant", "content": ""})])
        for piece in pieces(text):
            yield chunk([P.ChunkChoice(index=index, delta={"content": piece})])
            await asyncio.sleep(0)
        yield chunk([P.ChunkChoice(index=index, delta={}, finish_reason=finish)])
    if usage is not None:
        yield chunk([], usage)
    yield "data: [DONE]\n\n"


async def _completion_chunks(reply_id, created, model, answers, usage) -> AsyncIterator[str]:
    def chunk(choices, usage=None):
        return _event(P.Completion(id=reply_id, created=created, model=model, choices=choices, usage=usage))

    for index, (text, finish) in enumerate(answers):
        for piece in pieces(text):
            yield chunk([P.CompletionChoice(index=index, text=piece, finish_reason=None)])
            await asyncio.sleep(0)
        yield chunk([P.CompletionChoice(index=index, text="", finish_reason=finish)])
    if usage is not None:
        yield chunk([], usage)
    yield "data: [DONE]\n\n"


def _error_response(error: P.APIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def create_app(options: TeacherOptions | None = None) -> FastAPI:
    """The teacher app; every error, malformed requests included, is answered in OpenAI's shape."""
    app = FastAPI(title="BELLE teacher", version="0.1.0",
                  description="An OpenAI-compatible teacher and judge whose tasks are checked exactly.")
    app.state.teacher = Teacher(options or TeacherOptions())
    app.include_router(router)

    @app.get("/health", include_in_schema=False)
    def health() -> dict:
        return {"status": "ok"}

    @app.exception_handler(P.APIError)
    async def api_error(_request: Request, exc: P.APIError):
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError):
        # OpenAI answers a malformed body with 400 invalid_request_error, never 422 (or 500).
        errors = exc.errors()
        first = errors[0] if errors else {}
        location = [str(part) for part in first.get("loc", ()) if part != "body"]
        message = f"Invalid request: {first.get('msg', 'malformed body')}" + (f" at {'.'.join(location)}" if location else "")
        return _error_response(P.bad_request(message, ".".join(location) or None))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        return _error_response(P.APIError(exc.status_code, str(exc.detail), type=kind))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception):
        return _error_response(P.APIError(500, f"The teacher failed: {type(exc).__name__}", type="server_error"))

    return app


def serve(options: TeacherOptions) -> None:
    """Run the teacher until interrupted; prints the listening line once it accepts connections."""
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                port = self.servers[0].sockets[0].getsockname()[1]
                host = f"[{options.host}]" if ":" in options.host else options.host
                print(f"belle teacher listening on http://{host}:{port}/v1", flush=True)

    config = uvicorn.Config(create_app(options), host=options.host, port=options.port, log_level="warning",
                            access_log=False)
    AnnouncingServer(config).run()
    sys.stdout.flush()
