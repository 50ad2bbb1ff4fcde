"""Task ``runs.generate``: fill one reply slot by calling its arm's model (two calls for
pushback), served from the LLM cache when the identical request was made before.

The reply, its cache entries and the job's success are written in ONE transaction, guarded
by ``status = 'pending'``: a retried or duplicated job never stores a second reply, and a
cancelled slot is never filled. Loads and writes of concurrent jobs are batched
(app.jobs.batching): one query and one transaction serve every job of a loop turn.
"""

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, event, select, update
from sqlalchemy.orm import Session

from app import llm
from app.db import get_engine, write_connection
from app.jobs.batching import batched
from app.jobs.errors import PermanentFailure, RetryLater
from app.jobs.registry import JobArgs, JobContext, finish_all_in, task
from app.llm.types import Completion, LlmError, ModelSpec
from app.models import ReplyStatus, utcnow
from app.runs import batch as _batch  # noqa: F401  (registers the Batch API task)
from app.runs.completion import complete_if_finished
from app.runs.service import GENERATE_TASK, REPLIES
from app.runs.slots import (
    PENDING,
    STORE_REPLY,
    Call,
    Slot,
    add_cache_entries,
    cache_entry,
    cache_lookup,
    read_slots,
    reads_cache,
    record_error,
    reply_values,
    writes_cache,
)

# Slots of the jobs handed a finished job's concurrency slot, read in the transaction that
# handed them over, so a successor starts its call without a query of its own:
# job id -> (slot or None, monotonic time read). Used once, and only while fresh.
_preloaded: dict[int, tuple[Slot | None, float]] = {}
PRELOAD_FRESH_S = 5.0


@dataclass
class StoredReply:
    ctx: JobContext
    reply_id: int
    run_id: int
    values: dict[str, Any]
    calls: list[Call]
    policy: str = "auto"


def _load_slots(reply_ids: list[int]) -> list[Slot | None]:
    with get_engine().connect() as conn:
        return read_slots(conn, reply_ids)


def _preload_successors(conn: Connection, replies: list[StoredReply]) -> set[int]:
    """Read the slots of the generate jobs handed these replies' concurrency slots; return
    the runs of those still pending (runs that cannot be finished)."""
    jobs = [j for r in replies for j in r.ctx.successors if j.task == GENERATE_TASK]
    if not jobs:
        return set()
    slots = read_slots(conn, [int(j.args["reply_id"]) for j in jobs])
    now = time.monotonic()
    for stale in [k for k, (_s, at) in _preloaded.items() if now - at > PRELOAD_FRESH_S]:
        del _preloaded[stale]  # successors given back to the queue (a worker that stopped)
    for job, slot in zip(jobs, slots, strict=True):
        _preloaded[job.id] = (slot, now)
    return {s.run_id for s in slots if s is not None and s.status == PENDING}


def _take_preloaded(job_id: int) -> tuple[bool, Slot | None]:
    found = _preloaded.pop(job_id, None)
    if found is None or time.monotonic() - found[1] > PRELOAD_FRESH_S:
        return False, None
    return True, found[0]


def _get_cached(keys: list[str]) -> list[Completion | None]:
    with get_engine().connect() as conn:
        found = cache_lookup(conn, keys)
    return [found.get(k) for k in keys]


def _store_replies(replies: list[StoredReply]) -> list[None]:
    """One transaction: every reply (guarded), the new cache entries, the jobs' success."""
    engine = get_engine()
    now = utcnow()
    fresh: dict[bool, dict[str, dict[str, Any]]] = {False: {}, True: {}}
    for r in replies:
        if not writes_cache(r.policy):
            continue
        for c in r.calls:
            if not c.cached:
                entry = cache_entry(c.key, c.completion, r.run_id, now)
                fresh[r.policy == "refresh"][c.key] = entry
    with write_connection(engine) as conn, conn.begin():
        conn.execute(STORE_REPLY, [{"_id": r.reply_id, **r.values} for r in replies])
        add_cache_entries(conn, list(fresh[False].values()))
        add_cache_entries(conn, list(fresh[True].values()), replace=True)
        finish_all_in(conn, [(r.ctx, None) for r in replies])
        unfinished = _preload_successors(conn, replies)
    # A run with a slot that was pending at this commit and is now one of this worker's jobs
    # is not finished: that job checks it when it ends (stored, failed or given back).
    for run_id in {r.run_id for r in replies} - unfinished:
        complete_if_finished(engine, run_id)
    return [None] * len(replies)


