"""Task ``judging.batch``: a judge labels a run's replies through the OpenAI Batch API.

First attempt: the run's done replies this judge has not labelled under the rubric (and that
no per-reply judge job is working on) are read; those whose judge prompt is in the LLM cache
are labelled at once, the others go into one JSONL batch. The batch id and the replies sent
are kept in ``judge_batches`` in the same transaction, so a worker started after a crash
polls that batch instead of sending another. Later attempts poll (``Snooze``: no attempt is
used up) and, once the batch is over, store every label (each unless one exists: one label
per reply x judge x rubric version) with its tokens and cost, in one transaction with the
job's success. Replies whose line failed or never came back get ordinary per-reply jobs, and
so do all the batch's replies if the job gives up: none is stranded.
"""

from typing import Any

from sqlalchemy import Connection, exists, select, update
from sqlmodel import Session

from app.db import get_engine, insert_ignore_statement, name_of, write_connection
from app.jobs.errors import PermanentFailure, RetryLater, Snooze
from app.jobs.registry import JobArgs, JobContext, task
from app.judging.labels import (
    LABELS_TABLE,
    REPLIES,
    Prepared,
    cache_value,
    insert_labels,
    judge_spec_of,
    label_values,
    prepare_cases,
)
from app.judging.service import (
    BATCH_TASK,
    JOBS,
    JUDGE_TASK,
    group_key,
    lock_key,
    reply_jobs,
)
from app.llm import batch as llm_batch
from app.llm.types import LlmError
from app.models import JobStatus, JudgeBatch, ReplyStatus, utcnow
from app.runs.slots import add_cache_entries

BATCHES = JudgeBatch.__table__  # type: ignore[attr-defined]


def custom_id(reply_id: int) -> str:
    return f"j{reply_id}"


def _candidates(conn: Connection, run_id: int, judge_id: int, version: str) -> list[int]:
    """Done replies of the run with no label of this judge and rubric, and no per-reply job
    of it queued or running."""
    labelled = exists().where(
        LABELS_TABLE.c.reply_id == REPLIES.c.id,
        LABELS_TABLE.c.judge_model_id == judge_id,
        LABELS_TABLE.c.rubric_version == version,
    )
    ids = conn.execute(
        select(REPLIES.c.id)
        .where(
            REPLIES.c.run_id == run_id,
            REPLIES.c.status == ReplyStatus.done.value,
            ~labelled,
        )
        .order_by(REPLIES.c.id)
    ).scalars()
    busy = set(
        conn.execute(
            select(JOBS.c.lock_key).where(
                JOBS.c.group_key == group_key(run_id),
                JOBS.c.task == JUDGE_TASK,
                JOBS.c.status.in_((JobStatus.todo.value, JobStatus.doing.value)),
            )
        ).scalars()
    )
    return [int(i) for i in ids if lock_key(int(i), judge_id, version) not in busy]


def _state(conn: Connection, run_id: int, judge_id: int, version: str) -> Any:
    return conn.execute(
        select(BATCHES).where(
            BATCHES.c.run_id == run_id,
            BATCHES.c.judge_model_id == judge_id,
            BATCHES.c.rubric_version == version,
        )
    ).first()


def _save_state(conn: Connection, run_id: int, judge_id: int, version: str, **values: Any) -> None:
    key = {"run_id": run_id, "judge_model_id": judge_id, "rubric_version": version}
    conn.execute(insert_ignore_statement(BATCHES, name_of(conn)).values(**key, **_NEW_STATE))
    conn.execute(
        update(BATCHES)
        .where(*(BATCHES.c[name] == value for name, value in key.items()))
        .values(**values)
    )


_NEW_STATE = {
    "batch_id": "",
    "input_file_id": "",
    "status": "",
    "reply_ids": [],
    "cached": 0,
    "stored": 0,
    "fallback": 0,
}


def _as_retry(exc: LlmError) -> Exception:
    return RetryLater(str(exc), exc.retry_after) if exc.retryable else PermanentFailure(str(exc))


def _fallback(conn: Connection, run_id: int, judge_id: int, version: str, ids: list[int]) -> int:
    """Per-reply jobs for replies the batch did not label."""
    if not ids:
        return 0
    queued, _already = reply_jobs(conn, run_id, judge_id, ids, version)
    return queued


async def _submit(
    ctx: JobContext, run_id: int, judge_id: int, version: str, poll_s: float
) -> dict[str, Any]:
    engine = get_engine()
    with Session(engine) as session:
        candidates = _candidates(session.connection(), run_id, judge_id, version)
        found = prepare_cases(session, judge_id, version, candidates)
    ready = [p for p in found.values() if isinstance(p, Prepared)]
    hits = [p for p in ready if p.cached is not None]
    to_send = [p for p in ready if p.cached is None]
    state: dict[str, Any] = {
        "batch_id": "",
        "input_file_id": "",
        "status": "",
        "reply_ids": [p.reply_id for p in to_send],
        "cached": len(hits),
        "stored": 0,
        "fallback": 0,
        "created_at": utcnow(),
        "finished_at": None if to_send else utcnow(),
    }
    if to_send:
        spec = to_send[0].spec
        requests = [
            llm_batch.BatchRequest(custom_id(p.reply_id), p.messages)
            for p in _distinct(to_send).values()
        ]
        try:
            file_id = await llm_batch.upload(
                spec,
                llm_batch.build_jsonl(spec, requests),
                filename=f"judge-run{run_id}-model{judge_id}-{version}.jsonl",
            )
            status = await llm_batch.create_batch(
                spec,
                file_id,
                metadata={"sdilab_run": str(run_id), "judge": str(judge_id), "rubric": version},
            )
        except LlmError as exc:
            raise _as_retry(exc) from None
        state.update(batch_id=status.id, input_file_id=file_id, status=status.status)
    rows = [
        label_values(p.reply_id, judge_id, version, p.spec, p.cached, cached=True)
        for p in hits
        if p.cached is not None
    ]
    result = _summary(state)
    with write_connection(engine) as conn, conn.begin():
        insert_labels(conn, rows)
        _save_state(conn, run_id, judge_id, version, **state)
        if not to_send:
            ctx.finish_in(conn, result)
    if to_send:
        raise Snooze(poll_s, f"batch {state['batch_id']} submitted ({len(to_send)} replies)")
    return result


