"""Scoring one answer now (`/v1/evals/judge`): the request, the judgment, and the judge prompts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from belle_shared.specs import EVAL_CLASSES, TeacherEndpoint

MAX_TEXT = 32_000  # characters per question, reference or answer


class JudgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    question: str = Field(min_length=1, max_length=MAX_TEXT, description="The question (instruction) asked.")
    cls: str = Field(alias="class", description=f"Its task class: one of {', '.join(EVAL_CLASSES)} (any case, _ or -).")
    answer: str = Field(min_length=1, max_length=MAX_TEXT, description="The answer to score.")
    reference: str | None = Field(None, max_length=MAX_TEXT, description="A reference answer, if there is one.")
    judge: TeacherEndpoint = Field(description="The judge, as in an eval spec's `judge` field.")


class JudgeEndpointPublic(BaseModel):
    base_url: str
    model: str


class JudgmentPublic(BaseModel):
    object: str = "eval.judgment"
    cls: str = Field(serialization_alias="class")
    score: float | None  # 0..1; None when the reply states no score
    parsed: bool
    reason: str  # the judge's explanation (its 理由 / Reason line, else the whole reply)
    reply: str
    prompt: str  # exactly what the judge was sent
    judge: JudgeEndpointPublic
    prompt_tokens: int
    completion_tokens: int


class JudgePromptPublic(BaseModel):
    cls: str = Field(serialization_alias="class")
    template: str


class JudgePromptsPublic(BaseModel):
    object: str = "list"
    data: list[JudgePromptPublic]
