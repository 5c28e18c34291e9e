"""The job types this deployment knows (`/v1/job_types`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from belle_shared.job_types import JobType


class JobTypePublic(BaseModel):
    object: str = "job_type"
    name: str = Field(description="The spec's `type`.")
    description: str
    queue: str = Field(description="The queue (service) whose worker runs it.")
    outputs: list[str] = Field(description="Result keys a later pipeline step can refer to as `${step.OUTPUT}`.")
    enabled: bool = Field(description="Whether this deployment accepts it (`BELLE_ENABLED_JOB_TYPES`).")
    spec_schema: str = Field(description="The spec's name in the OpenAPI document's components.")

    @classmethod
    def of(cls, job_type: JobType, *, enabled: bool) -> "JobTypePublic":
        return cls(name=job_type.name, description=job_type.description, queue=job_type.queue,
                   outputs=list(job_type.outputs), enabled=enabled, spec_schema=job_type.spec.__name__)


class JobTypesPublic(BaseModel):
    object: str = "list"
    data: list[JobTypePublic]
