"""judge_labels: tokens and cost of the call behind each label; judge_batches: Batch API state

Each judge label records the tokens of the call that made it and their cost at the judge's
prices (0 when it came from the LLM cache), and whether it came through the Batch API. A
judge's labelling of a run through the OpenAI Batch API keeps the remote batch's id in
``judge_batches``, so that polling resumes after a restart.

Revision ID: 0010_judge_usage_batches
Revises: 0009_api_tokens
Create Date: 2026-12-07 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010_judge_usage_batches"
down_revision: str | None = "0009_api_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN and CREATE TABLE, not batch mode (see 0002: batch mode copies tables).
    for name in ("tokens_in", "tokens_out"):
        op.add_column(
            "judge_labels", sa.Column(name, sa.Integer(), nullable=False, server_default="0")
        )
    op.add_column(
        "judge_labels", sa.Column("cost_usd", sa.Float(), nullable=False, server_default="0")
    )
    for name in ("from_cache", "via_batch"):
        op.add_column(
            "judge_labels",
            sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false()),
        )
    op.create_table(
        "judge_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("judge_model_id", sa.Integer(), nullable=False),
        sa.Column("rubric_version", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("batch_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("input_file_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("reply_ids", sa.JSON(), nullable=False),
        sa.Column("cached", sa.Integer(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("fallback", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_judge_batches_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["judge_model_id"],
            ["model_configs.id"],
            name=op.f("fk_judge_batches_judge_model_id_model_configs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_judge_batches")),
        sa.UniqueConstraint(
            "run_id", "judge_model_id", "rubric_version", name="uq_judge_batches_run_judge"
        ),
    )


def downgrade() -> None:
    op.drop_table("judge_batches")
    for name in ("via_batch", "from_cache", "cost_usd", "tokens_out", "tokens_in"):
        op.drop_column("judge_labels", name)
