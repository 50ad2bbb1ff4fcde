"""Task ``runs.generate``: fill one reply slot by calling its arm's model (two calls for
pushback), served from the LLM cache when the identical request was made before.

The reply, its cache entries and the job's success are written in ONE transaction, guarded
by ``status = 'pending'``: a retried or duplicated job never stores a second reply, and a
cancelled slot is never filled. Loads and writes of concurrent jobs are batched
(app.jobs.batching): one query and one transaction serve every job of a loop turn.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, event, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app import llm
from app.db import get_engine
from app.jobs.batching import batched
from app.jobs.errors import PermanentFailure, RetryLater
from app.jobs.registry import JobArgs, JobContext, finish_all_in, task
from app.llm.types import Completion, LlmError, ModelSpec
from app.models import LlmCacheEntry, PromptVariant, ResponseStatus, RunArm, Stance, utcnow
from app.runs.service import GENERATE_TASK, RESPONSES, complete_if_finished

VARIANTS = PromptVariant.__table__  # type: ignore[attr-defined]
ARMS = RunArm.__table__  # type: ignore[attr-defined]
CACHE = LlmCacheEntry.__table__  # type: ignore[attr-defined]
PENDING = ResponseStatus.pending.value
REPLY_FIELDS = (
    "status",
    "text",
    "verdict",
    "first_text",
    "first_verdict",
    "transcript",
    "tokens_in",
    "tokens_out",
    "latency_ms",
    "cost_usd",
    "finish_reason",
    "from_cache",
    "error",
    "attempts",
    "completed_at",
)
STORE_REPLY = (
    update(RESPONSES)
    .where(RESPONSES.c.id == bindparam("_id"), RESPONSES.c.status == PENDING)
    .values({name: bindparam(name) for name in REPLY_FIELDS})
)
# Built once: the worker runs them for every batch.
READ_SLOTS = (
    select(
        RESPONSES.c.id,
        RESPONSES.c.run_id,
        RESPONSES.c.arm_id,
        RESPONSES.c.sample_index,
        RESPONSES.c.status,
        VARIANTS.c.messages,
        VARIANTS.c.followup,
        VARIANTS.c.stance,
    )
    .join(VARIANTS, VARIANTS.c.id == RESPONSES.c.prompt_variant_id)
    .where(RESPONSES.c.id.in_(bindparam("ids", expanding=True)))
)
CACHE_LOOKUP = select(CACHE.c.key, CACHE.c.value).where(
    CACHE.c.key.in_(bindparam("keys", expanding=True))
)
CACHE_ADD_PG = pg_insert(CACHE).on_conflict_do_nothing(index_elements=["key"])
CACHE_ADD_SQLITE = sqlite_insert(CACHE).on_conflict_do_nothing(index_elements=["key"])

# Arm snapshots never change once a run is created: parse each one once per worker process.
_specs: dict[int, ModelSpec] = {}
# Slots of the jobs handed a finished job's concurrency slot, read in the transaction that
# handed them over, so a successor starts its call without a query of its own:
# job id -> (slot or None, monotonic time read). Used once, and only while fresh.
_preloaded: dict[int, tuple["Slot | None", float]] = {}
PRELOAD_FRESH_S = 5.0


@dataclass
class Slot:
    response_id: int
    run_id: int
    arm_id: int
    sample_index: int
    status: str
    messages: list[dict[str, str]]
    followup: str
    stance: str
    spec: ModelSpec | None = None
    key: str = ""  # the first call's cache key
    cached: Completion | None = None


@dataclass
class Call:
    key: str
    completion: Completion
    cached: bool


@dataclass
class Reply:
    ctx: JobContext
    response_id: int
    run_id: int
    values: dict[str, Any]
    calls: list[Call]


def _write_conn(engine: Engine) -> Connection:
    conn = engine.connect()
    if conn.dialect.name == "sqlite":
        conn.execution_options(sqlite_immediate=True)
    return conn


def _cache_lookup(conn: Connection, keys: Sequence[str]) -> dict[str, Completion]:
    if not keys:
        return {}
    rows = conn.execute(CACHE_LOOKUP, {"keys": list(set(keys))})
    return {key: Completion.model_validate(value) for key, value in rows}


def _load_slots(response_ids: list[int]) -> list[Slot | None]:
    with get_engine().connect() as conn:
        return _read_slots(conn, response_ids)


def _read_slots(conn: Connection, response_ids: list[int]) -> list[Slot | None]:
    """Slots by response id; pending ones with their spec, cache key and cached answer."""
    rows = conn.execute(READ_SLOTS, {"ids": list(set(response_ids))}).all()
    slots = {row[0]: Slot(*row) for row in rows}
    pending = [s for s in slots.values() if s.status == PENDING]
    missing = {s.arm_id for s in pending} - set(_specs)
    if missing:
        for arm_id, snapshot in conn.execute(
            select(ARMS.c.id, ARMS.c.snapshot).where(ARMS.c.id.in_(missing))
        ):
            fields = {k: v for k, v in snapshot.items() if k in ModelSpec.model_fields}
            _specs[arm_id] = ModelSpec.model_validate(fields)
    for slot in pending:
        slot.spec = _specs[slot.arm_id]
        slot.key = llm.cache_key(slot.spec, slot.messages, slot.sample_index)
    cached = _cache_lookup(conn, [s.key for s in pending])
    for slot in pending:
        slot.cached = cached.get(slot.key)
    return [slots.get(i) for i in response_ids]


def _preload_successors(conn: Connection, replies: list[Reply]) -> set[int]:
    """Read the slots of the generate jobs handed these replies' concurrency slots; return
    the runs of those still pending (runs that cannot be finished)."""
    jobs = [j for r in replies for j in r.ctx.successors if j.task == GENERATE_TASK]
    if not jobs:
        return set()
    slots = _read_slots(conn, [int(j.args["response_id"]) for j in jobs])
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
        found = _cache_lookup(conn, keys)
    return [found.get(k) for k in keys]


def _store_replies(replies: list[Reply]) -> list[None]:
    """One transaction: every reply (guarded), the new cache entries, the jobs' success."""
    engine = get_engine()
    now = utcnow()
    fresh = {
        c.key: {"key": c.key, "value": c.completion.model_dump(), "created_at": now}
        for r in replies
        for c in r.calls
        if not c.cached
    }
    with _write_conn(engine) as conn, conn.begin():
        conn.execute(STORE_REPLY, [{"_id": r.response_id, **r.values} for r in replies])
        if fresh:
            add = CACHE_ADD_PG if conn.dialect.name == "postgresql" else CACHE_ADD_SQLITE
            conn.execute(add, list(fresh.values()))
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


