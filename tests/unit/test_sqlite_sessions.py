"""The embedded SQLite file: write sessions queue for its lock, read-only sessions never do."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text

from belle_shared.db.engine import make_read_session_factory, make_session_factory, _make_sqlite_engine


@pytest.fixture
def engine(tmp_path):
    engine = _make_sqlite_engine(f"sqlite:///{tmp_path / 'belle.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.exec_driver_sql("INSERT INTO notes (body) VALUES ('first')")
    yield engine
    engine.dispose()


def _in_thread(work) -> tuple[threading.Thread, list]:
    done: list = []
    thread = threading.Thread(target=lambda: done.append(work()), daemon=True)
    thread.start()
    return thread, done


def test_a_read_only_session_reads_while_a_writer_holds_the_lock_and_a_write_session_waits(engine):
    writes, reads = make_session_factory(engine), make_read_session_factory(engine)
    with writes() as writer:
        writer.execute(text("INSERT INTO notes (body) VALUES ('uncommitted')"))  # holds the write lock

        def read():
            with reads() as session:
                return session.scalars(text("SELECT body FROM notes ORDER BY id")).all()

        thread, done = _in_thread(read)
        thread.join(timeout=5)
        assert done == [["first"]]  # not blocked, and the writer's uncommitted row is not seen

        def write():
            with writes() as session:
                session.execute(text("INSERT INTO notes (body) VALUES ('second')"))
                session.commit()
                return True

        waiting, wrote = _in_thread(write)
        waiting.join(timeout=1)
        assert waiting.is_alive() and not wrote  # BEGIN IMMEDIATE: queued behind the writer
        writer.commit()
    waiting.join(timeout=10)
    assert wrote == [True]
    with reads() as session:
        assert session.scalars(text("SELECT body FROM notes ORDER BY id")).all() == ["first", "uncommitted", "second"]


def test_a_read_only_session_refuses_to_write(engine):
    from belle_shared.db.models import Team

    with make_read_session_factory(engine)() as session:
        assert session.scalar(select(text("1"))) == 1
        session.add(Team(name="nope"))
        with pytest.raises(RuntimeError, match="read-only session"):
            session.flush()
