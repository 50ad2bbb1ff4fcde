"""drop rating_rounds.rating_count

Every rating bumped this one row, so on Postgres all raters of a round waited on its lock
until each other's commit. A round's ratings are now the sum of its raters'
``rating_rater_states.done`` (each rater writes only their own row).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 04:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35), not batch mode: batch mode would
    # copy and drop rating_rounds, and with foreign keys on, dropping it cascades to the
    # rounds' items, leases and states.
    op.drop_column("rating_rounds", "rating_count")


def downgrade() -> None:
    op.add_column(
        "rating_rounds",
        sa.Column("rating_count", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE rating_rounds SET rating_count = "
        "(SELECT count(*) FROM ratings WHERE ratings.round_id = rating_rounds.id)"
    )
    if op.get_bind().dialect.name == "postgresql":
        # As 0001 made it (SQLite cannot drop a default without copying the table).
        op.alter_column("rating_rounds", "rating_count", server_default=None)