def _record_error(response_id: int, error: str, attempts: int) -> None:
    with _write_conn(get_engine()) as conn, conn.begin():
        conn.execute(
            update(RESPONSES)
            .where(RESPONSES.c.id == response_id, RESPONSES.c.status == PENDING)
            .values(error=error[:2000], attempts=attempts)
        )


def reply_values(
    spec: ModelSpec,
    calls: list[Call],
    pushback: bool,
    transcript: list[Any],
    attempt: int,
    stance: str = Stance.none.value,
) -> dict[str, Any]:
    """The columns of a finished reply slot (every REPLY_FIELDS key)."""
    first, final = calls[0].completion, calls[-1].completion
    # The user asked about the negation when the stance negates: verdicts are flipped. After
    # pushback the final reply answers the pushback on the first answer.
    verdict, first_verdict = llm.statement_verdicts(
        final.text, stance == Stance.negates, first.text if pushback else None
    )
    tokens_in = sum(c.completion.tokens_in for c in calls)
    tokens_out = sum(c.completion.tokens_out for c in calls)
    return {
        "status": ResponseStatus.done.value,
        "text": final.text,
        "verdict": verdict.value,
        "first_text": first.text if pushback else "",
        "first_verdict": first_verdict.value if first_verdict else None,
        "transcript": transcript,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "latency_ms": sum(c.completion.latency_ms for c in calls),
        "cost_usd": llm.cost_usd(spec, tokens_in, tokens_out),
        "finish_reason": final.finish_reason,
        "from_cache": all(c.cached for c in calls),
        "error": "",
        "attempts": attempt,
        "completed_at": utcnow(),
    }


def _limit(args: JobArgs) -> int:
    return int(args.get("max_concurrency", 4))


def _timeout(args: JobArgs) -> float:
    return float(args.get("timeout_s", 600.0))


def _on_failure(session: Any, args: JobArgs, error: str, attempts: int) -> None:
    """The job gave up: the slot fails with the error (retryable from the run page)."""
    response_id = int(args["response_id"])
    run_id = session.execute(
        select(RESPONSES.c.run_id).where(RESPONSES.c.id == response_id)
    ).scalar()
    session.execute(
        update(RESPONSES)
        .where(RESPONSES.c.id == response_id, RESPONSES.c.status == PENDING)
        .values(status=ResponseStatus.failed.value, error=error[:2000], attempts=attempts)
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


@task(GENERATE_TASK, limit=_limit, timeout_s=_timeout, on_failure=_on_failure)
async def generate(ctx: JobContext, args: JobArgs) -> dict[str, Any] | None:
    response_id = int(args["response_id"])
    preloaded, slot = _take_preloaded(ctx.job_id)
    if not preloaded:
        slot = await load_slot(response_id)
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
            cached = await get_cached(key)
            if cached is None:
                second = Call(key, await _call(spec, transcript, slot.sample_index), False)
            else:
                second = Call(key, cached, True)
            calls.append(second)
            transcript = [*transcript, {"role": "assistant", "content": second.completion.text}]
    except (RetryLater, PermanentFailure) as exc:
        _record_error(response_id, str(exc), ctx.attempt)
        raise

    values = reply_values(spec, calls, bool(slot.followup), transcript, ctx.attempt, slot.stance)
    await store_reply(Reply(ctx, response_id, slot.run_id, values, calls))
    return None


# The Batch API task lives beside; importing it registers "runs.batch".
from app.runs import batch as _batch  # noqa: E402, F401
