"""Run the Alembic migrations programmatically (``belle admin migrate`` and the embedded default).

As a one-shot process (containers run it before the gateway starts; only ``belle-shared`` is needed):

    python -m belle_shared.db.migrate            # upgrade to the newest revision
    python -m belle_shared.db.migrate --check    # exit 0 if the database is at the newest revision, else 1
    python -m belle_shared.db.migrate --wait 300 # wait up to 300 s until another process has migrated it

Settings come from BELLE_* environment variables (BELLE_DATABASE_URL).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from belle_shared.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Percent signs in URLs (encoded passwords) must be escaped for ConfigParser.
    config.set_main_option("sqlalchemy.url", settings.resolved_database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    from belle_shared.db.engine import make_engine

    engine = make_engine(settings)
    try:
        with engine.begin() as connection:
            config = alembic_config(settings)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def head_revision(settings: Settings) -> str:
    """The newest revision the installed code knows."""
    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()


def current_revision(settings: Settings) -> str | None:
    """The database's revision (None for an empty database)."""
    from belle_shared.db.engine import make_engine

    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def is_current(settings: Settings) -> bool:
    try:
        return current_revision(settings) == head_revision(settings)
    except Exception:  # database unreachable: not (yet) migrated as far as a waiting process is concerned
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m belle_shared.db.migrate", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only report whether the database is at the head revision")
    mode.add_argument("--wait", type=float, metavar="SECONDS",
                      help="wait until another process has migrated the database (init containers)")
    args = parser.parse_args(argv)
    settings = Settings()
    head = head_revision(settings)
    if args.check:
        ok = is_current(settings)
        print(f"database {'is' if ok else 'is not'} at revision {head}")
        return 0 if ok else 1
    if args.wait is not None:
        deadline = time.monotonic() + args.wait
        while not is_current(settings):
            if time.monotonic() > deadline:
                print(f"database not at revision {head} after {args.wait:.0f} s", file=sys.stderr)
                return 1
            time.sleep(2)
        print(f"database is at revision {head}")
        return 0
    upgrade(settings)
    print(f"database migrated to revision {head}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
