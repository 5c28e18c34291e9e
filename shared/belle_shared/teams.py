"""Teams and their API keys. Keyword-only, no commits: the caller owns the transaction."""

from __future__ import annotations

import unicodedata
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from belle_shared.db.models import ApiKey, Team
from belle_shared.security import display_prefix, generate_api_key, hash_api_key


MAX_TEAM_NAME = 100  # the column's length


class TeamExists(Exception):
    pass


class InvalidTeamName(ValueError):
    pass


def check_team_name(name: str) -> str:
    """A team name is 1 to 100 characters, no blank one and no space at either end (it is shown, and is
    part of every fine-tuned model's name, ``ft:<base>:<team>:...``), and none a control, format or
    surrogate character (PostgreSQL text cannot hold a NUL; the rest cannot be seen or typed)."""
    if not name or not name.strip():
        raise InvalidTeamName("a team name cannot be empty or blank")
    if len(name) > MAX_TEAM_NAME:
        raise InvalidTeamName(f"a team name is at most {MAX_TEAM_NAME} characters; this one has {len(name)}")
    if name != name.strip():
        raise InvalidTeamName(f"a team name cannot start or end with a space: {name!r}")
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs"):
            raise InvalidTeamName(f"a team name cannot hold the control character U+{ord(char):04X}: {name!r}")
    return name


def create_team(session: Session, *, name: str, secret: str) -> tuple[Team, str]:
    """Create a team with one API key; returns the team and the clear key (shown once). Raises
    InvalidTeamName (see `check_team_name`) or TeamExists."""
    check_team_name(name)
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
