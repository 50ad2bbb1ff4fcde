"""Background work of SDI: builds that call a model, and following fine-tuning jobs."""

import asyncio
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from app.db import session_scope, write_transaction
from app.jobs.errors import RetryLater
from app.jobs.queue import enqueue
from app.jobs.registry import JobArgs, JobContext, task
from app.llm.types import LlmError
from app.models import SdiDataset, SdiFineTune, SdiStatus, utcnow
from app.sdi import finetuning, service
from app.sdi.integration import GeneralDataError
from app.sdi.pipeline import LeakageError, PipelineResult


def _build_failed(session: Session, args: JobArgs, error: str, _attempts: int) -> None:
    dataset = session.get(SdiDataset, args["dataset_id"])
    if dataset is not None:
        service.mark_failed(session, dataset, error)


@task("sdi.build", timeout_s=6 * 3600, on_failure=_build_failed)
async def build(ctx: JobContext, args: JobArgs) -> dict[str, Any] | None:
    return await asyncio.to_thread(_build, ctx, int(args["dataset_id"]))


def _build(ctx: JobContext, dataset_id: int) -> dict[str, Any] | None:
    result: PipelineResult | None = None
    error = ""
    # Read and compute (model calls included) first; store in one short write afterwards.
    with session_scope() as session:
        dataset = session.get(SdiDataset, dataset_id)
        if dataset is None or dataset.status not in (SdiStatus.queued, SdiStatus.building):
            return {"skipped": True}
        try:
            result = service.compute_build(session, dataset)
        except (service.SdiError, LeakageError, GeneralDataError) as exc:
            error = str(exc)
    with write_transaction() as session:
        dataset = session.get(SdiDataset, dataset_id)
        if dataset is None:
            return {"skipped": True}
        if result is None:
            service.mark_failed(session, dataset, error)
        else:
            service.store_build(session, dataset, result)
        ctx.finish_in(session, {"status": dataset.status})
    return None


def _fine_tune_failed(session: Session, args: JobArgs, error: str, _attempts: int) -> None:
    fine_tune = session.get(SdiFineTune, args["fine_tune_id"])
    if fine_tune is not None and fine_tune.status in finetuning.ACTIVE:
        finetuning.fail(session, fine_tune, error)


@task("sdi.finetune", timeout_s=600, on_failure=_fine_tune_failed)
async def follow_fine_tune(ctx: JobContext, args: JobArgs) -> dict[str, Any] | None:
    fine_tune_id = int(args["fine_tune_id"])
    step = await asyncio.to_thread(_plan, fine_tune_id)
    if step is None:
        return {"ended": True}
    try:
        outcome = await asyncio.to_thread(finetuning.call_provider, step)
    except LlmError as exc:
        if exc.retryable:
            raise RetryLater(str(exc), delay_s=exc.retry_after) from None
        outcome = finetuning.Outcome(error=str(exc))
    # Uploading and creating are followed at once by the next step; polling waits.
    polling = bool(step.provider_job_id)
    await asyncio.to_thread(_record, ctx, args, outcome, polling)
    return None


def _plan(fine_tune_id: int) -> finetuning.Step | None:
    with session_scope() as session:
        try:
            return finetuning.plan(session, fine_tune_id)
        except LlmError as exc:
            fine_tune = session.get(SdiFineTune, fine_tune_id)
            if fine_tune is not None:
                finetuning.fail(session, fine_tune, str(exc))
            return None


def _record(ctx: JobContext, args: JobArgs, outcome: finetuning.Outcome, polling: bool) -> None:
    with write_transaction() as session:
        fine_tune_id = int(args["fine_tune_id"])
        ended = finetuning.apply(session, fine_tune_id, outcome)
        if not ended:
            fine_tune = session.get(SdiFineTune, fine_tune_id)
            delay = float(args.get("poll_s", finetuning.POLL_INTERVAL_S)) if polling else 0.0
            enqueue(
                session,
                "sdi.finetune",
                dict(args),
                group_key=f"sdi:{fine_tune.dataset_id if fine_tune else ''}",
                run_at=utcnow() + timedelta(seconds=delay),
            )
        ctx.finish_in(session, {"ended": ended})
