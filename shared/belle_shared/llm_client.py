"""Talking to an OpenAI-compatible endpoint (a datagen teacher, an eval judge): one request at a
time, done right.

``TeacherClient.complete(prompt)`` sends one prompt through the real ``openai`` async client (chat or
completion API), waits for a requests-per-minute slot, retries rate limits (429), server errors,
timeouts and dropped connections with exponential backoff (honouring ``Retry-After``), and turns the
errors a retry cannot fix (wrong key, unknown model, a request the endpoint refuses) into a
``JobError`` that names the spec field to correct. Concurrency is the caller's business: many
``complete`` calls may be awaited at once.

``field`` is the name of the spec field that holds the endpoint (``"teacher"`` in a datagen spec,
``"judge"`` in an eval spec): errors say ``judge.model`` / code ``judge_model_not_found`` for a judge.
Where the endpoint sits in a list (``candidate_endpoints[1]``), ``param_prefix`` names that element
for the errors' ``param`` while codes and wording keep ``field``.

The API key comes from the caller (resolved from a server-side secret); it is handed to the
``openai`` client and never logged, stored or put in an error message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

import openai

from belle_shared.errors import JobError, RetryableJobError
from belle_shared.specs import TeacherEndpoint

log = logging.getLogger(__name__)

# Without a key the client still needs some string; keyless endpoints ignore the header.
NO_KEY = "no-key"
MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True)
class Reply:
    text: str
    truncated: bool  # finish_reason == "length": the last block is cut off
    prompt_tokens: int
    completion_tokens: int


@dataclass
class ClientCounters:
    requests: int = 0  # HTTP attempts, retries included
    retries: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # transient error kind -> count

    def count_error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class RateLimiter:
    """Spaces request starts evenly so that at most ``per_minute`` start in any minute."""

    def __init__(self, per_minute: int | None):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


def _describe(exc: openai.APIStatusError) -> str:
    """The endpoint's own error message, without echoing request headers (the key)."""
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message") or (body.get("error") or {}).get("message") if body else None
    return f"HTTP {exc.status_code}: {message or exc.message}"


class TeacherClient:
    def __init__(self, endpoint: TeacherEndpoint, *, api_key: str | None, temperature: float, top_p: float,
                 max_tokens: int, requests_per_minute: int | None = None, backoff_base: float = 1.0,
                 field: str = "teacher", param_prefix: str | None = None):
        self.endpoint = endpoint
        self.field = field  # the spec field errors name (error-code prefix, wording, param prefix)
        self.param_prefix = param_prefix or field
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.backoff_base = backoff_base
        self.counters = ClientCounters()
        self.limiter = RateLimiter(requests_per_minute)
        # Retries are ours (counted, with the job's policy), so the client's own are off.
        self._client = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key=api_key or NO_KEY,
                                          timeout=endpoint.timeout, max_retries=0)

    async def aclose(self) -> None:
        await self._client.close()

    async def preflight(self) -> list[str] | None:
        """Check the endpoint answers and accepts the key before any budget is spent.

        Lists the endpoint's models (free on every OpenAI-compatible server that has the route).
        Returns the model ids, or None when the endpoint has no model list.
        """
        attempt = 0
        while True:
            try:
                page = await self._client.models.list()
                return [m.id for m in page.data]
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise self._fatal(exc) from None
            except openai.NotFoundError:
                return None  # no /models route: the first real request will tell
            except openai.APIStatusError as exc:
                if exc.status_code < 500 and exc.status_code != 429:
                    return None  # some proxies refuse the listing but serve completions
                error: Exception = exc
            except (openai.APIConnectionError, openai.APITimeoutError) as exc:
                error = exc
            attempt += 1
            if attempt > min(self.endpoint.max_retries, 3):
                raise JobError(
                    f"{self.field}_unreachable",
                    f"the {self.field} at {self.endpoint.base_url} did not answer ({type(error).__name__}: {error})",
                    param=f"{self.param_prefix}.base_url",
                )
            await asyncio.sleep(self.backoff_base * 2 ** (attempt - 1))

    async def complete(self, prompt: str) -> Reply:
        attempt = 0
        while True:
            await self.limiter.wait()
            self.counters.requests += 1
            try:
                return await self._send(prompt)
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError,
                    openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                raise self._fatal(exc) from None
            except openai.RateLimitError as exc:
                kind, delay_hint, error = "rate_limited", _retry_after(exc), exc
            except openai.APIStatusError as exc:
                kind, delay_hint, error = f"http_{exc.status_code}", None, exc
            except openai.APITimeoutError as exc:
                kind, delay_hint, error = "timeout", None, exc
            except openai.APIConnectionError as exc:
                kind, delay_hint, error = "connection", None, exc
            self.counters.count_error(kind)
            attempt += 1
            if attempt > self.endpoint.max_retries:
                # The job as a whole is retried later and resumes from its checkpoint.
                raise RetryableJobError(
                    f"{self.field}_unavailable",
                    f"the {self.field} kept failing ({kind}) after {self.endpoint.max_retries} retries: {error}",
                    param=f"{self.param_prefix}.base_url",
                )
            self.counters.retries += 1
            backoff = min(MAX_BACKOFF_SECONDS, self.backoff_base * 2 ** (attempt - 1))
            delay = max(delay_hint or 0.0, backoff * random.uniform(0.5, 1.0))
            await asyncio.sleep(delay)

    async def _send(self, prompt: str) -> Reply:
        common = dict(model=self.endpoint.model, temperature=self.temperature, top_p=self.top_p,
                      max_tokens=self.max_tokens)
        if self.endpoint.api == "chat":
            response = await self._client.chat.completions.create(
                messages=[{"role": "user", "content": prompt}], **common)
            choice = response.choices[0]
            text = choice.message.content or ""
        else:
            response = await self._client.completions.create(prompt=prompt, **common)
            choice = response.choices[0]
            text = choice.text or ""
        usage = response.usage
        return Reply(
            text=text,
            truncated=choice.finish_reason == "length",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    def _fatal(self, exc: openai.APIStatusError) -> JobError:
        """An error no retry fixes, phrased around the field the user must change."""
        detail = _describe(exc)
        name, prefix = self.field, self.param_prefix
        if isinstance(exc, openai.AuthenticationError):
            secret = self.endpoint.api_key_secret
            where = f"the key in secret {secret!r}" if secret else f"no API key ({prefix}.api_key_secret is unset)"
            return JobError(f"{name}_unauthorized", f"the {name} refused {where}: {detail}",
                            param=f"{prefix}.api_key_secret")
        if isinstance(exc, openai.PermissionDeniedError):
            return JobError(f"{name}_forbidden", f"the {name}'s key may not use this model: {detail}",
                            param=f"{prefix}.api_key_secret")
        if isinstance(exc, openai.NotFoundError):
            return JobError(f"{name}_model_not_found",
                            f"the {name} does not serve model {self.endpoint.model!r} at "
                            f"{self.endpoint.base_url}: {detail}", param=f"{prefix}.model")
        return JobError(f"{name}_bad_request", f"the {name} refused the request: {detail}", param=prefix)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return min(MAX_BACKOFF_SECONDS, float(value)) if value else None
    except ValueError:
        return None
