"""Teams and their API keys. Keyword-only, no commits: the caller owns the transaction."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from belle_shared.db.models import ApiKey, Team
from belle_shared.security import display_prefix, generate_api_key, hash_api_key


class TeamExists(Exception):
    pass


def create_team(session: Session, *, name: str, secret: str) -> tuple[Team, str]:
    """Create a team with one API key; returns the team and the clear key (shown once)."""
    if session.scalar(select(Team).where(Team.name == name)) is not None:
        raise TeamExists(f"a team named {name!r} already exists")
    team = Team(id=uuid.uuid4(), name=name)
    session.add(team)
    session.flush()
    return team, add_api_key(session, team_id=team.id, secret=secret)


def add_api_key(session: Session, *, team_id: uuid.UUID, secret: str) -> str:
    key = generate_api_key()
    session.add(ApiKey(team_id=team_id, key_hash=hash_api_key(key, secret), display_prefix=display_prefix(key)))
    return key


def team_for_key(session: Session, *, key: str, secret: str) -> Team | None:
    # One query: authentication runs on every request.
    return session.scalar(
        select(Team).join(ApiKey).where(ApiKey.key_hash == hash_api_key(key, secret), ApiKey.revoked_at.is_(None))
    )
