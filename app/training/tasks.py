"""The background job that trains: ``training.train`` with {"training_run_id": id}."""

import asyncio
import threading
from typing import Any

from app.jobs.errors import PermanentFailure
from app.jobs.registry import JobContext, task
from app.training import schemas as training_schemas
from app.training import service

WEEK_S = 7 * 24 * 3600.0


def _on_failure(session: Any, args: dict[str, Any], error: str, _attempts: int) -> None:
    service.mark_failed(session, int(args["training_run_id"]), error)


# One training at a time per worker: it takes every core it is given.
@task(service.TASK, timeout_s=WEEK_S, on_failure=_on_failure)
async def train(ctx: JobContext, args: dict[str, Any]) -> dict[str, Any]:
    stop = threading.Event()
    try:
        return await asyncio.to_thread(
            service.execute,
            int(args["training_run_id"]),
            cancel_event=stop,
            heartbeat=ctx.heartbeat,
        )
    except asyncio.CancelledError:  # the worker is stopping: end the loop at its next step
        stop.set()
        raise
    except training_schemas.TrainingError as exc:  # already recorded on the run
        raise PermanentFailure(str(exc)) from None
