"""The database toolkit: engine and sessions, write transactions, and the dialect differences.

Every module that writes outside the ORM's usual path goes through here, so that SQLite's
locking and Postgres' row locks are handled in one place.
"""

from app.db.dialect import (
    clock_sql,
    insert_ignore_statement,
    is_postgres,
    is_sqlite,
    lock_rows,
    name_of,
)
from app.db.engine import (
    SessionDep,
    StreamSession,
    build_engine,
    get_engine,
    get_session,
    session_scope,
)
from app.db.writes import begin_write, insert_ignore, write_connection, write_transaction

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
