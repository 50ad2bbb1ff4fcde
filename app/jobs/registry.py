"""Task names to handlers. The queue knows tasks by name only; domains register theirs in
``app/<domain>/tasks.py`` with ``@task("domain.name")``, and the worker imports those modules."""

import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

import app
from app.jobs.claims import ClaimedJob, Finished, HandOff, finish_many

JobArgs = dict[str, Any]


@dataclass
class JobContext:
    """What a handler knows about the job it runs.

    Handlers open their own ``session_scope()`` / ``write_transaction()``. To store their
    result and finish the job in one transaction, they call ``finish_in(session)`` inside it.
    """

    job_id: int
    task: str
    attempt: int  # 1 for the first try
    max_attempts: int
    worker_id: str
    beat: Callable[[], None] = field(default=lambda: None, repr=False)
    finished: bool = False
    result: dict[str, Any] | None = None
    owned: bool = False  # finishing found the job still this worker's
    # Set by the worker for a job of a limited key: finishing it hands its slot to the next
    # due job of the key, claimed in the same transaction and returned in ``successors``.
    hand_off: HandOff | None = None
    successors: list[ClaimedJob] = field(default_factory=list)

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    def heartbeat(self) -> None:
        """Tell the queue this job is alive (the worker also beats for all its jobs)."""
        self.beat()

    def finish_in(self, session: Any, result: dict[str, Any] | None = None) -> bool:
        """Mark the job succeeded inside the caller's transaction. False if this worker no
        longer owns the job (it was recovered by another worker or cancelled)."""
        finish_all_in(session, [(self, result)])
        return self.owned


def finish_all_in(session: Any, done: list[tuple[JobContext, dict[str, Any] | None]]) -> None:
    """``finish_in`` for several jobs at once (a statement or two), e.g. from a batched
    writer."""
    outcomes = finish_many(
        session, [Finished(c.job_id, c.worker_id, r, c.hand_off) for c, r in done]
    )
    for (ctx, result), successors in zip(done, outcomes, strict=True):
        ctx.finished = True
        ctx.result = result
        ctx.owned = successors is not None
        ctx.successors = successors or []


Handler = Callable[[JobContext, JobArgs], Awaitable[dict[str, Any] | None]]
# Called when a job fails for good, inside the transaction that marks it failed:
# (session, args, error, attempts).
FailureHook = Callable[[Any, JobArgs, str, int], None]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    handler: Handler
    # Whole-handler timeout in seconds (a number, or computed from the job's args).
    timeout_s: Callable[[JobArgs], float] | None = None
    on_failure: FailureHook | None = None


_TASKS: dict[str, TaskSpec] = {}


def task(
    name: str,
    *,
    timeout_s: float | Callable[[JobArgs], float] | None = None,
    on_failure: FailureHook | None = None,
) -> Callable[[Handler], Handler]:
    """Register ``handler`` under ``name``: ``async def handler(ctx, args) -> dict | None``."""

    def decorator(handler: Handler) -> Handler:
        timeout = timeout_s
        if isinstance(timeout, int | float):
            fixed = float(timeout)
            timeout = lambda _args: fixed  # noqa: E731
        _TASKS[name] = TaskSpec(
            name=name, handler=handler, timeout_s=timeout, on_failure=on_failure
        )
        return handler

    return decorator


def get(name: str) -> TaskSpec | None:
    return _TASKS.get(name)


def names() -> list[str]:
    return sorted(_TASKS)


def discover() -> list[str]:
    """Import every ``app.<package>.tasks`` module that exists; return the task names."""
    for info in pkgutil.iter_modules(app.__path__):
        if not info.ispkg:
            continue
        module = f"app.{info.name}.tasks"
        try:
            import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return names()
