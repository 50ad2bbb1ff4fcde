"""The database toolkit: engine and sessions, write transactions, and the dialect differences.

Every module that writes outside the ORM's usual path goes through here, so that SQLite's
locking and Postgres' row locks are handled in one place.
"""

from typing import TYPE_CHECKING, Any

from app.db.dialect import (
    clock_sql,
    insert_ignore_statement,
    is_postgres,
    is_sqlite,
    lock_rows,
    name_of,
)
from app.db.engine import (
    build_engine,
    get_engine,
    get_session,
    session_scope,
)
from app.db.writes import begin_write, insert_ignore, write_connection, write_transaction

if TYPE_CHECKING:
    from app.db.deps import SessionDep, StreamSession


def __getattr__(name: str) -> Any:
    """``SessionDep`` and ``StreamSession`` on first use (they import FastAPI: see
    app.db.deps)."""
    if name in ("SessionDep", "StreamSession"):
        from app.db import deps

        return getattr(deps, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SessionDep",
    "StreamSession",
    "begin_write",
    "build_engine",
    "clock_sql",
    "get_engine",
    "get_session",
    "insert_ignore",
    "insert_ignore_statement",
    "is_postgres",
    "is_sqlite",
    "lock_rows",
    "name_of",
    "session_scope",
    "write_connection",
    "write_transaction",
]