load_slot = batched(_load_slots)
get_cached = batched(_get_cached)
# Replies that finish within a millisecond of each other share one transaction (at most 3 ms
# of waiting): a transaction per reply costs more CPU than the rest of the reply's work.
store_reply = batched(_store_replies, quiet_s=0.001, linger_s=0.003)


async def _call(spec: ModelSpec, messages: list[dict[str, str]], sample_index: int) -> Completion:
    try:
        return await llm.complete(spec, messages, sample_index=sample_index)
    except LlmError as exc:
        if exc.retryable:
            raise RetryLater(str(exc), delay_s=exc.retry_after) from None
        raise PermanentFailure(str(exc)) from None


def _record_error(reply_id: int, error: str, attempts: int) -> None:
    with write_connection(get_engine()) as conn, conn.begin():
        record_error(conn, reply_id, error, attempts)


def _timeout(args: JobArgs) -> float:
    return float(args.get("timeout_s", 600.0))


def _on_failure(session: Any, args: JobArgs, error: str, attempts: int) -> None:
    """The job gave up: the slot fails with the error (retryable from the run page)."""
    reply_id = int(args["reply_id"])
    run_id = session.execute(select(REPLIES.c.run_id).where(REPLIES.c.id == reply_id)).scalar()
    session.execute(
        update(REPLIES)
        .where(REPLIES.c.id == reply_id, REPLIES.c.status == PENDING)
        .values(status=ReplyStatus.failed.value, error=error[:2000], attempts=attempts)
    )
    if run_id is not None and isinstance(session, Session):
        bind = session.get_bind()
        # A write_transaction session is bound to a connection: finish on its engine.
        engine = bind.engine if isinstance(bind, Connection) else bind
        # After the commit, so that the last slot to finish always sees the others finished.
        event.listen(
            session,
            "after_commit",
            lambda _s: complete_if_finished(engine, run_id),
            once=True,
        )


@task(GENERATE_TASK, timeout_s=_timeout, on_failure=_on_failure)
async def generate(ctx: JobContext, args: JobArgs) -> dict[str, Any] | None:
    reply_id = int(args["reply_id"])
    preloaded, slot = _take_preloaded(ctx.job_id)
    if not preloaded:
        slot = await load_slot(reply_id)
    if slot is None or slot.spec is None:
        return {"skipped": slot.status if slot else "gone"}
    spec = slot.spec
    try:
        first = Call(slot.key, slot.cached, True) if slot.cached else None
        if first is None:
            completion = await _call(spec, slot.messages, slot.sample_index)
            first = Call(slot.key, completion, False)
        calls = [first]
        transcript = [*slot.messages, {"role": "assistant", "content": first.completion.text}]
        if slot.followup:
            transcript.append({"role": "user", "content": slot.followup})
            key = llm.cache_key(spec, transcript, slot.sample_index)
            cached = await get_cached(key) if reads_cache(slot.policy, spec) else None
            if cached is None:
                second = Call(key, await _call(spec, transcript, slot.sample_index), False)
            else:
                second = Call(key, cached, True)
            calls.append(second)
            transcript = [*transcript, {"role": "assistant", "content": second.completion.text}]
    except (RetryLater, PermanentFailure) as exc:
        _record_error(reply_id, str(exc), ctx.attempt)
        raise

    values = reply_values(
        spec, calls, bool(slot.followup), transcript, ctx.attempt, slot.stance, slot.statement
    )
    await store_reply(StoredReply(ctx, reply_id, slot.run_id, values, calls, slot.policy))
    return None
