"""Checks a spec must pass before its job is queued: references that exist and belong to the team.

A registry keyed by job type; each check raises APIError naming the offending field.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from belle_gateway.errors import APIError
from belle_shared.db.models import File, Team
from belle_shared.specs import ImportSpec, JobSpec

SpecCheck = Callable[[Session, Team, JobSpec], None]
SPEC_CHECKS: dict[str, list[SpecCheck]] = {}


def spec_check(job_type: str) -> Callable[[SpecCheck], SpecCheck]:
    def register(fn: SpecCheck) -> SpecCheck:
        SPEC_CHECKS.setdefault(job_type, []).append(fn)
        return fn

    return register


def run_spec_checks(session: Session, team: Team, spec: JobSpec) -> None:
    for check in SPEC_CHECKS.get(spec.type, []):
        check(session, team, spec)


def require_team_file(session: Session, team: Team, file_id, param: str) -> File:
    file = session.scalar(select(File).where(File.id == file_id, File.team_id == team.id))
    if file is None:
        raise APIError(400, f"{param}: no file with id {file_id}", param=param, code="file_not_found")
    return file


@spec_check("import")
def _import_file_exists(session: Session, team: Team, spec: ImportSpec) -> None:
    require_team_file(session, team, spec.file_id, "file_id")
