"""The chat service kept on `app.state`: routes a request to the proxy or the in-process engine and
turns the engine's events into OpenAI's responses (one JSON body, or server-sent events).

Streaming: each choice first gets a chunk with the assistant role, then one chunk per piece of text,
then one with its finish reason; with ``stream_options.include_usage`` a last chunk carries the usage
and no choices; then ``data: [DONE]``. A failure after the stream has started arrives as
``data: {"error": {...}}`` (the `openai` client raises it as an APIError). A client that goes away
cancels its sequences: the engine drops them before its next step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, AsyncIterator

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse

from belle_gateway.errors import APIError, error_body
from belle_gateway.serving.cpu_kernels import CpuKernels
from belle_gateway.serving.pool import ModelPool, PoolBusy
from belle_gateway.serving.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChoiceMessage,
    ChunkChoice,
    Delta,
    Usage,
    completion_id,
    now,
)
from belle_gateway.serving.proxy import ChatProxy
from belle_gateway.settings import GatewaySettings, ProxyRoute
from belle_shared.artifacts import ArtifactStore

log = logging.getLogger(__name__)


@dataclass
class ModelRef:
    """What the service needs of a registry row (read in the request's session, used after it closed)."""

    id: str
    name: str
    uri: str


class ChatService:
    def __init__(self, settings: GatewaySettings, store: ArtifactStore):
        self.settings = settings
        self.proxy = ChatProxy()
        self.pool: ModelPool | None = None
        if settings.chat_engine != "off":
            self.pool = ModelPool(store=store, cache_dir=settings.data_dir / "serving-cache",
                                  engine_kind=settings.chat_engine, max_resident=settings.chat_max_resident_models,
                                  max_batch_size=settings.chat_max_batch_size,
                                  torch_threads=settings.chat_torch_threads,
                                  separate_process=settings.chat_engine_process,
                                  kernels=CpuKernels(onednn_linear=settings.chat_onednn_linear,
                                                     native_attention=settings.chat_native_attention))

    async def close(self) -> None:
        await self.proxy.close()
        if self.pool is not None:
            await run_in_threadpool(self.pool.close)

    def route_for(self, model_name: str) -> ProxyRoute | None:
        routes = self.settings.chat_proxy_routes
        return routes.get(model_name) or routes.get("*")

    async def complete(self, body: ChatCompletionRequest, model: ModelRef) -> Response:
        route = self.route_for(model.name)
        if route is not None:
            return await self.proxy.forward(route, body.model_dump(exclude_unset=True), model_name=model.name)
        if self.pool is None:
            raise APIError(400, f"model: {model.name!r} has no proxy route and this gateway runs no local engine "
                           "(BELLE_CHAT_ENGINE=off)", param="model", code="model_not_served")
        handle = self.pool.acquire_resident(model.id)
        try:
            if handle is None:  # loading takes seconds: off the event loop
                handle = await run_in_threadpool(self.pool.acquire, model.id, model.uri)
        except PoolBusy as exc:
            raise APIError(503, str(exc), code="engine_busy") from None
        except ImportError as exc:
            raise APIError(400, f"model: this gateway cannot load models ({exc}); install belle-gateway[engine] "
                           "or give the model a proxy route", param="model", code="model_not_served") from None
        except (OSError, ValueError) as exc:
            log.warning("cannot load model %s from %s: %s", model.name, model.uri, exc)
            raise APIError(400, f"model: {model.name!r} cannot be loaded: {exc}", param="model",
                           code="model_not_loadable") from None
        run = _Run(self, handle, body, model)
        try:
            run.start()
        except BaseException:
            run.close()
            raise
        if body.stream:
            return StreamingResponse(run.sse(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            return JSONResponse(await run.collect())
        finally:
            run.close()


class _Run:
    """One request on the local engine: its `n` sequences and the queue their events arrive on."""

    def __init__(self, service: ChatService, handle: Any, body: ChatCompletionRequest, model: ModelRef):
        self.service, self.handle, self.body, self.model = service, handle, body, model
        # Events cross from the engine's thread in batches: one wake-up of the event loop per decoding
        # step, not one per token of every choice.
        self._pending: deque[tuple[int, dict]] = deque()
        self._pending_lock = threading.Lock()
        self._drain_scheduled = False
        self._arrived = asyncio.Event()
        self.sequences: list[Any] = []
        self.prompt_tokens = 0
        self.id = completion_id()
        self.created = now()
        self._closed = False

    def start(self) -> None:
        from belle_gateway.serving.engine import EngineInputError, SamplingOptions, Sequence

        loaded, body = self.handle.loaded, self.body
        messages = [{"role": m.role, "content": m.content} for m in body.messages]
        try:
            prompt = loaded.render(messages)
        except EngineInputError as exc:
            raise APIError(400, f"messages: {exc}", param="messages", code="invalid_messages") from None
        self.prompt_tokens = len(prompt)
        max_tokens = self._max_tokens(loaded.context_length)
        loop = asyncio.get_running_loop()
        for index in range(body.n):
            seed = None if body.seed is None else body.seed + index

            def emit(event: dict, index: int = index) -> None:  # called on the engine's thread
                with self._pending_lock:
                    self._pending.append((index, event))
                    if self._drain_scheduled:
                        return
                    self._drain_scheduled = True
                loop.call_soon_threadsafe(self._wake)

            options = SamplingOptions(max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p,
                                      seed=seed, stops=body.stops, ignore_eos=body.ignore_eos)
            self.sequences.append(Sequence(prompt, options, emit, loaded.decode, reply_prefix=loaded.reply_prefix))
        try:
            for seq in self.sequences:
                self.handle.engine.submit(seq)
        except RuntimeError as exc:  # unloaded, or its engine process died, since it was acquired
            raise APIError(503, f"model: {self.model.name!r} is not being served right now ({exc}); retry",
                           code="engine_unavailable") from None

    def _max_tokens(self, context: int | None) -> int:
        asked, prompt = self.body.requested_max_tokens, self.prompt_tokens
        if context is not None:
            if prompt >= context:
                raise APIError(400, f"messages: this model's maximum context length is {context} tokens, and the "
                               f"messages take {prompt}", param="messages", code="context_length_exceeded")
            if asked is not None and prompt + asked > context:
                raise APIError(400, f"max_tokens: this model's maximum context length is {context} tokens; the "
                               f"messages take {prompt} and max_tokens asks for {asked} more ({prompt + asked})",
                               param="max_tokens", code="context_length_exceeded")
        if asked is not None:
            return asked
        default = self.service.settings.chat_default_max_tokens
        return default if context is None else min(default, context - prompt)

    def _wake(self) -> None:
        with self._pending_lock:
            self._drain_scheduled = False
        self._arrived.set()

    def close(self) -> None:
        """Cancel what still runs and give the model back to the pool (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for seq in self.sequences:
            seq.cancel()
        self.service.pool.release(self.handle)

    async def batches(self) -> AsyncIterator[list[tuple[int, dict]]]:
        """The events of every choice, as they arrived since the last wake-up, until all have ended."""
        open_choices = len(self.sequences)
        while open_choices:
            await self._arrived.wait()
            self._arrived.clear()
            with self._pending_lock:
                batch = list(self._pending)
                self._pending.clear()
            open_choices -= sum(1 for _, event in batch if event["type"] in ("done", "error"))
            yield batch

    async def events(self) -> AsyncIterator[tuple[int, dict]]:
        """Every event of every choice until all have ended."""
        async for batch in self.batches():
            for item in batch:
                yield item

    async def collect(self) -> dict:
        texts = [""] * len(self.sequences)
        reasons: list[str | None] = [None] * len(self.sequences)
        completion = 0
        async for index, event in self.events():
            if event["type"] == "text":
                texts[index] += event["text"]
            elif event["type"] == "done":
                reasons[index] = event["finish_reason"]
                completion += event["completion_tokens"]
            else:
                raise APIError(500, event["message"], code="generation_failed")
        choices = [Choice(index=i, message=ChoiceMessage(content=t), finish_reason=r)
                   for i, (t, r) in enumerate(zip(texts, reasons))]
        return ChatCompletion(id=self.id, created=self.created, model=self.model.name, choices=choices,
                              usage=self._usage(completion)).model_dump()

    def _usage(self, completion: int) -> Usage:
        prompt = self.prompt_tokens * len(self.sequences)  # each choice reads the prompt
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    def _chunk(self, choices: list[ChunkChoice], usage: Usage | None = None) -> str:
        chunk = ChatCompletionChunk(id=self.id, created=self.created, model=self.model.name, choices=choices,
                                    usage=usage)
        return f"data: {json.dumps(chunk.model_dump(exclude_none=False), ensure_ascii=False)}\n\n"

    def _text_chunk(self, index: int, text: str) -> str:
        # The hot path (one chunk per piece of text): formatted directly, same JSON as `_chunk` gives.
        return (f'data: {{"id": "{self.id}", "object": "chat.completion.chunk", "created": {self.created}, '
                f'"model": {json.dumps(self.model.name, ensure_ascii=False)}, "choices": [{{"index": {index}, '
                f'"delta": {{"role": null, "content": {json.dumps(text, ensure_ascii=False)}}}, '
                f'"finish_reason": null, "logprobs": null}}], "usage": null}}\n\n')

    async def sse(self) -> AsyncIterator[str]:
        try:
            for index in range(len(self.sequences)):
                yield self._chunk([ChunkChoice(index=index, delta=Delta(role="assistant", content=""))])
            completion = 0
            async for index, event in _joined_text(self.batches()):
                if event["type"] == "text":
                    yield self._text_chunk(index, event["text"])
                elif event["type"] == "done":
                    completion += event["completion_tokens"]
                    yield self._chunk([ChunkChoice(index=index, delta=Delta(), finish_reason=event["finish_reason"])])
                else:
                    body = error_body(500, event["message"], code="generation_failed")
                    yield f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
                    return
            options = self.body.stream_options
            if options is not None and options.include_usage:
                yield self._chunk([], usage=self._usage(completion))
            yield "data: [DONE]\n\n"
        finally:
            self.close()  # also when the client went away: Starlette cancels this generator


async def _joined_text(batches: AsyncIterator[list[tuple[int, dict]]]) -> AsyncIterator[tuple[int, dict]]:
    """Events with a choice's consecutive text pieces of one wake-up joined into one. When the event
    loop keeps up, that is one piece per decoding step, as before; when it falls behind (a busy CPU),
    it sends one chunk where it would have sent several, so the backlog costs it and the client less."""
    async for batch in batches:
        text: dict[int, str] = {}
        for index, event in batch:
            if event["type"] == "text":
                text[index] = text.get(index, "") + event["text"]
                continue
            if index in text:
                yield index, {"type": "text", "text": text.pop(index)}
            yield index, event
        for index, joined in text.items():
            yield index, {"type": "text", "text": joined}
