"""The workers' side of the job queue: claim, finish, hand a slot on, retry later, recover.
Generic: tasks by name. (Producers enqueue with ``queue``.)

Workers claim in one short write transaction (``FOR UPDATE SKIP
LOCKED`` on Postgres, ``BEGIN IMMEDIATE`` on SQLite), run the handler outside it, and record
the outcome in another; every outcome update is guarded by ``status = 'doing' AND worker_id``
so a job recovered by another worker is never finished twice.

Concurrency limits are global: a concurrency key (e.g. ``model:7``) with a limit (the job's
``concurrency_limit``, fixed by the producer when it queues the job) never has more than that
many jobs ``doing``, over every worker process on every host. The database is the only shared
state, and the count of ``doing`` jobs per key *is* the set of leases, so nothing can drift:

- a claim counts the key's ``doing`` jobs and takes at most ``limit - doing`` more, in its
  write transaction. On Postgres, where claims run concurrently, it first takes a per-key
  transaction lock (``pg_advisory_xact_lock(hashtext(key))``, keys in sorted order), so the
  count it reads is taken after the previous claimer of that key committed (READ COMMITTED
  takes a fresh snapshot per statement). On SQLite ``BEGIN IMMEDIATE`` serialises claims.
- a finishing job may hand its slot to the next due job of its key in the transaction that
  marks it succeeded (:func:`finish_many` with a :class:`HandOff`): the count stays the
  same, so no lock is needed, and a busy worker keeps its slots filled with no claim at all.
- only a claim raises the count; finishing, retrying, releasing or cancelling a job lowers it
  and needs no lock (a claimer that reads a stale, higher count only takes fewer jobs).
- a dead worker's jobs hold their slots until ``stale_jobs`` returns them to the queue (no
  heartbeat for ``stale_after_s``).

A slot is held from the claim until the outcome is recorded, so the calls in flight for a key
are at most its limit. Claimed jobs of limited keys are started at once (the worker asks for
no more than it has free slots for), so a worker never sits on slots another could use.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, update
from sqlmodel import Session

from app.db import is_postgres, lock_rows, write_connection
from app.jobs.queue import DOING, FAILED, JOBS, MAX_ERROR_CHARS, SUCCEEDED, TODO
from app.models import utcnow


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    task: str
    args: dict[str, Any]
    attempts: int  # including this one
    max_attempts: int
    concurrency_key: str
    concurrency_limit: int | None = None


def _lock_keys(conn: Connection, keys: Sequence[str]) -> None:
    """Serialise claims per concurrency key until the transaction ends (Postgres). Sorted, so
    two claimers never wait for each other in a cycle; a hash collision only shares a lock."""
    for key in sorted(keys):
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"sdilab.jobs:{key}"))))


def claim(
    engine: Engine,
    *,
    queue: str,
    worker_id: str,
    limit: int,
    exclude_keys: Sequence[str] = (),
    limited_room: int | None = None,
    saturated: set[str] | None = None,
    check_first: bool = True,
) -> list[ClaimedJob]:
    """Take up to ``limit`` due jobs of ``queue`` for ``worker_id``, oldest first, skipping
    jobs whose concurrency key is in ``exclude_keys``.

    A job whose key has a limit is taken only while fewer than that many jobs of the key are
    doing, counted over every worker (see the module docstring), and at most
    ``limited_room`` such jobs (the slots the caller can start now). Keys found full are
    added to ``saturated``. ``check_first`` reads before taking the write lock (idle polls,
    or a worker whose keys are full: due jobs of excluded keys do not count)."""
    if limit <= 0:
        return []
    now = utcnow()
    is_due = [JOBS.c.queue == queue, JOBS.c.status == TODO, JOBS.c.scheduled_at <= now]
    if exclude_keys:
        is_due.append(JOBS.c.concurrency_key.not_in(list(exclude_keys)))
    if check_first:  # an idle worker's polls take no write lock (SQLite has only one)
        with engine.connect() as conn:
            if conn.execute(select(JOBS.c.id).where(*is_due).limit(1)).first() is None:
                return []
    room = limit if limited_room is None else limited_room
    with write_connection(engine) as conn, conn.begin():
        postgres = is_postgres(conn)
        due = (
            select(
                JOBS.c.id,
                JOBS.c.task,
                JOBS.c.args,
                JOBS.c.attempts,
                JOBS.c.max_attempts,
                JOBS.c.concurrency_key,
                JOBS.c.concurrency_limit,
            )
            .where(*is_due)
            .order_by(JOBS.c.scheduled_at, JOBS.c.id)
            .limit(limit)
        )
        if postgres:
            due = due.with_for_update(skip_locked=True)
        candidates = conn.execute(due).all()
        keys = {c.concurrency_key for c in candidates if c.concurrency_limit is not None}
        doing: dict[str, int] = {}
        if keys:
            if postgres:
                _lock_keys(conn, list(keys))
            doing = {
                key: int(n)
                for key, n in conn.execute(
                    select(JOBS.c.concurrency_key, func.count())
                    .where(JOBS.c.status == DOING, JOBS.c.concurrency_key.in_(keys))
                    .group_by(JOBS.c.concurrency_key)
                )
            }
        jobs: list[ClaimedJob] = []
        for job_id, task, args, attempts, max_attempts, key, lim in candidates:
            if lim is not None:
                if doing.get(key, 0) >= lim:
                    if saturated is not None:
                        saturated.add(key)
                    continue
                if room <= 0:
                    continue
                doing[key] = doing.get(key, 0) + 1
                room -= 1
            jobs.append(ClaimedJob(job_id, task, args, attempts + 1, max_attempts, key, lim))
        if jobs:
            # The rows are ours (locked on Postgres, the write lock on SQLite): the attempts
            # read above are current.
            conn.execute(
                update(JOBS)
                .where(JOBS.c.id.in_([j.id for j in jobs]))
                .values(
                    status=DOING,
                    worker_id=worker_id,
                    heartbeat_at=now,
                    started_at=now,
                    attempts=JOBS.c.attempts + 1,
                )
            )
    jobs.sort(key=lambda j: j.id)
    return jobs


def _owned(job_id: int, worker_id: str) -> Any:
    return (JOBS.c.id == job_id) & (JOBS.c.worker_id == worker_id) & (JOBS.c.status == DOING)


@dataclass(frozen=True)
class Finished:
    """A job to mark succeeded. With ``hand_off``, its concurrency slot goes straight to the
    next due job of its key and queue (when there is one), in the same transaction."""

    job_id: int
    worker_id: str
    result: dict[str, Any] | None = None
    hand_off: "HandOff | None" = None


@dataclass(frozen=True)
class HandOff:
    queue: str
    concurrency_key: str
    limit: int


_NOW = bindparam("now", type_=JOBS.c.finished_at.type)
# Statements of the finish path built once (a worker runs them for every batch of replies;
# building them costs more CPU than the database spends on them).
_FINISH_OWNED = (
    update(JOBS)
    .where(
        JOBS.c.id.in_(bindparam("ids", expanding=True)),
        JOBS.c.worker_id == bindparam("worker"),
        JOBS.c.status == DOING,
    )
    .values(status=SUCCEEDED, finished_at=_NOW, last_error="", result=None)
    .returning(JOBS.c.id)
)
_HAND_OFF_DUE = (
    select(
        JOBS.c.id,
        JOBS.c.task,
        JOBS.c.args,
        JOBS.c.attempts,
        JOBS.c.max_attempts,
        JOBS.c.concurrency_limit,
    )
    .where(
        JOBS.c.queue == bindparam("queue"),
        JOBS.c.status == TODO,
        JOBS.c.scheduled_at <= _NOW,
        JOBS.c.concurrency_key == bindparam("key"),
    )
    .order_by(JOBS.c.scheduled_at, JOBS.c.id)
    .limit(bindparam("n", type_=JOBS.c.attempts.type))
)
_HAND_OFF_DUE_LOCKED = _HAND_OFF_DUE.with_for_update(skip_locked=True)
_START = (
    update(JOBS)
    .where(JOBS.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=DOING,
        worker_id=bindparam("worker"),
        heartbeat_at=_NOW,
        started_at=_NOW,
        attempts=JOBS.c.attempts + 1,
    )
)


_SET_RESULT = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("_id"))
    .values(result=bindparam("_result", type_=JOBS.c.result.type))
)


def _mark_owned(conn: Session | Connection, done: Sequence[Finished]) -> set[int]:
    """Finish the jobs still owned (one statement per worker), then store the results of
    those that have one (one executemany): two statements, not one per job."""
    now = utcnow()
    owned: set[int] = set()
    by_worker: dict[str, list[int]] = {}
    for f in done:
        by_worker.setdefault(f.worker_id, []).append(f.job_id)
    for worker_id, ids in by_worker.items():
        rows = conn.execute(_FINISH_OWNED, {"ids": ids, "worker": worker_id, "now": now})
        owned.update(rows.scalars())
    results = [
        {"_id": f.job_id, "_result": f.result}
        for f in done
        if f.result is not None and f.job_id in owned
    ]
    if results:
        conn.execute(_SET_RESULT, results)
    return owned


def hand_off(conn: Session | Connection, worker_id: str, to: HandOff, n: int) -> list[ClaimedJob]:
    """Claim up to ``n`` due jobs of ``to``'s key for ``worker_id``, in place of ``n`` jobs of
    the key that this transaction finished: the key's count of doing jobs does not grow, so
    no lock or count is needed. Jobs whose own limit is lower wait for an ordinary claim."""
    now = utcnow()
    due = _HAND_OFF_DUE_LOCKED if is_postgres(conn) else _HAND_OFF_DUE
    params = {"queue": to.queue, "now": now, "key": to.concurrency_key, "n": n}
    jobs = [
        ClaimedJob(job_id, task, args, attempts + 1, max_attempts, to.concurrency_key, lim)
        for job_id, task, args, attempts, max_attempts, lim in conn.execute(due, params)
        if (lim or 0) >= to.limit
    ]
    if jobs:
        conn.execute(_START, {"ids": [j.id for j in jobs], "worker": worker_id, "now": now})
    return jobs


def finish_many(
    conn: Session | Connection, done: Sequence[Finished]
) -> list[list[ClaimedJob] | None]:
    """Mark jobs succeeded in the caller's transaction. For each: None if its worker no
    longer owns it, else the jobs handed its slot (see :class:`Finished`)."""
    if not done:
        return []
    owned = _mark_owned(conn, done)
    out: list[list[ClaimedJob] | None] = [[] if f.job_id in owned else None for f in done]
    groups: dict[tuple[str, HandOff], list[int]] = {}
    for index, f in enumerate(done):
        if f.hand_off is not None and f.job_id in owned:
            groups.setdefault((f.worker_id, f.hand_off), []).append(index)
    for (worker_id, to), indexes in groups.items():
        taken = hand_off(conn, worker_id, to, len(indexes))
        for index, job in zip(indexes, taken, strict=False):
            out[index] = [job]
    return out


def complete(
    engine: Engine, job_id: int, worker_id: str, result: dict[str, Any] | None = None
) -> bool:
    return finish(engine, Finished(job_id, worker_id, result)) is not None


def finish(engine: Engine, job: Finished) -> list[ClaimedJob] | None:
    """Finish one job in its own transaction: None if its worker no longer owns it, else the
    jobs handed its slot."""
    with write_connection(engine) as conn, conn.begin():
        return finish_many(conn, [job])[0]


def backoff_delay(attempt: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**(attempt-1)))."""
    return rng.uniform(0.0, min(cap_s, base_s * (2 ** max(0, attempt - 1))))


