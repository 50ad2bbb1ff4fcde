"""responses -> replies: one word for a model's reply in the tables, the code and the pages

The table ``responses`` becomes ``replies`` and every ``response_id`` column ``reply_id``, with
their indexes and constraints renamed to what the naming convention gives.

Postgres renames in place. SQLite renames tables and columns in place too (ALTER TABLE ...
RENAME, which also rewrites the foreign keys that point at them); batch mode is not used,
because it copies tables and a copy of ``replies`` would cascade-delete every rating. SQLite
cannot rename a constraint, so the names inside the stored CREATE TABLE statements are
rewritten through ``writable_schema``: the procedure SQLite documents for changes that leave the
stored rows untouched (a name is not part of any row or index entry).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 05:40:00
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables whose response_id column becomes reply_id.
REFERRING = (
    "ratings",
    "rating_leases",
    "rating_items",
    "adjudications",
    "rating_tallies",
    "judge_labels",
)
# (table, old name, new name, columns), tables and columns as named after the upgrade.
INDEXES = (
    ("replies", "ix_responses_arm_id", "ix_replies_arm_id", "arm_id"),
    ("replies", "ix_responses_run_status", "ix_replies_run_status", "run_id, status"),
    ("replies", "ix_responses_variant", "ix_replies_variant", "prompt_variant_id"),
    ("ratings", "ix_ratings_round_response", "ix_ratings_round_reply", "round_id, reply_id"),
    (
        "rating_leases",
        "ix_rating_leases_response_expires",
        "ix_rating_leases_reply_expires",
        "reply_id, expires_at",
    ),
)
# (table, old name, new name), the table as named after the upgrade.
CONSTRAINTS = (
    ("replies", "uq_responses_slot", "uq_replies_slot"),
    ("replies", "pk_responses", "pk_replies"),
    ("replies", "ck_responses_status", "ck_replies_status"),
    ("replies", "ck_responses_verdict", "ck_replies_verdict"),
    ("replies", "fk_responses_arm_id_run_arms", "fk_replies_arm_id_run_arms"),
    (
        "replies",
        "fk_responses_prompt_variant_id_prompt_variants",
        "fk_replies_prompt_variant_id_prompt_variants",
    ),
    ("replies", "fk_responses_run_id_runs", "fk_replies_run_id_runs"),
    ("ratings", "uq_ratings_response_rater", "uq_ratings_reply_rater"),
    ("rating_leases", "uq_rating_leases_response_rater", "uq_rating_leases_reply_rater"),
    ("adjudications", "uq_adjudications_response_id", "uq_adjudications_reply_id"),
    ("judge_labels", "uq_judge_labels_resp_judge", "uq_judge_labels_reply_judge"),
    *((t, f"fk_{t}_response_id_responses", f"fk_{t}_reply_id_replies") for t in REFERRING),
)


def _old_table(table: str) -> str:
    return "responses" if table == "replies" else table


def _old_columns(columns: str) -> str:
    return columns.replace("reply_id", "response_id")


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.execute("ALTER TABLE responses RENAME TO replies")
    for table in REFERRING:
        op.execute(f"ALTER TABLE {table} RENAME COLUMN response_id TO reply_id")
    if _is_postgres():
        op.execute("ALTER SEQUENCE IF EXISTS responses_id_seq RENAME TO replies_id_seq")
        for table, old, new in CONSTRAINTS:
            op.execute(f'ALTER TABLE {table} RENAME CONSTRAINT "{old}" TO "{new}"')
        for _table, old, new, _columns in INDEXES:
            op.execute(f'ALTER INDEX "{old}" RENAME TO "{new}"')
        return
    for table, old, new, columns in INDEXES:
        op.execute(f'DROP INDEX "{old}"')
        op.execute(f'CREATE INDEX "{new}" ON {table} ({columns})')
    _rename_sqlite_constraints([(old, new) for _t, old, new in CONSTRAINTS])


def downgrade() -> None:
    if _is_postgres():
        for table, old, new in CONSTRAINTS:
            op.execute(f'ALTER TABLE {table} RENAME CONSTRAINT "{new}" TO "{old}"')
        for _table, old, new, _columns in INDEXES:
            op.execute(f'ALTER INDEX "{new}" RENAME TO "{old}"')
        op.execute("ALTER SEQUENCE IF EXISTS replies_id_seq RENAME TO responses_id_seq")
    else:
        for _table, _old, new, _columns in INDEXES:
            op.execute(f'DROP INDEX "{new}"')
    for table in REFERRING:
        op.execute(f"ALTER TABLE {table} RENAME COLUMN reply_id TO response_id")
    op.execute("ALTER TABLE replies RENAME TO responses")
    if not _is_postgres():
        for table, old, _new, columns in INDEXES:
            op.execute(f'CREATE INDEX "{old}" ON {_old_table(table)} ({_old_columns(columns)})')
        _rename_sqlite_constraints([(new, old) for _t, old, new in CONSTRAINTS])


def _rename_sqlite_constraints(names: list[tuple[str, str]]) -> None:
    bind = op.get_bind()
    rows = bind.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all()
    version = bind.execute(text("PRAGMA schema_version")).scalar_one()
    bind.execute(text("PRAGMA writable_schema = ON"))
    for name, sql in rows:
        new_sql = sql
        for old, new in names:
            new_sql = new_sql.replace(f"CONSTRAINT {old} ", f"CONSTRAINT {new} ")
            new_sql = new_sql.replace(f'CONSTRAINT "{old}" ', f'CONSTRAINT "{new}" ')
        if new_sql != sql:
            bind.execute(
                text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :n"),
                {"sql": new_sql, "n": name},
            )
    bind.execute(text(f"PRAGMA schema_version = {int(version) + 1}"))
    bind.execute(text("PRAGMA writable_schema = OFF"))
    problems = bind.execute(text("PRAGMA integrity_check")).scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"SQLite integrity check after the rename: {problems}")
