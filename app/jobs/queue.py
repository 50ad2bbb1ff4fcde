"""The job table as a queue, from the producers' side: enqueue (inside the caller's
transaction: services flush, the job is visible to workers when the caller commits), cancel,
resume and retry a group of jobs, and read their counts and errors.

The workers' side (claim, finish, hand-off, retry later, recover) is in ``claims``.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlmodel import Session

from app.models import Job, JobStatus, utcnow

JOBS = Job.__table__  # type: ignore[attr-defined]
TODO, DOING = JobStatus.todo.value, JobStatus.doing.value
SUCCEEDED, FAILED, CANCELLED = (
    JobStatus.succeeded.value,
    JobStatus.failed.value,
    JobStatus.cancelled.value,
)
MAX_ERROR_CHARS = 2000


def _limit_of(concurrency_key: str, limit: int | None) -> int | None:
    """A job's limit as stored: at least 1, and only for a job with a concurrency key."""
    if not concurrency_key or limit is None:
        return None
    return max(1, int(limit))


def enqueue(
    session: Session,
    task: str,
    args: dict[str, Any],
    *,
    queue: str = "default",
    concurrency_key: str = "",
    concurrency_limit: int | None = None,
    lock_key: str | None = None,
    group_key: str = "",
    max_attempts: int = 6,
    run_at: datetime | None = None,
) -> Job:
    """Add a job; it is sent when the caller commits. A second job with the same ``lock_key``
    violates a unique constraint (the same work is never queued twice)."""
    job = Job(
        queue=queue,
        task=task,
        args=args,
        concurrency_key=concurrency_key,
        concurrency_limit=_limit_of(concurrency_key, concurrency_limit),
        lock_key=lock_key,
        group_key=group_key,
        max_attempts=max_attempts,
        scheduled_at=run_at or utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def enqueue_many(session: Session | Connection, jobs: Sequence[dict[str, Any]]) -> int:
    """Bulk enqueue: each item holds ``task`` and ``args`` and optionally the keyword
    arguments of :func:`enqueue`. One multi-row insert; no Job objects are built."""
    if not jobs:
        return 0
    now = utcnow()
    rows = [
        {
            "queue": j.get("queue", "default"),
            "task": j["task"],
            "args": j["args"],
            "status": TODO,
            "concurrency_key": j.get("concurrency_key", ""),
            "concurrency_limit": _limit_of(
                j.get("concurrency_key", ""), j.get("concurrency_limit")
            ),
            "lock_key": j.get("lock_key"),
            "group_key": j.get("group_key", ""),
            "attempts": 0,
            "max_attempts": j.get("max_attempts", 6),
            "scheduled_at": j.get("run_at") or now,
            "worker_id": "",
            "last_error": "",
            "created_at": now,
        }
        for j in jobs
    ]
    session.execute(insert(JOBS), rows)
    return len(rows)


def _set_status(session: Session, group_key: str, from_status: Iterable[str], **values: Any) -> int:
    result = session.execute(
        update(JOBS)
        .where(JOBS.c.group_key == group_key, JOBS.c.status.in_(list(from_status)))
        .values(**values)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def cancel_group(session: Session, group_key: str) -> int:
    """Cancel the group's unfinished jobs (a running one finishes, but is not recorded)."""
    return _set_status(
        session, group_key, (TODO, DOING), status=CANCELLED, finished_at=utcnow(), worker_id=""
    )


def retry_failed(session: Session, group_key: str) -> int:
    """Send the group's failed jobs back to the queue with a fresh attempt budget."""
    return _set_status(
        session,
        group_key,
        (FAILED,),
        status=TODO,
        attempts=0,
        scheduled_at=utcnow(),
        finished_at=None,
        worker_id="",
    )


def resume_group(session: Session, group_key: str) -> int:
    """Send the group's cancelled jobs back to the queue."""
    return _set_status(
        session,
        group_key,
        (CANCELLED,),
        status=TODO,
        attempts=0,
        scheduled_at=utcnow(),
        finished_at=None,
        worker_id="",
    )


def group_counts(session: Session, group_key: str) -> dict[str, int]:
    rows = session.execute(
        select(JOBS.c.status, func.count())
        .where(JOBS.c.group_key == group_key)
        .group_by(JOBS.c.status)
    ).all()
    return {status: int(n) for status, n in rows}


def group_errors(session: Session, group_key: str, limit: int = 50) -> list[tuple[int, str]]:
    """(job id, last error) of the group's jobs that have an error, newest first."""
    rows = session.execute(
        select(JOBS.c.id, JOBS.c.last_error)
        .where(JOBS.c.group_key == group_key, JOBS.c.last_error != "")
        .order_by(JOBS.c.id.desc())
        .limit(limit)
    ).all()
    return [(int(i), str(e)) for i, e in rows]


def has_work(engine: Engine, queue: str) -> bool:
    """True while the queue holds jobs to do or being done (by any worker)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(JOBS.c.id)
            .where(JOBS.c.queue == queue, JOBS.c.status.in_([TODO, DOING]))
            .limit(1)
        ).first()
    return row is not None
