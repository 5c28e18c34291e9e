"""`belle admin ...`: administration straight against the database (no gateway needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from belle_cli.commands.common import DataDir, console, fail, load_settings, local_or_url, out

app = typer.Typer(help="Administration (talks to the database directly).", no_args_is_help=True)


@app.command("create-team")
def create_team(name: str, data_dir: Optional[Path] = DataDir):
    """Create a team; its API key is printed as the last line (shown once)."""
    from belle_cli.admin import new_team
    from belle_shared.db.migrate import upgrade
    from belle_shared.teams import InvalidTeamName, TeamExists, check_team_name

    try:
        check_team_name(name)  # before the database is touched
    except InvalidTeamName as exc:
        fail(str(exc))
    settings = load_settings(data_dir)
    upgrade(settings)
    try:
        team, key = new_team(settings, name)
    except (TeamExists, InvalidTeamName) as exc:
        fail(str(exc))
    console.print(f"team {name!r} created ({team.id}); its API key (store it, it is not shown again):")
    out.print(key, soft_wrap=True)


@app.command("register-model")
def admin_register_model(path: str = typer.Argument(..., help="Model folder (or fsspec URL) the workers can read."),
                         name: str = typer.Option(..., "--name", help="Name teams use for it."),
                         data_dir: Optional[Path] = DataDir):
    """Register a shared base model that every team sees (no model-root restriction)."""
    from belle_shared.db.engine import make_engine, make_session_factory
    from belle_shared.db.migrate import upgrade
    from belle_shared.models import ModelExists, register_model

    settings = load_settings(data_dir)
    upgrade(settings)
    uri = local_or_url(path)
    engine = make_engine(settings)
    try:
        with make_session_factory(engine)() as session:
            model = register_model(session, team_id=None, name=name, uri=uri)
            session.commit()
    except (ModelExists, ValueError) as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    console.print(f"shared base model {name!r} registered ({model.id}) from {uri}")
    out.print(str(model.id))


@app.command("migrate")
def migrate(data_dir: Optional[Path] = DataDir):
    """Bring the database schema up to date."""
    from belle_shared.db.migrate import upgrade

    upgrade(load_settings(data_dir))
    console.print("database is up to date")