def reschedule(
    session: Session | Connection,
    job_id: int,
    worker_id: str,
    error: str,
    delay_s: float,
    *,
    count_attempt: bool = True,
) -> bool:
    values: dict[str, Any] = {
        "status": TODO,
        "worker_id": "",
        "scheduled_at": utcnow() + timedelta(seconds=max(0.0, delay_s)),
        "last_error": error[:MAX_ERROR_CHARS],
    }
    if not count_attempt:
        values["attempts"] = JOBS.c.attempts - 1
    res = session.execute(update(JOBS).where(_owned(job_id, worker_id)).values(**values))
    return bool(res.rowcount)  # type: ignore[attr-defined]


def mark_failed(session: Session | Connection, job_id: int, worker_id: str, error: str) -> bool:
    res = session.execute(
        update(JOBS)
        .where(_owned(job_id, worker_id))
        .values(status=FAILED, finished_at=utcnow(), last_error=error[:MAX_ERROR_CHARS])
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def release(engine: Engine, job_ids: Sequence[int], worker_id: str, *, started: bool) -> int:
    """Give jobs back to the queue at shutdown. Jobs never started do not lose an attempt."""
    if not job_ids:
        return 0
    values: dict[str, Any] = {"status": TODO, "worker_id": "", "scheduled_at": utcnow()}
    if not started:
        values["attempts"] = JOBS.c.attempts - 1
    with write_connection(engine) as conn, conn.begin():
        res = conn.execute(
            update(JOBS)
            .where(
                JOBS.c.id.in_(list(job_ids)),
                JOBS.c.worker_id == worker_id,
                JOBS.c.status == DOING,
            )
            .values(**values)
        )
        return int(res.rowcount)


def heartbeat(engine: Engine, worker_id: str, job_ids: Sequence[int] | None = None) -> int:
    """Refresh the heartbeat of this worker's running jobs (or only ``job_ids``)."""
    with write_connection(engine) as conn, conn.begin():
        stmt = update(JOBS).where(JOBS.c.worker_id == worker_id, JOBS.c.status == DOING)
        if job_ids is not None:
            stmt = stmt.where(JOBS.c.id.in_(list(job_ids)))
        res = conn.execute(stmt.values(heartbeat_at=utcnow()))
        return int(res.rowcount)


@dataclass(frozen=True)
class StaleJob:
    id: int
    task: str
    args: dict[str, Any]
    attempts: int
    failed: bool  # out of attempts: failed rather than requeued


def stale_jobs(session: Session, stale_after_s: float) -> list[StaleJob]:
    """Return jobs of workers that stopped heart-beating to the queue (their attempt counts);
    jobs out of attempts fail. Runs in the caller's write transaction, so a failure hook can
    record the failure with it."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    query = (
        select(
            JOBS.c.id,
            JOBS.c.task,
            JOBS.c.args,
            JOBS.c.attempts,
            JOBS.c.max_attempts,
            JOBS.c.worker_id,
        )
        .where(JOBS.c.status == DOING, JOBS.c.heartbeat_at < cutoff)
        .limit(500)
    )
    query = lock_rows(query, session, skip_locked=True)
    found: list[StaleJob] = []
    for job_id, task, args, attempts, max_attempts, worker in session.execute(query).all():
        error = f"worker {worker} stopped heart-beating (attempt {attempts})"
        failed = attempts >= max_attempts
        values: dict[str, Any] = {"worker_id": "", "last_error": error}
        if failed:
            values.update(status=FAILED, finished_at=utcnow())
        else:
            values.update(status=TODO, scheduled_at=utcnow())
        session.execute(
            update(JOBS).where(JOBS.c.id == job_id, JOBS.c.status == DOING).values(**values)
        )
        found.append(StaleJob(job_id, task, args, attempts, failed))
    return found
