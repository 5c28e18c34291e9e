"""Secrets: a team's named secrets (teacher and judge API keys) that job specs refer to by name.

Values go in and never come out: workers decrypt them when a job needs them.
"""

from __future__ import annotations

from fastapi import APIRouter, Path
from sqlalchemy import select

from belle_gateway.deps import SessionDep, SettingsDep, TeamDep
from belle_gateway.errors import APIError
from belle_gateway.schemas import SecretPublic, SecretSet, SecretsPublic
from belle_shared.db.models import TeamSecret
from belle_shared.db.types import utcnow
from belle_shared.secrets import SECRET_NAME_PATTERN, encrypt_secret

router = APIRouter(prefix="/v1/secrets", tags=["secrets"])
SecretName = Path(pattern=SECRET_NAME_PATTERN, description="Letters, digits and underscores; the name specs use.")


@router.put("/{name}", response_model=SecretPublic)
def put(body: SecretSet, session: SessionDep, settings: SettingsDep, team: TeamDep, name: str = SecretName):
    """Create or replace a team secret."""
    secret = session.scalar(select(TeamSecret).where(TeamSecret.team_id == team.id, TeamSecret.name == name))
    ciphertext = encrypt_secret(settings, body.value)
    if secret is None:
        secret = TeamSecret(team_id=team.id, name=name, ciphertext=ciphertext)
        session.add(secret)
    else:
        secret.ciphertext = ciphertext
        secret.updated_at = utcnow()
    session.commit()
    return SecretPublic.of(secret)


@router.get("", response_model=SecretsPublic)
def list_(session: SessionDep, team: TeamDep):
    """The team's secret names (never their values)."""
    rows = session.scalars(select(TeamSecret).where(TeamSecret.team_id == team.id).order_by(TeamSecret.name)).all()
    return SecretsPublic(data=[SecretPublic.of(s) for s in rows])


@router.delete("/{name}", status_code=204)
def delete(session: SessionDep, team: TeamDep, name: str = SecretName):
    """Delete a team secret; jobs that name it afterwards fail with `missing_secret`."""
    secret = session.scalar(select(TeamSecret).where(TeamSecret.team_id == team.id, TeamSecret.name == name))
    if secret is None:
        raise APIError(404, f"no secret named {name!r}", param="name", code="secret_not_found")
    session.delete(secret)
    session.commit()
