"""The one place that knows how SQLite and Postgres differ.

Everything else asks here: which database a connection talks to, how to insert while
ignoring duplicates, whether row locks exist.
"""

from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

Bind = Session | Connection | Engine


def name_of(bind: Bind) -> str:
    """``postgresql`` or ``sqlite``."""
    if isinstance(bind, Session):
        return bind.get_bind().dialect.name
    return bind.dialect.name


def is_postgres(bind: Bind) -> bool:
    return name_of(bind) == "postgresql"


def is_sqlite(bind: Bind) -> bool:
    return name_of(bind) == "sqlite"


def insert(table: Any, dialect: str) -> PgInsert | SqliteInsert:
    """The dialect's INSERT, which knows ``on_conflict_do_nothing``."""
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)


def insert_ignore_statement(
    table: Table | Any, dialect: str, *, index_elements: list[str] | None = None
) -> PgInsert | SqliteInsert:
    """INSERT ... ON CONFLICT DO NOTHING for ``dialect``, to build once and run many times."""
    return insert(table, dialect).on_conflict_do_nothing(index_elements=index_elements)


# The database clock in Unix seconds, as SQL: one clock for every process and host. Postgres's
# clock_timestamp() is the time of the statement, not of the transaction's start.
_CLOCK_SQL = {
    "postgresql": "extract(epoch from clock_timestamp())::float8",
    "sqlite": "(julianday('now') - 2440587.5) * 86400.0",
}


def clock_sql(bind: Bind) -> str:
    """An SQL expression for the database's clock in Unix seconds (statement time)."""
    return _CLOCK_SQL[name_of(bind)]


def lock_rows(query: Select[Any], bind: Bind, **for_update: Any) -> Select[Any]:
    """``SELECT ... FOR UPDATE`` where rows can be locked (Postgres); SQLite's write lock is
    the whole database, taken by BEGIN IMMEDIATE (``write_transaction``)."""
    return query.with_for_update(**for_update) if is_postgres(bind) else query
