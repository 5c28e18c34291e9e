"""Administration straight against the database (no gateway needed)."""

from __future__ import annotations

from belle_shared.db.engine import make_engine, make_session_factory
from belle_shared.db.models import Team
from belle_shared.settings import Settings
from belle_shared.teams import create_team


def new_team(settings: Settings, name: str) -> tuple[Team, str]:
    """Create a team and commit it; returns the team and its clear API key. Raises TeamExists or InvalidTeamName."""
    engine = make_engine(settings)
    try:
        with make_session_factory(engine)() as session:
            team, key = create_team(session, name=name, secret=settings.secret_key)
            session.commit()
    finally:
        engine.dispose()
    return team, key
