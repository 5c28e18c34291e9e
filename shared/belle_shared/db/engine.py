"""Engine and session factories. Nothing is created at import time."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from belle_shared.settings import Settings


def make_engine(settings: Settings) -> Engine:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        return _make_sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True, pool_size=settings.db_pool_size,
                         max_overflow=settings.db_pool_size)


def _make_sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # A pool as large as the gateway's thread pool is wide: past pool_size, each connection would be
    # opened (and its PRAGMAs run) per use and closed again, under load on every request.
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=40,
                           max_overflow=40)

    # The gateway, workers and sweeper write to one SQLite file from several processes. WAL lets
    # readers go on while one writes; BEGIN IMMEDIATE takes the write lock at the start of a
    # transaction, so a read-then-write transaction waits (busy timeout) instead of failing with
    # "database is locked" when it tries to upgrade its lock. The price: every transaction, reads
    # included, holds the write lock until it ends, so sessions must stay short (never held across
    # slow work or a streaming response).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" event emit BEGIN
        cursor = dbapi_connection.cursor()
        # WAL is a property of the file: set once (switching modes needs the database to itself).
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # A read-only session (make_read_session_factory) reads a WAL snapshot: a deferred BEGIN takes
        # no write lock, so concurrent requests' lookups (authentication on every request) neither wait
        # for each other nor for a writer.
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


READ_ONLY_OPTION = "belle_read_only"


class ReadOnlySession(Session):
    """A session for lookups only: flushing a change is an error (on SQLite its transaction holds no
    write lock, so a write there could fail with "database is locked" instead of waiting)."""

    def flush(self, objects=None) -> None:
        if self.new or self.dirty or self.deleted:
            raise RuntimeError("a read-only session cannot write; use the session factory for writes")
        super().flush(objects)


def make_read_session_factory(engine: Engine) -> sessionmaker[ReadOnlySession]:
    """Sessions that only read (lookups on the request path). On SQLite they do not queue for the write
    lock as every other transaction does; on PostgreSQL they are plain sessions."""
    return sessionmaker(engine.execution_options(**{READ_ONLY_OPTION: True}), class_=ReadOnlySession,
                        expire_on_commit=False)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: objects stay readable after the caller commits (routes build
    # responses from them).
    return sessionmaker(engine, expire_on_commit=False)


def make_get_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions of the gateway's GET requests. On SQLite they begin deferred, as read-only sessions do,
    so a request that only reads holds no write lock while FastAPI validates its response in the
    thread pool: with the lock held there, 40 requests waiting for it filled the pool, the holder
    never got a thread back, and all of them failed after the 30 s busy timeout ("database is
    locked"; bench/load.py, 60 clients and more). Unlike ReadOnlySession a write is not refused: its
    transaction upgrades, and can meet "database is locked" under a concurrent writer. On PostgreSQL
    they are the plain sessions of make_session_factory."""
    return sessionmaker(engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False)
