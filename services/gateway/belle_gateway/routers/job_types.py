"""The registered job types (`belle_shared.job_types`), for clients and the web pages' type lists."""

from __future__ import annotations

from fastapi import APIRouter

from belle_gateway.deps import SettingsDep, TeamDep
from belle_gateway.schemas.job_types import JobTypePublic, JobTypesPublic
from belle_shared.job_types import job_types

router = APIRouter(prefix="/v1/job_types", tags=["jobs"])


@router.get("", response_model=JobTypesPublic)
def list_(settings: SettingsDep, team: TeamDep):
    """Every job type the platform knows, whether this deployment accepts it, its queue and its outputs."""
    enabled = set(settings.enabled_job_types)
    return JobTypesPublic(data=[JobTypePublic.of(t, enabled=t.name in enabled) for t in job_types().values()])
