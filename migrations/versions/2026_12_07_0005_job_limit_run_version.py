"""jobs.concurrency_limit, runs.replies_version: upstream modules no longer call downstream ones

The queue used to ask each task's registered ``limit(args)`` for a job's limit, so the queue
imported the task registry and the registry the queue. Producers now store the limit with
the job. Jobs queued before this migration get theirs from the ``max_concurrency`` their
args carried (model calls and judge calls) or 1 (training).

``runs.replies_version`` moves when a run's stored replies change in place (``sdilab run
reparse``); results depend on it, so reparsing no longer reaches into the results' caches.

The LLM judge moved from the metrics package to judging: its task ``metrics.judge`` is now
``judging.judge``. A reply slot's job lock key is ``reply:<id>`` (was ``response:<id>``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN, not batch mode (see 0002: batch mode copies tables).
    op.add_column("jobs", sa.Column("concurrency_limit", sa.Integer(), nullable=True))
    op.add_column(
        "runs", sa.Column("replies_version", sa.Integer(), nullable=False, server_default="0")
    )
    if op.get_bind().dialect.name == "postgresql":
        from_args = "(args->>'max_concurrency')::integer"
    else:
        from_args = "CAST(json_extract(args, '$.max_concurrency') AS INTEGER)"
    op.execute("UPDATE jobs SET task = 'judging.judge' WHERE task = 'metrics.judge'")
    op.execute(
        f"UPDATE jobs SET concurrency_limit = {from_args} "
        "WHERE task IN ('runs.generate', 'judging.judge') AND concurrency_key <> ''"
    )
    op.execute("UPDATE jobs SET concurrency_limit = 1 WHERE task = 'training.train'")
    op.execute(
        "UPDATE jobs SET lock_key = 'reply:' || substr(lock_key, 10) "
        "WHERE lock_key LIKE 'response:%'"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE jobs SET lock_key = 'response:' || substr(lock_key, 7) WHERE lock_key LIKE 'reply:%'"
    )
    op.execute("UPDATE jobs SET task = 'metrics.judge' WHERE task = 'judging.judge'")
    op.drop_column("runs", "replies_version")
    op.drop_column("jobs", "concurrency_limit")
