"""Gateway settings: the shared ones plus HTTP and upload limits and where models may come from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from belle_shared.settings import Settings
from belle_shared.specs import JOB_TYPES


class GatewaySettings(Settings):
    host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(8000, description="Port the gateway listens on.")
    max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1, description="Largest accepted upload.")
    enabled_job_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["import", "datagen", "train", "quantize", "eval"],
        description="Job types this deployment accepts (comma-separated in the environment). Others are "
        "refused with a 400 instead of waiting forever for a worker that is not deployed.",
    )
    sse_poll_interval: float = Field(0.5, gt=0, description="How often an event stream checks for new events.")
    run_sweeper: bool = Field(True, description="Run the job sweeper inside the gateway process.")
    model_roots: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Folders a team may register base models from (`POST /v1/models`), comma-separated in "
        "the environment. Unset: <data_dir>/models. A team may also register a folder of its own in the "
        "artifact store.",
    )

    @field_validator("model_roots", mode="before")
    @classmethod
    def _split_roots(cls, value):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def resolved_model_roots(self) -> list[Path]:
        """The model roots as absolute paths with symlinks resolved (what registrations are checked against)."""
        roots = self.model_roots or [str(self.data_dir / "models")]
        return [Path(root).expanduser().resolve() for root in roots]

    @field_validator("enabled_job_types", mode="before")
    @classmethod
    def _split(cls, value):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        unknown = set(value) - set(JOB_TYPES)
        if unknown:
            raise ValueError(f"unknown job types {sorted(unknown)}; known: {list(JOB_TYPES)}")
        return value
