"""rating_tallies.changed_at: when each reply's tally was last written

Results keep a run's per-reply codes between computations and re-read only the replies whose
tally changed since (by the database clock); before this, every rating made the next results
view read all of the run's replies again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN with a constant default, not batch mode (see 0002: batch mode copies tables).
    op.add_column(
        "rating_tallies",
        sa.Column("changed_at", sa.Float(), nullable=False, server_default="0"),
    )
    op.create_index(
        "ix_rating_tallies_run_changed", "rating_tallies", ["run_id", "changed_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_rating_tallies_run_changed", table_name="rating_tallies")
    op.drop_column("rating_tallies", "changed_at")
