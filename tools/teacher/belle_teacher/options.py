"""The teacher's options: one typed place for what the CLI flags set."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from belle_teacher.replies import PositionBias


class TeacherOptions(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8100, ge=0, le=65535, description="0 picks a free port")
    model: str = Field("belle-teacher", min_length=1, description="the one model name served")
    api_key: str | None = Field(None, description="if set, requests need `Authorization: Bearer <key>`")
    latency: float = Field(0.0, ge=0, description="seconds of delay per generation request")
    jitter: float = Field(0.0, ge=0, description="extra random delay, uniform in [0, jitter] seconds")
    error_rate: float = Field(0.0, ge=0, le=1, description="share of generation requests failing with 429 / 503")
    noise: float = Field(0.05, ge=0, le=1, description="share of generated self-instruct blocks made deliberately bad")
    seed: int | None = Field(None, description="seed of the teacher's random choices (None: fresh each start)")
    holdout: Path | None = Field(
        None, description="eval-set JSONL (`belle_teacher.evalset`) whose questions the teacher never generates")
    position_bias: PositionBias = Field(
        "none", description="pairwise judging: 'none' judges the answers on their merits; 'first' always answers "
                            "[[A]], a deliberately biased judge, so tests can show that judging both orders cancels it")
