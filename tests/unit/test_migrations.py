"""The Alembic migrations build exactly the schema the models declare, and 0004 (the judge cache)
goes down and up again cleanly. On SQLite, the embedded default; PostgreSQL is migrated by every
integration run's fixture."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from belle_shared.db.engine import make_engine
from belle_shared.db.migrate import alembic_config, upgrade
from belle_shared.db.models import Base
from belle_shared.settings import Settings


def test_head_matches_the_models_and_0004_goes_down_and_up(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings)
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            # No table, column, type or index that the models and the migrations disagree on.
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
            assert "judgments" in inspect(connection).get_table_names()
            columns = {c["name"]: c for c in inspect(connection).get_columns("judgments")}
            assert set(columns) == {"key", "kind", "judge_model", "base_url", "reply", "score", "parsed",
                                    "prompt_tokens", "completion_tokens", "created_at"}
            assert columns["score"]["nullable"] and not columns["parsed"]["nullable"]

        command.downgrade(alembic_config(settings), "0003")
        with engine.connect() as connection:
            assert "judgments" not in inspect(connection).get_table_names()
            assert "eval_results" in inspect(connection).get_table_names()
        upgrade(settings)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        engine.dispose()
