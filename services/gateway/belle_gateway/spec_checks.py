"""Checks a spec must pass before its job is queued: references that exist and belong to the team.

A registry keyed by job type; each check raises APIError naming the offending field.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from belle_gateway.errors import APIError
from belle_shared.artifacts import ArtifactStore
from belle_shared.db.models import File, Team
from belle_shared.specs import PROMPT_PLACEHOLDERS, DatagenSpec, ImportSpec, JobSpec

SpecCheck = Callable[[Session, Team, JobSpec, ArtifactStore], None]
SPEC_CHECKS: dict[str, list[SpecCheck]] = {}


def spec_check(job_type: str) -> Callable[[SpecCheck], SpecCheck]:
    def register(fn: SpecCheck) -> SpecCheck:
        SPEC_CHECKS.setdefault(job_type, []).append(fn)
        return fn

    return register


def run_spec_checks(session: Session, team: Team, spec: JobSpec, store: ArtifactStore) -> None:
    for check in SPEC_CHECKS.get(spec.type, []):
        check(session, team, spec, store)


def require_team_file(session: Session, team: Team, file_id, param: str, *, purposes: tuple[str, ...] = ()) -> File:
    file = session.scalar(select(File).where(File.id == file_id, File.team_id == team.id))
    if file is None:
        raise APIError(400, f"{param}: no file with id {file_id}", param=param, code="file_not_found")
    if purposes and file.purpose not in purposes:
        raise APIError(400, f"{param}: file {file.filename!r} was uploaded with purpose {file.purpose!r}; "
                       f"this field takes a file uploaded with purpose {' or '.join(map(repr, purposes))}",
                       param=param, code="wrong_file_purpose")
    return file


@spec_check("import")
def _import_file_exists(session: Session, team: Team, spec: ImportSpec, store: ArtifactStore) -> None:
    require_team_file(session, team, spec.file_id, "file_id")


@spec_check("datagen")
def _datagen_files(session: Session, team: Team, spec: DatagenSpec, store: ArtifactStore) -> None:
    if spec.seed_file_id is not None:
        require_team_file(session, team, spec.seed_file_id, "seed_file_id", purposes=("datagen",))
    if spec.topics_file_id is not None:
        if spec.mode != "dialogue":
            raise APIError(400, "topics_file_id: topics are used only with mode 'dialogue'",
                           param="topics_file_id", code="invalid_value")
        require_team_file(session, team, spec.topics_file_id, "topics_file_id", purposes=("prompt",))
    if spec.prompt_file_id is not None:
        prompt = require_team_file(session, team, spec.prompt_file_id, "prompt_file_id", purposes=("prompt",))
        with store.open(prompt.uri, "rb") as f:
            template = f.read().decode("utf-8")  # checked as UTF-8 text at upload
        missing = [p for p in PROMPT_PLACEHOLDERS[spec.mode] if p not in template]
        if missing:
            raise APIError(400, f"prompt_file_id: the template {prompt.filename!r} lacks {', '.join(missing)}, "
                           f"which mode {spec.mode!r} fills in", param="prompt_file_id", code="invalid_prompt")
