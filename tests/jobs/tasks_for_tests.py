"""Tasks registered for the queue tests; each records what it did in CALLS."""

import asyncio
import threading
from collections import Counter
from typing import Any

from sqlalchemy import update

from app.jobs.errors import PermanentFailure, RetryLater
from app.jobs.registry import JobContext, task
from app.models import Job

CALLS: Counter[int] = Counter()
FAILURES: list[tuple[dict[str, Any], str, int]] = []
_lock = threading.Lock()


def reset() -> None:
    with _lock:
        CALLS.clear()
        FAILURES.clear()


def _count(ctx: JobContext) -> int:
    with _lock:
        CALLS[ctx.job_id] += 1
        return CALLS[ctx.job_id]


def _record_failure(session: Any, args: dict[str, Any], error: str, attempts: int) -> None:
    # Writes in the failing transaction, as a domain hook would.
    if "mark_job" in args:
        session.execute(
            update(Job).where(Job.id == args["mark_job"]).values(result={"hook": error})
        )
    FAILURES.append((args, error, attempts))


@task("test.echo")
async def echo(ctx: JobContext, args: dict[str, Any]) -> dict[str, Any]:
    _count(ctx)
    await asyncio.sleep(args.get("sleep", 0))
    return {"echo": args.get("value"), "attempt": ctx.attempt}


@task("test.flaky", on_failure=_record_failure)
async def flaky(ctx: JobContext, args: dict[str, Any]) -> dict[str, Any]:
    """Raises for the first ``fail_times`` attempts, as ``how`` says."""
    n = _count(ctx)
    if n <= args.get("fail_times", 0):
        how = args.get("how", "retry")
        if how == "retry":
            raise RetryLater("try again", delay_s=args.get("delay_s"))
        if how == "permanent":
            raise PermanentFailure("bad input")
        raise RuntimeError("boom")
    return {"ok": n}


@task("test.slow", timeout_s=0.2, on_failure=_record_failure)
async def slow(ctx: JobContext, args: dict[str, Any]) -> None:
    _count(ctx)
    await asyncio.sleep(args.get("sleep", 5))


@task("test.limited")
async def limited(ctx: JobContext, args: dict[str, Any]) -> dict[str, int]:
    from tests.jobs import tasks_for_tests as me

    _count(ctx)
    with _lock:
        me.IN_FLIGHT[args["key"]] += 1
        me.PEAK[args["key"]] = max(me.PEAK[args["key"]], me.IN_FLIGHT[args["key"]])
    await asyncio.sleep(0.02)
    with _lock:
        me.IN_FLIGHT[args["key"]] -= 1
    return {}


IN_FLIGHT: Counter[str] = Counter()
PEAK: Counter[str] = Counter()
