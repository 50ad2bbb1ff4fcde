"""Judges and sampled rating rounds: judge_labels.confidence, rating_rounds.sample_size,
rating_items.inclusion_probability

A rating round can be a random sample of its runs' done replies; each queued reply keeps the
probability it had of being drawn, which prediction-powered estimates weight by. An LLM
judge's stated confidence is kept with its label. Existing rows get NULL: rounds over every
reply, labels without a confidence.

Revision ID: 0006_judge_sampling
Revises: 0005
Create Date: 2026-12-07 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_judge_sampling"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN, not batch mode (see 0002: batch mode copies tables).
    op.add_column("judge_labels", sa.Column("confidence", sa.Float(), nullable=True))
    op.add_column("rating_rounds", sa.Column("sample_size", sa.Integer(), nullable=True))
    op.add_column("rating_items", sa.Column("inclusion_probability", sa.Float(), nullable=True))


def downgrade() -> None:
    # DROP COLUMN (SQLite >= 3.35) rather than batch mode, for the same reason.
    op.drop_column("rating_items", "inclusion_probability")
    op.drop_column("rating_rounds", "sample_size")
    op.drop_column("judge_labels", "confidence")