def _distinct(prepared: list[Prepared]) -> dict[str, Prepared]:
    """One request per distinct judge prompt (the first reply that has it): replies with the
    same prompt (e.g. two arms that answered alike) share its answer."""
    out: dict[str, Prepared] = {}
    for p in prepared:
        out.setdefault(p.cache_key, p)
    return out


def _summary(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "batch_id": state.get("batch_id", ""),
        "status": state.get("status", ""),
        "requests": len(state.get("reply_ids") or []),
        "cached": state.get("cached", 0),
        "stored": state.get("stored", 0),
        "fallback": state.get("fallback", 0),
    }


async def _collect(
    ctx: JobContext, run_id: int, judge_id: int, version: str, state: Any, poll_s: float
) -> dict[str, Any]:
    engine = get_engine()
    with Session(engine) as session:
        spec = judge_spec_of(session, judge_id)
    try:
        status = await llm_batch.poll(spec, state.batch_id)
        if not status.finished:
            if status.status != state.status:
                with write_connection(engine) as conn, conn.begin():
                    _save_state(conn, run_id, judge_id, version, status=status.status)
            raise Snooze(poll_s, f"batch {status.id} {status.status}")
        results = (
            await llm_batch.download_results(spec, status)
            if status.output_file_id or status.error_file_id
            else llm_batch.BatchResults()
        )
    except LlmError as exc:
        raise _as_retry(exc) from None
    sent = [int(i) for i in state.reply_ids]
    with Session(engine) as session:
        found = prepare_cases(session, judge_id, version, sent)
    # Each prompt's answer: the line of the first reply sent with it.
    answers = {
        p.cache_key: results.completions[custom_id(p.reply_id)]
        for p in found.values()
        if isinstance(p, Prepared) and custom_id(p.reply_id) in results.completions
    }
    rows, cache, missing = [], [], []
    answered: set[str] = set()
    for reply_id in sent:
        prepared = found[reply_id]
        if not isinstance(prepared, Prepared):
            continue  # labelled meanwhile, or no longer done
        completion = answers.get(prepared.cache_key)
        if completion is None:
            missing.append(reply_id)
            continue
        # A second reply with the same prompt shares the call: no tokens of its own.
        shared = prepared.cache_key in answered
        answered.add(prepared.cache_key)
        rows.append(
            label_values(
                reply_id, judge_id, version, spec, completion, cached=shared, via_batch=True
            )
        )
        if not shared:
            cache.append(cache_value(prepared.cache_key, completion))
    with write_connection(engine) as conn, conn.begin():
        add_cache_entries(conn, cache)
        insert_labels(conn, rows)
        fallback = _fallback(conn, run_id, judge_id, version, missing)
        values = {
            "status": status.status,
            "stored": len(rows),
            "fallback": fallback,
            "finished_at": utcnow(),
        }
        _save_state(conn, run_id, judge_id, version, **values)
        result = _summary(
            {"batch_id": state.batch_id, "reply_ids": sent, "cached": state.cached, **values}
        )
        result["errors"] = len(results.errors)
        ctx.finish_in(conn, result)
    return result


def _on_failure(session: Any, args: JobArgs, error: str, attempts: int) -> None:
    """The batch job gave up: its replies not labelled get per-reply jobs instead."""
    run_id, judge_id = int(args["run_id"]), int(args["judge_id"])
    version = str(args["rubric_version"])
    conn = session.connection()
    state = _state(conn, run_id, judge_id, version)
    if state is not None and state.batch_id and state.finished_at is None:
        ids = set(_candidates(conn, run_id, judge_id, version)) & set(state.reply_ids)
    else:
        ids = set(_candidates(conn, run_id, judge_id, version))
    _fallback(conn, run_id, judge_id, version, sorted(ids))


@task(BATCH_TASK, on_failure=_on_failure, timeout_s=900)
async def judge_batch(ctx: JobContext, args: JobArgs) -> dict[str, Any] | None:
    run_id, judge_id = int(args["run_id"]), int(args["judge_id"])
    version = str(args["rubric_version"])
    poll_s = float(args.get("poll_s", 30.0))
    with get_engine().connect() as conn:
        state = _state(conn, run_id, judge_id, version)
    if state is None or not state.batch_id or state.finished_at is not None:
        return await _submit(ctx, run_id, judge_id, version, poll_s)
    return await _collect(ctx, run_id, judge_id, version, state, poll_s)
