"""Write transactions that wait for SQLite's lock instead of failing, and inserts that ignore
rows already there."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, literal_column
from sqlalchemy.engine import Connection
from sqlmodel import Session

from app.db.dialect import insert_ignore_statement, is_sqlite, name_of
from app.db.engine import get_engine, session_scope


def write_connection(engine: Engine | None = None) -> Connection:
    """A connection whose transactions take SQLite's write lock up front (BEGIN IMMEDIATE).

    On SQLite a deferred transaction that reads then writes can fail with "database is
    locked" without waiting; taking the lock first makes it wait on busy_timeout instead.
    On Postgres this is an ordinary connection.
    """
    conn = (engine or get_engine()).connect()
    if is_sqlite(conn):
        conn.execution_options(sqlite_immediate=True)
    return conn


@contextmanager
def write_transaction(engine: Engine | None = None) -> Iterator[Session]:
    """A short write transaction (a session on a ``write_connection``): commit or roll back."""
    with write_connection(engine) as conn, session_scope(conn) as session:
        yield session


def begin_write(session: Session) -> None:
    """On SQLite, end the session's current (read) transaction and start the next with BEGIN
    IMMEDIATE, so its writes wait for the lock (see ``write_connection``). Commits what the
    session holds. No-op on Postgres."""
    if not is_sqlite(session):
        return
    session.commit()
    session.connection(execution_options={"sqlite_immediate": True})


def insert_ignore(
    bind: Session | Connection,
    table: Any,
    rows: Sequence[dict[str, Any]] | dict[str, Any],
    *,
    index_elements: list[str] | None = None,
) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING. With one row (a dict), True when it was inserted;
    with a list, True when any was given (executemany returns no reliable count)."""
    stmt = insert_ignore_statement(table, name_of(bind), index_elements=index_elements)
    if isinstance(rows, dict):
        # rowcount is not reliable for INSERT on every driver; RETURNING is.
        result = bind.execute(stmt.values(**rows).returning(literal_column("1")))
        return result.first() is not None
    if not rows:
        return False
    bind.execute(stmt, list(rows))
    return True
