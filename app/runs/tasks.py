"""Task ``runs.generate``: fill one reply slot by calling its arm's model (two calls for
pushback), served from the LLM cache when the identical request was made before.

The reply, the cache entries and the job's success are written in ONE transaction, guarded
by ``status = 'pending'``: a retried or duplicated job never stores a second reply, and a
cancelled slot is never filled.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, event, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app import llm
from app.db import get_engine
from app.jobs.errors import PermanentFailure, RetryLater
from app.jobs.registry import JobArgs, JobContext, task
from app.llm.types import Completion, LlmError, ModelSpec
from app.models import LlmCacheEntry, PromptVariant, ResponseStatus, RunArm, utcnow
from app.runs.service import GENERATE_TASK, RESPONSES, complete_if_finished

VARIANTS = PromptVariant.__table__  # type: ignore[attr-defined]
ARMS = RunArm.__table__  # type: ignore[attr-defined]
CACHE = LlmCacheEntry.__table__  # type: ignore[attr-defined]
PENDING = ResponseStatus.pending.value

# Arm snapshots never change once a run is created: parse each one once per worker process.
_specs: dict[int, ModelSpec] = {}


@dataclass
class Slot:
    run_id: int
    arm_id: int
    sample_index: int
    status: str
    messages: list[dict[str, str]]
    followup: str


@dataclass
class Call:
    key: str
    completion: Completion
    cached: bool


def _spec(conn: Connection, arm_id: int) -> ModelSpec:
    spec = _specs.get(arm_id)
    if spec is None:
        snapshot = conn.execute(select(ARMS.c.snapshot).where(ARMS.c.id == arm_id)).scalar_one()
        spec = ModelSpec.model_validate(
            {k: v for k, v in snapshot.items() if k in ModelSpec.model_fields}
        )
        _specs[arm_id] = spec
    return spec


def _cached(conn: Connection, key: str) -> Completion | None:
    value = conn.execute(select(CACHE.c.value).where(CACHE.c.key == key)).scalar()
    return Completion.model_validate(value) if value is not None else None


def _load(
    engine: Engine, response_id: int
) -> tuple[Slot, ModelSpec | None, Completion | None, str] | None:
    """The slot; for a pending one also its model spec, the first call's cache key and the
    cached answer if any (one connection)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(
                RESPONSES.c.run_id,
                RESPONSES.c.arm_id,
                RESPONSES.c.sample_index,
                RESPONSES.c.status,
                VARIANTS.c.messages,
                VARIANTS.c.followup,
            )
            .join(VARIANTS, VARIANTS.c.id == RESPONSES.c.prompt_variant_id)
            .where(RESPONSES.c.id == response_id)
        ).first()
        if row is None:
            return None
        slot = Slot(*row)
        if slot.status != PENDING:
            return slot, None, None, ""
        spec = _spec(conn, slot.arm_id)
        key = llm.cache_key(spec, slot.messages, slot.sample_index)
        return slot, spec, _cached(conn, key), key


async def _call(
    spec: ModelSpec, messages: list[dict[str, str]], sample_index: int, key: str
) -> Call:
    try:
        completion = await llm.complete(spec, messages, sample_index=sample_index)
    except LlmError as exc:
        if exc.retryable:
            raise RetryLater(str(exc), delay_s=exc.retry_after) from None
        raise PermanentFailure(str(exc)) from None
    return Call(key, completion, cached=False)


def _insert_cache(conn: Connection, calls: list[Call]) -> None:
    fresh = [
        {"key": c.key, "value": c.completion.model_dump(), "created_at": utcnow()}
        for c in calls
        if not c.cached
    ]
    if not fresh:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(insert(CACHE).on_conflict_do_nothing(index_elements=["key"]), fresh)


def _record_error(engine: Engine, response_id: int, error: str, attempts: int) -> None:
    with _write(engine) as conn, conn.begin():
        conn.execute(
            update(RESPONSES)
            .where(RESPONSES.c.id == response_id, RESPONSES.c.status == PENDING)
            .values(error=error[:2000], attempts=attempts)
        )


def _write(engine: Engine) -> Connection:
    conn = engine.connect()
    if conn.dialect.name == "sqlite":
        conn.execution_options(sqlite_immediate=True)
    return conn


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
        engine = session.get_bind()
        event.listen(
            session,
            "after_commit",
            lambda _s: complete_if_finished(engine, run_id),  # type: ignore[arg-type]
            once=True,
        )


@task(GENERATE_TASK, limit=_limit, timeout_s=_timeout, on_failure=_on_failure)
async def generate(ctx: JobContext, args: JobArgs) -> dict[str, Any] | None:
    engine = get_engine()
    response_id = int(args["response_id"])
    loaded = _load(engine, response_id)
    if loaded is None:
        return {"skipped": "gone"}
    slot, spec, cached, key = loaded
    if spec is None:
        return {"skipped": slot.status}
    try:
        first = (
            Call(key, cached, True)
            if cached
            else await _call(spec, slot.messages, slot.sample_index, key)
        )
        calls = [first]
        if slot.followup:
            history = [
                *slot.messages,
                {"role": "assistant", "content": first.completion.text},
                {"role": "user", "content": slot.followup},
            ]
            key2 = llm.cache_key(spec, history, slot.sample_index)
            with engine.connect() as conn:
                cached2 = _cached(conn, key2)
            second = (
                Call(key2, cached2, True)
                if cached2
                else await _call(spec, history, slot.sample_index, key2)
            )
            calls.append(second)
            transcript = [*history, {"role": "assistant", "content": second.completion.text}]
        else:
            transcript = [
                *slot.messages,
                {"role": "assistant", "content": first.completion.text},
            ]
    except (RetryLater, PermanentFailure) as exc:
        _record_error(engine, response_id, str(exc), ctx.attempt)
        raise

    final = calls[-1].completion
    tokens_in = sum(c.completion.tokens_in for c in calls)
    tokens_out = sum(c.completion.tokens_out for c in calls)
    values: dict[str, Any] = {
        "status": ResponseStatus.done.value,
        "text": final.text,
        "verdict": llm.parse_verdict(final.text).value,
        "transcript": transcript,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "latency_ms": sum(c.completion.latency_ms for c in calls),
        "cost_usd": llm.cost_usd(spec, tokens_in, tokens_out),
        "finish_reason": final.finish_reason,
        "from_cache": all(c.cached for c in calls),
        "error": "",
        "attempts": ctx.attempt,
        "completed_at": utcnow(),
    }
    if slot.followup:
        values["first_text"] = first.completion.text
        values["first_verdict"] = llm.parse_verdict(first.completion.text).value
    with _write(engine) as conn, conn.begin():
        stored = conn.execute(
            update(RESPONSES)
            .where(RESPONSES.c.id == response_id, RESPONSES.c.status == PENDING)
            .values(**values)
        ).rowcount
        _insert_cache(conn, calls)
        ctx.finish_in(conn, {"stored": bool(stored)})
    complete_if_finished(engine, slot.run_id)
    return None
