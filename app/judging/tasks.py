"""Task ``judging.judge``: one LLM judge labels one reply under one rubric version.

The label and the job's success are written in one transaction, and the insert does nothing
when a label for (reply, judge, rubric version) exists: a retried or duplicated job never
stores a second one. An answer that cannot be read is stored with no label and its raw text.
The judge's answer goes to the LLM cache too (as a run's replies do): labelling the same
prompt again, e.g. the same reply text in another run, costs no call. Each label keeps the
tokens of its call and their cost at the judge's prices (none when read from the cache).

Loads and writes of concurrent jobs are batched (app.jobs.batching), as a run's are: one
query reads the cases of every job of a loop turn, one transaction stores their labels and
finishes their jobs; a database round trip per label cost the worker more than the call.
The Batch API path is task ``judging.batch`` (``batch``).
"""

import time
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from app import llm
from app.db import get_engine, write_connection
from app.jobs.batching import batched
from app.jobs.errors import PermanentFailure, RetryLater
from app.jobs.registry import JobArgs, JobContext, finish_all_in, task
from app.judging import batch as _batch  # noqa: F401  (registers the Batch API task)
from app.judging.labels import (
    Prepared,
    cache_value,
    forget_specs,
    insert_labels,
    label_values,
    prepare_cases,
)
from app.judging.rubric import RUBRICS
from app.judging.service import JUDGE_TASK
from app.llm.types import LlmError
from app.runs.slots import add_cache_entries

__all__ = ["forget_specs", "judge_reply"]


# --- The per-reply task, its loads and writes batched over concurrent jobs -----------------


@dataclass(frozen=True)
class Wanted:
    reply_id: int
    judge_id: int
    version: str


def _load(items: list[Wanted]) -> list[Prepared | str | Exception]:
    groups: dict[tuple[int, str], list[int]] = {}
    for w in items:
        groups.setdefault((w.judge_id, w.version), []).append(w.reply_id)
    found: dict[tuple[int, str], dict[int, Prepared | str] | Exception] = {}
    with Session(get_engine()) as session:
        for (judge_id, version), reply_ids in groups.items():
            try:
                found[judge_id, version] = prepare_cases(session, judge_id, version, reply_ids)
            except PermanentFailure as exc:  # this judge cannot be called; others can
                found[judge_id, version] = exc
    out: list[Prepared | str | Exception] = []
    for w in items:
        group = found[w.judge_id, w.version]
        out.append(group if isinstance(group, Exception) else group[w.reply_id])
    return out


@dataclass
class Stored:
    ctx: JobContext
    row: dict[str, Any]
    cache: dict[str, Any] | None


def _store(items: list[Stored]) -> list[None]:
    """One transaction: the labels (each unless one exists), the new cache entries and the
    jobs' success."""
    fresh = {s.cache["key"]: s.cache for s in items if s.cache is not None}
    with write_connection(get_engine()) as conn, conn.begin():
        add_cache_entries(conn, list(fresh.values()))
        insert_labels(conn, [s.row for s in items])
        finish_all_in(conn, [(s.ctx, _result(s.row)) for s in items])
    _preload([job for s in items for job in s.ctx.successors if job.task == JUDGE_TASK])
    return [None] * len(items)


# The cases of the judge jobs handed a finished job's concurrency slot, read on the writer's
# thread right after its commit, so a successor starts its call without a load of its own:
# job id -> (case, monotonic time read). Used once, and only while fresh.
_preloaded: dict[int, tuple[Prepared | str | Exception, float]] = {}
PRELOAD_FRESH_S = 5.0


def _preload(jobs: list[Any]) -> None:
    if not jobs:
        return
    now = time.monotonic()
    for stale in [k for k, (_c, at) in _preloaded.items() if now - at > PRELOAD_FRESH_S]:
        del _preloaded[stale]  # successors given back to the queue (a worker that stopped)
    wanted = [
        Wanted(int(j.args["reply_id"]), int(j.args["judge_id"]), str(j.args["rubric_version"]))
        for j in jobs
    ]
    for job, case in zip(jobs, _load(wanted), strict=True):
        _preloaded[job.id] = (case, now)


def _take_preloaded(job_id: int) -> Prepared | str | Exception | None:
    found = _preloaded.pop(job_id, None)
    if found is None or time.monotonic() - found[1] > PRELOAD_FRESH_S:
        return None
    return found[0]


def _result(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "label": row["label"],
        "cached": row["from_cache"],
        "tokens_in": row["tokens_in"],
        "tokens_out": row["tokens_out"],
        "cost_usd": row["cost_usd"],
    }


load_case = batched(_load)
# Labels that come within a millisecond of each other share one transaction (at most 3 ms of
# waiting), as a run's replies do.
store_label = batched(_store, quiet_s=0.001, linger_s=0.003)


def _timeout(args: JobArgs) -> float:
    return float(args.get("timeout_s", 150.0))


@task(JUDGE_TASK, timeout_s=_timeout)
async def judge_reply(ctx: JobContext, args: JobArgs) -> dict[str, Any] | None:
    reply_id, judge_id = int(args["reply_id"]), int(args["judge_id"])
    version = str(args["rubric_version"])
    if version not in RUBRICS:
        raise PermanentFailure(f"unknown rubric version {version!r}")
    prepared = _take_preloaded(ctx.job_id)
    if prepared is None:
        prepared = await load_case(Wanted(reply_id, judge_id, version))
    if isinstance(prepared, Exception):
        raise prepared
    if isinstance(prepared, str):
        return {"skipped": prepared}
    completion, cache = prepared.cached, None
    if completion is None:
        try:
            completion = await llm.complete(prepared.spec, prepared.messages)
        except LlmError as exc:
            if exc.retryable:
                raise RetryLater(str(exc), delay_s=exc.retry_after) from None
            raise PermanentFailure(str(exc)) from None
        cache = cache_value(prepared.cache_key, completion)
    row = label_values(reply_id, judge_id, version, prepared.spec, completion, cached=cache is None)
    await store_label(Stored(ctx, row, cache))
    return None
