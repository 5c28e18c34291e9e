"""OpenAI's chat completion request and response shapes (the subset the gateway serves).

Unknown request fields are refused (400 naming the field) rather than silently ignored: a client that
sends `logit_bias` or `tools` should learn that this server does not honour them.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_STOP_SEQUENCES = 4
MAX_CHOICES = 8


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"] = Field(description="Who says it.")
    content: str = Field(description="The text of the message.")
    name: str | None = Field(None, description="Accepted for compatibility; not shown to the model.")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = Field(False, strict=True, description="Send one last chunk with the usage counts.")


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="A model of the team or a shared base model, by name or id.")
    messages: list[ChatMessage] = Field(min_length=1, description="The conversation so far.")
    # Booleans are strict here: pydantic would read "yes", "on" or 1 as true; OpenAI's API refuses them.
    stream: bool = Field(False, strict=True, description="Send server-sent events, one per piece of text, then [DONE].")
    stream_options: StreamOptions | None = Field(None, description="Only with stream=true.")
    max_tokens: int | None = Field(None, ge=1, le=2**31 - 1, description="Most tokens to generate per choice "
                                   "(default: what "
                                   "the context leaves, capped by the gateway's chat_default_max_tokens).")
    max_completion_tokens: int | None = Field(None, ge=1, le=2**31 - 1,
                                              description="OpenAI's newer name for max_tokens.")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0 is greedy decoding.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling: keep the smallest set of tokens "
                         "whose probability adds up to top_p.")
    stop: str | list[str] | None = Field(None, description=f"Up to {MAX_STOP_SEQUENCES} strings that end the "
                                         "reply (not included in it).")
    seed: int | None = Field(None, ge=-2**63, le=2**63 - 1, description="Same seed, same request, same sampled "
                             "reply (a 64-bit signed integer, as OpenAI documents it).")
    n: int = Field(1, ge=1, le=MAX_CHOICES, description="How many replies to generate.")
    user: str | None = Field(None, description="Accepted for compatibility; recorded nowhere.")
    ignore_eos: bool = Field(False, strict=True, description="vLLM's extension: keep generating past the end-of-sequence "
                             "token until max_tokens (for benchmarks that need a fixed reply length).")
    presence_penalty: float = Field(0.0, description="Only 0 is supported.")
    frequency_penalty: float = Field(0.0, description="Only 0 is supported.")

    @field_validator("stop")
    @classmethod
    def _stops(cls, value):
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences")
        if any(s == "" for s in stops):
            raise ValueError("a stop sequence cannot be empty")
        return stops

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalties(cls, value):
        if value != 0:
            raise ValueError("penalties are not supported by this server; send 0 or leave it out")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options: only allowed when stream is true")
        if self.max_tokens is not None and self.max_completion_tokens is not None \
                and self.max_tokens != self.max_completion_tokens:
            raise ValueError("max_tokens and max_completion_tokens disagree; send one of them")
        return self

    @property
    def stops(self) -> list[str]:
        return list(self.stop or [])

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int
    message: ChoiceMessage
    finish_reason: Literal["stop", "length"] | None
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())
