"""Engine and session construction, shared by the site, the worker and Alembic.

SQLite is the embedded default, so it gets the settings that make it behave under a threaded web
server and a worker in another process: WAL, foreign keys, a busy timeout, and transactions that
begin when SQLAlchemy says so. A caller that must serialise writers (the daily-limit check) asks for
``BEGIN IMMEDIATE`` through :func:`write_lock`; PostgreSQL uses row locks for the same purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_S = 30
SQLITE_BEGIN_OPTION = "katakana_sqlite_begin"  # execution option: "IMMEDIATE" takes the write lock


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite would otherwise defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    # Every session keeps the leaderboard's per-trainee summaries in step with the submissions it
    # writes; importing the module registers that flush listener (once, on the Session class).
    import app.services.trainee_scores  # noqa: F401

    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session], *, write_lock: bool = False) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any exception.

    ``write_lock`` makes the transaction hold SQLite's write lock from its first statement
    (``BEGIN IMMEDIATE``). A deferred SQLite transaction that reads and then writes fails at once
    with "database is locked" if another connection wrote in between (its snapshot is stale, so
    waiting cannot help), and two of them can both read "2 uploads today" before either writes; with
    the lock taken first, the second waits (busy timeout) until the first commits. On PostgreSQL
    this is an ordinary transaction: callers lock the rows they decide on with ``SELECT … FOR UPDATE``.
    """
    with factory() as session:
        if write_lock and session.get_bind().dialect.name == "sqlite":
            session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def write_lock(factory: sessionmaker[Session]) -> AbstractContextManager[Session]:
    """A transaction that holds SQLite's write lock from its first statement (see ``transaction``)."""
    return transaction(factory, write_lock=True)
