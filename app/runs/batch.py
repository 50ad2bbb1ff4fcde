"""Task ``runs.batch``: one arm of a run through the OpenAI Batch API (app.llm.batch).

First attempt: the arm's pending single-turn slots not already in the LLM cache go into one
JSONL batch (cached ones are stored at once; pushback slots, which need two turns, get
ordinary ``runs.generate`` jobs); the batch id is kept in ``Run.config["batches"]``. Later
attempts poll (``Snooze``: no attempt is used up) and, once the batch is over, store every
completion in one transaction with the job's success. Lines that failed or never ran fall
back to ``runs.generate`` jobs, so no slot is stranded.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from app import llm
from app.db import get_engine, lock_rows, write_connection
from app.jobs import queue
from app.jobs.errors import PermanentFailure, RetryLater, Snooze
from app.jobs.registry import JobArgs, JobContext, task
from app.llm import batch as llm_batch
from app.llm.types import Completion, LlmError, ModelSpec
from app.runs.completion import complete_if_finished
from app.runs.service import BATCH_TASK, REPLIES, RUNS, generate_job, slot_lock_key
from app.runs.slots import (
    ARMS,
    PENDING,
    QUESTIONS,
    STORE_REPLY,
    VARIANTS,
    Call,
    add_cache_entries,
    cache_entry,
    cache_lookup,
    policy_of,
    reads_cache,
    remember_spec,
    reply_values,
    writes_cache,
)


def _spec(conn: Connection, arm_id: int) -> tuple[ModelSpec, Any]:
    row = conn.execute(select(ARMS).where(ARMS.c.id == arm_id)).one()
    return remember_spec(arm_id, row.snapshot), row


def _pending(conn: Connection, run_id: int, arm_id: int) -> list[Any]:
    return list(
        conn.execute(
            select(
                REPLIES.c.id,
                REPLIES.c.sample_index,
                VARIANTS.c.messages,
                VARIANTS.c.followup,
                VARIANTS.c.stance,
                QUESTIONS.c.statement,
            )
            .join(VARIANTS, VARIANTS.c.id == REPLIES.c.prompt_variant_id)
            .join(QUESTIONS, QUESTIONS.c.id == VARIANTS.c.question_id)
            .where(
                REPLIES.c.run_id == run_id,
                REPLIES.c.arm_id == arm_id,
                REPLIES.c.status == PENDING,
            )
            .order_by(REPLIES.c.id)
        ).all()
    )


def _fallback(conn: Connection, run_id: int, arm: Any, reply_ids: list[int]) -> int:
    """Ordinary jobs for slots the batch does not cover (skipping any already queued)."""
    if not reply_ids:
        return 0
    keys = {slot_lock_key(i): i for i in reply_ids}
    taken = set(
        conn.execute(
            select(queue.JOBS.c.lock_key).where(queue.JOBS.c.lock_key.in_(list(keys)))
        ).scalars()
    )
    jobs = [generate_job(run_id, rid, arm) for key, rid in keys.items() if key not in taken]
    queue.enqueue_many(conn, jobs)
    return len(jobs)


def _store(
    conn: Connection,
    spec: ModelSpec,
    rows: Sequence[tuple[int, list[dict[str, str]], Completion, bool, str, str, str]],
    attempt: int,
    run_id: int,
    policy: str,
) -> None:
    """Store single-turn replies (reply id, messages, completion, cached?, cache key,
    stance, statement)."""
    if not rows:
        return
    params = []
    fresh = []
    for reply_id, messages, completion, cached, key, stance, statement in rows:
        transcript = [*messages, {"role": "assistant", "content": completion.text}]
        values = reply_values(
            spec, [Call(key, completion, cached)], False, transcript, attempt, stance, statement
        )
        params.append({"_id": reply_id, **values})
        if not cached and writes_cache(policy):
            fresh.append(cache_entry(key, completion, run_id, values["completed_at"]))
    conn.execute(STORE_REPLY, params)
    add_cache_entries(conn, fresh, replace=policy == "refresh")


def _save_state(conn: Connection, run_id: int, arm_id: int, state: dict[str, Any]) -> None:
    query = lock_rows(select(RUNS.c.config).where(RUNS.c.id == run_id), conn)
    config = dict(conn.execute(query).scalar_one() or {})
    batches = dict(config.get("batches") or {})
    batches[str(arm_id)] = state
    config["batches"] = batches
    conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(config=config))


def _state(run_id: int, arm_id: int) -> dict[str, Any] | None:
    with get_engine().connect() as conn:
        config = conn.execute(select(RUNS.c.config).where(RUNS.c.id == run_id)).scalar_one()
    state = (config or {}).get("batches", {}).get(str(arm_id))
    return dict(state) if state else None


def _as_retry(exc: LlmError) -> Exception:
    return RetryLater(str(exc), exc.retry_after) if exc.retryable else PermanentFailure(str(exc))


async def _submit(ctx: JobContext, run_id: int, arm_id: int, poll_s: float) -> dict[str, Any]:
    engine = get_engine()
    with engine.connect() as conn:
        spec, arm = _spec(conn, arm_id)
        slots = _pending(conn, run_id, arm_id)
        single = [s for s in slots if not s.followup]
        keys = {s.id: llm.cache_key(spec, s.messages, s.sample_index) for s in single}
        policy = policy_of(arm_id)
        cached = cache_lookup(conn, list(keys.values())) if reads_cache(policy, spec) else {}
    hits = [
        (s.id, s.messages, cached[keys[s.id]], True, keys[s.id], s.stance, s.statement)
        for s in single
        if keys[s.id] in cached
    ]
    to_send = [s for s in single if keys[s.id] not in cached]
    state: dict[str, Any] = {"requests": len(to_send), "cached": len(hits)}
    if to_send:
        requests = [llm_batch.BatchRequest(f"r{s.id}", s.messages, s.sample_index) for s in to_send]
        try:
            file_id = await llm_batch.upload(
                spec,
                llm_batch.build_jsonl(spec, requests),
                filename=f"run{run_id}-arm{arm_id}.jsonl",
            )
            status = await llm_batch.create_batch(
                spec, file_id, metadata={"sdilab_run": str(run_id), "arm": str(arm_id)}
            )
        except LlmError as exc:
            raise _as_retry(exc) from None
        state.update(batch_id=status.id, input_file_id=file_id, status=status.status)
    with write_connection(engine) as conn, conn.begin():
        _store(conn, spec, hits, ctx.attempt, run_id, policy_of(arm_id))
        state["fallback"] = _fallback(conn, run_id, arm, [s.id for s in slots if s.followup])
        _save_state(conn, run_id, arm_id, state)
        if not to_send:
            ctx.finish_in(conn, state)
    complete_if_finished(engine, run_id)
    if to_send:
        raise Snooze(poll_s, f"batch {state['batch_id']} submitted")
    return state


async def _collect(
    ctx: JobContext, run_id: int, arm_id: int, state: dict[str, Any], poll_s: float
) -> dict[str, Any]:
    engine = get_engine()
    with engine.connect() as conn:
        spec, arm = _spec(conn, arm_id)
    try:
        status = await llm_batch.poll(spec, state["batch_id"])
        if not status.finished:
            raise Snooze(poll_s, f"batch {status.id} {status.status}")
        results = (
            await llm_batch.download_results(spec, status)
            if status.output_file_id or status.error_file_id
            else llm_batch.BatchResults()
        )
    except LlmError as exc:
        raise _as_retry(exc) from None
    with write_connection(engine) as conn, conn.begin():
        slots = [s for s in _pending(conn, run_id, arm_id) if not s.followup]
        done, missing = [], []
        for s in slots:
            completion = results.completions.get(f"r{s.id}")
            if completion is None:
                missing.append(s.id)
            else:
                key = llm.cache_key(spec, s.messages, s.sample_index)
                done.append((s.id, s.messages, completion, False, key, s.stance, s.statement))
        _store(conn, spec, done, ctx.attempt, run_id, policy_of(arm_id))
        state.update(
            status=status.status,
            stored=len(done),
            fallback=int(state.get("fallback", 0)) + _fallback(conn, run_id, arm, missing),
            errors=len(results.errors),
        )
        _save_state(conn, run_id, arm_id, state)
        ctx.finish_in(conn, state)
    complete_if_finished(engine, run_id)
    return state


def _on_failure(session: Any, args: JobArgs, error: str, attempts: int) -> None:
    """The batch job gave up: every pending slot of the arm gets an ordinary job instead."""
    conn = session.connection()
    arm = conn.execute(select(ARMS).where(ARMS.c.id == int(args["arm_id"]))).one()
    slots = _pending(conn, int(args["run_id"]), arm.id)
    _fallback(conn, int(args["run_id"]), arm, [s.id for s in slots])


@task(BATCH_TASK, on_failure=_on_failure, timeout_s=900)
async def generate_batch(ctx: JobContext, args: JobArgs) -> dict[str, Any] | None:
    run_id, arm_id = int(args["run_id"]), int(args["arm_id"])
    poll_s = float(args.get("poll_s", 30.0))
    state = _state(run_id, arm_id)
    if state is None or not state.get("batch_id"):
        return await _submit(ctx, run_id, arm_id, poll_s)
    return await _collect(ctx, run_id, arm_id, state, poll_s)
