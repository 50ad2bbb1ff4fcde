"""The worker's side of a run: the run is marked completed when its last slot is filled.

A process that follows a run (``sdilab run start --wait``) may ``watch`` it: the event is set
when a worker of this process completes the run, so it learns the end at once, not at its next
poll.
"""

import threading

from sqlalchemy import Engine, select, update

from app.db import write_connection
from app.models import RunStatus, utcnow
from app.runs.service import PENDING, REPLIES, RUNS

_watched: dict[int, threading.Event] = {}


def watch(run_id: int) -> threading.Event:
    """An event set when this process marks the run completed (see the module docstring)."""
    return _watched.setdefault(run_id, threading.Event())


def unwatch(run_id: int) -> None:
    _watched.pop(run_id, None)


def complete_if_finished(engine: Engine, run_id: int) -> bool:
    """Mark a running run completed once none of its replies is pending.

    Called by each job after its own commit: the last job to commit sees no pending reply,
    so no run is left running, on SQLite and on Postgres alike.
    """
    with engine.connect() as conn:
        pending = conn.execute(
            select(REPLIES.c.id)
            .where(REPLIES.c.run_id == run_id, REPLIES.c.status == PENDING)
            .limit(1)
        ).first()
        if pending is not None:
            return False
    with write_connection(engine) as conn, conn.begin():
        result = conn.execute(
            update(RUNS)
            .where(
                RUNS.c.id == run_id,
                RUNS.c.status == RunStatus.running.value,
                ~select(REPLIES.c.id)
                .where(REPLIES.c.run_id == run_id, REPLIES.c.status == PENDING)
                .exists(),
            )
            .values(status=RunStatus.completed.value, finished_at=utcnow())
        )
        completed = bool(result.rowcount)
    if completed and run_id in _watched:
        _watched[run_id].set()
    return completed
