"""Pairwise rating: rating_rounds.kind, pairwise_round_runs, pairwise_items,
pairwise_leases, pairwise_choices

A round of kind "pairwise" shows a rater two replies to the same prompt from two arms of one
run, side by side, and records which is more factual and which more helpful (or a tie), with
the left/right order the rater saw. Existing rounds are of kind "single".

Revision ID: 0012_pairwise_rounds
Revises: 0010_judge_usage_batches
Create Date: 2026-12-07 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012_pairwise_rounds"
down_revision: str | None = "0010_judge_usage_batches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString
_time = sqlmodel.sql.sqltypes.UTCDateTime


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    # ADD COLUMN and CREATE TABLE, not batch mode (see 0005: batch mode copies tables).
    op.add_column(
        "rating_rounds",
        sa.Column("kind", _str(length=16), nullable=False, server_default="single"),
    )
    op.create_table(
        "pairwise_round_runs",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        _fk("pairwise_round_runs", "round_id", "rating_rounds", "CASCADE"),
        _fk("pairwise_round_runs", "run_id", "runs", "CASCADE"),
        sa.PrimaryKeyConstraint("round_id", name=op.f("pk_pairwise_round_runs")),
    )
    op.create_index(
        op.f("ix_pairwise_round_runs_run_id"), "pairwise_round_runs", ["run_id"], unique=False
    )
    op.create_table(
        "pairwise_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("reply_a_id", sa.Integer(), nullable=False),
        sa.Column("reply_b_id", sa.Integer(), nullable=False),
        sa.Column("shuffle", sa.BigInteger(), nullable=False),
        sa.Column("taken", sa.Integer(), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("token", _str(length=32), nullable=False),
        sa.CheckConstraint("taken >= 0", name=op.f("ck_pairwise_items_taken")),
        _fk("pairwise_items", "round_id", "rating_rounds", "CASCADE"),
        _fk("pairwise_items", "reply_a_id", "replies", "CASCADE"),
        _fk("pairwise_items", "reply_b_id", "replies", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pairwise_items")),
        sa.UniqueConstraint(
            "round_id", "reply_a_id", "reply_b_id", name=op.f("uq_pairwise_items_pair")
        ),
    )
    op.create_index("ix_pairwise_items_queue", "pairwise_items", ["round_id", "is_open", "shuffle"])
    op.create_index("ix_pairwise_items_token", "pairwise_items", ["token"], unique=True)
    op.create_table(
        "pairwise_leases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        _fk("pairwise_leases", "item_id", "pairwise_items", "CASCADE"),
        _fk("pairwise_leases", "rater_id", "users", "CASCADE"),
        _fk("pairwise_leases", "round_id", "rating_rounds", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pairwise_leases")),
        sa.UniqueConstraint("item_id", "rater_id", name=op.f("uq_pairwise_leases_item_rater")),
    )
    op.create_index("ix_pairwise_leases_round_rater", "pairwise_leases", ["round_id", "rater_id"])
    op.create_index(
        "ix_pairwise_leases_round_expiry",
        "pairwise_leases",
        ["round_id", "skipped", "expires_at"],
    )
    op.create_table(
        "pairwise_choices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("a_on_left", sa.Boolean(), nullable=False),
        sa.Column("factual", _str(length=8), nullable=False),
        sa.Column("helpful", _str(length=8), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.CheckConstraint(
            "factual IN ('left', 'right', 'tie')", name=op.f("ck_pairwise_choices_factual")
        ),
        sa.CheckConstraint(
            "helpful IN ('left', 'right', 'tie')", name=op.f("ck_pairwise_choices_helpful")
        ),
        _fk("pairwise_choices", "item_id", "pairwise_items", "CASCADE"),
        _fk("pairwise_choices", "rater_id", "users", "RESTRICT"),
        _fk("pairwise_choices", "round_id", "rating_rounds", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pairwise_choices")),
        sa.UniqueConstraint("item_id", "rater_id", name=op.f("uq_pairwise_choices_item_rater")),
    )
    op.create_index(
        "ix_pairwise_choices_round_rater",
        "pairwise_choices",
        ["round_id", "rater_id", "created_at"],
    )


def downgrade() -> None:
    for table in ("pairwise_choices", "pairwise_leases", "pairwise_items", "pairwise_round_runs"):
        op.drop_table(table)
    # DROP COLUMN (SQLite >= 3.35) rather than batch mode, as in 0006.
    op.drop_column("rating_rounds", "kind")
