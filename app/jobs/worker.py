"""An asyncio worker: claims jobs in batches, runs their handlers with per-key limits,
records outcomes, beats for its jobs, and returns other workers' stale jobs to the queue."""

import asyncio
import contextlib
import gc
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from app.db import get_engine, write_transaction
from app.jobs import claims, queue, registry
from app.jobs.errors import PermanentFailure, RetryLater, Snooze
from app.jobs.registry import JobContext, TaskSpec

log = logging.getLogger("sdilab.worker")
DEFAULT_TIMEOUT_S = 600.0


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class WorkerStats:
    succeeded: int = 0
    retried: int = 0
    failed: int = 0
    recovered: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    by_task: Counter[str] = field(default_factory=Counter)


class Worker:
    def __init__(
        self,
        *,
        engine: Engine | None = None,
        queue_name: str = "default",
        concurrency: int = 32,
        burst: bool = False,
        poll_interval_s: float = 0.5,
        heartbeat_s: float = 5.0,
        stale_after_s: float = 60.0,
        backoff_base_s: float = 2.0,
        backoff_cap_s: float = 300.0,
        shutdown_grace_s: float = 30.0,
        worker_id: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.engine = engine or get_engine()
        self.queue = queue_name
        self.concurrency = max(1, concurrency)
        # Jobs claimed ahead of a free slot, so a finishing job is replaced without a query.
        self.prefetch = max(2, self.concurrency // 4)
        self.burst = burst
        self.poll_interval_s = poll_interval_s
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.shutdown_grace_s = shutdown_grace_s
        self.worker_id = worker_id or new_worker_id()
        self.stats = WorkerStats()
        self._rng = random.Random(seed)
        self._ready: deque[claims.ClaimedJob] = deque()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._key_running: Counter[str] = Counter()
        self._key_limit: dict[str, int] = {}
        # Keys found full over all workers, excluded from claims until the time given (or
        # until one of this worker's jobs of the key finishes and frees a slot).
        self._full_until: dict[str, float] = {}
        self._limited_keys: set[str] = set()
        self._queue_busy = False  # the last claim saw due jobs: skip the idle-poll read
        self._wake = asyncio.Event()
        self._stopping = False
        self._next_claim = 0.0
        self._next_recovery = 0.0
        self._beat_stop = threading.Event()

    # -- public ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Graceful stop: claim nothing more, let running jobs finish."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> WorkerStats:
        registry.discover()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        beat = threading.Thread(target=self._beat_loop, name="sdilab-heartbeat", daemon=True)
        beat.start()
        try:
            await self._loop()
        finally:
            await self._shutdown()
            self._beat_stop.set()
            beat.join(timeout=5)
            self.stats.cpu_s = time.process_time() - cpu0
            self.stats.wall_s = time.perf_counter() - wall0
        return self.stats

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)

    # -- main loop ------------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            if now >= self._next_recovery:
                self._recover()
                self._next_recovery = now + max(1.0, self.stale_after_s / 2)
            self._dispatch()
            held = len(self._running) + len(self._ready)
            want = self.concurrency + self.prefetch - held
            idle_slot = len(self._running) < self.concurrency and not self._ready
            if (want >= self.prefetch // 2 or idle_slot) and want > 0 and now >= self._next_claim:
                full: set[str] = set()
                jobs = claims.claim(
                    self.engine,
                    queue=self.queue,
                    worker_id=self.worker_id,
                    limit=want,
                    exclude_keys=self._saturated_keys(now),
                    limited_room=self.concurrency - held,
                    saturated=full,
                    check_first=not self._queue_busy,
                )
                self._queue_busy = bool(jobs or full)
                for key in full:
                    self._full_until[key] = now + self.poll_interval_s
                self._limited_keys.update(full)
                self._limited_keys.update(
                    j.concurrency_key for j in jobs if j.concurrency_limit is not None
                )
                if jobs:
                    self._ready.extend(jobs)
                    self._dispatch()
                    if len(jobs) == want:
                        continue
                self._next_claim = now + self.poll_interval_s
            idle = not self._running and not self._ready
            if self.burst and idle and not queue.has_work(self.engine, self.queue):
                return
            self._wake.clear()
            timeout = max(0.01, self._next_claim - time.monotonic())
            if self._running and not idle_slot:
                timeout = self.poll_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _limit(self, job: claims.ClaimedJob) -> int:
        key = job.concurrency_key
        if not key:
            return self.concurrency
        if key not in self._key_limit:
            self._key_limit[key] = max(1, job.concurrency_limit or self.concurrency)
        return self._key_limit[key]

    def _saturated_keys(self, now: float) -> list[str]:
        waiting = Counter(j.concurrency_key for j in self._ready)
        local = {
            key
            for key, limit in self._key_limit.items()
            if key and self._key_running[key] + waiting[key] >= limit
        }
        for key, until in list(self._full_until.items()):
            if until <= now:
                del self._full_until[key]
        return sorted(local | self._full_until.keys())

    def _dispatch(self) -> None:
        if not self._ready or len(self._running) >= self.concurrency:
            return
        kept: deque[claims.ClaimedJob] = deque()
        while self._ready:
            job = self._ready.popleft()
            spec = registry.get(job.task)
            if len(self._running) < self.concurrency and (
                self._key_running[job.concurrency_key] < self._limit(job)
            ):
                self._key_running[job.concurrency_key] += 1
                self._running[job.id] = asyncio.create_task(self._run(job, spec))
            else:
                kept.append(job)
        self._ready = kept

    # -- one job --------------------------------------------------------------------------

    async def _run(self, job: claims.ClaimedJob, spec: TaskSpec | None) -> None:
        successors: list[claims.ClaimedJob] = []
        try:
            successors = await self._execute(job, spec)
        except Exception:  # recording an outcome failed: the job goes stale and is recovered
            log.exception("job %s: could not record its outcome", job.id)
        finally:
            self._running.pop(job.id, None)
            self._key_running[job.concurrency_key] -= 1
            if successors and self._stopping:
                claims.release(
                    self.engine, [j.id for j in successors], self.worker_id, started=False
                )
            elif successors:  # they hold the slot this job held: first in line
                self._ready.extendleft(reversed(successors))
            elif job.concurrency_key in self._limited_keys:
                # A global slot is free (its outcome is recorded): claim for it now.
                self._full_until.pop(job.concurrency_key, None)
                self._next_claim = 0.0
            if not self._stopping:
                self._dispatch()  # a prefetched job takes the slot at once
            self._wake.set()

    async def _execute(
        self, job: claims.ClaimedJob, spec: TaskSpec | None
    ) -> list[claims.ClaimedJob]:
        """Run the job and record its outcome; return the jobs handed its slot, if any."""
        if spec is None:
            self._fail(job, None, f"unknown task {job.task!r}")
            return []
        limit = job.concurrency_limit
        ctx = JobContext(
            job_id=job.id,
            task=job.task,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            worker_id=self.worker_id,
            beat=lambda: self._beat_one(job.id),
            hand_off=(
                claims.HandOff(self.queue, job.concurrency_key, limit)
                if limit is not None and not self._stopping
                else None
            ),
        )
        timeout = spec.timeout_s(job.args) if spec.timeout_s else DEFAULT_TIMEOUT_S
        try:
            async with asyncio.timeout(timeout):
                result = await spec.handler(ctx, job.args)
        except Snooze as exc:
            with write_transaction(self.engine) as session:
                claims.reschedule(
                    session, job.id, self.worker_id, str(exc), exc.delay_s, count_attempt=False
                )
        except RetryLater as exc:
            self._retry(job, spec, str(exc) or "retry later", exc.delay_s)
        except PermanentFailure as exc:
            self._fail(job, spec, str(exc) or "permanent failure")
        except TimeoutError:
            self._retry(job, spec, f"timed out after {timeout:g} s", None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("job %s (%s) raised:\n%s", job.id, job.task, traceback.format_exc())
            self._retry(job, spec, f"{type(exc).__name__}: {exc}", None)
        else:
            if not ctx.finished:
                finished = claims.Finished(job.id, self.worker_id, result, ctx.hand_off)
                ctx.successors = claims.finish(self.engine, finished) or []
            self.stats.succeeded += 1
            self.stats.by_task[job.task] += 1
            return ctx.successors
        return []

    def _retry(
        self, job: claims.ClaimedJob, spec: TaskSpec, error: str, delay_s: float | None
    ) -> None:
        if job.attempts >= job.max_attempts:
            self._fail(job, spec, f"{error} (gave up after {job.attempts} attempts)")
            return
        if delay_s is None:
            delay = claims.backoff_delay(
                job.attempts, base_s=self.backoff_base_s, cap_s=self.backoff_cap_s, rng=self._rng
            )
        else:  # the provider's Retry-After, plus a little jitter so retries do not stampede
            delay = delay_s + self._rng.uniform(0.0, min(1.0, 0.1 * delay_s))
        with write_transaction(self.engine) as session:
            claims.reschedule(session, job.id, self.worker_id, error, delay)
        self.stats.retried += 1

    def _fail(self, job: claims.ClaimedJob, spec: TaskSpec | None, error: str) -> None:
        with write_transaction(self.engine) as session:
            owned = claims.mark_failed(session, job.id, self.worker_id, error)
            if owned and spec is not None and spec.on_failure is not None:
                spec.on_failure(session, job.args, error, job.attempts)
        self.stats.failed += 1

    # -- housekeeping ---------------------------------------------------------------------

    def _recover(self) -> None:
        try:
            with write_transaction(self.engine) as session:
                found = claims.stale_jobs(session, self.stale_after_s)
                for stale in found:
                    spec = registry.get(stale.task)
                    if stale.failed and spec is not None and spec.on_failure is not None:
                        error = f"worker stopped heart-beating; gave up after {stale.attempts}"
                        spec.on_failure(session, stale.args, error, stale.attempts)
        except Exception:
            log.exception("stale job recovery failed")
            return
        if found:
            log.info("returned %d stale job(s) to the queue", len(found))
            self.stats.recovered += len(found)

    def _beat_one(self, job_id: int) -> None:
        claims.heartbeat(self.engine, self.worker_id, [job_id])

    def _beat_loop(self) -> None:
        while not self._beat_stop.wait(self.heartbeat_s):
            try:
                claims.heartbeat(self.engine, self.worker_id)
            except Exception:
                log.exception("heartbeat failed")

    async def _shutdown(self) -> None:
        if self._ready:
            claims.release(self.engine, [j.id for j in self._ready], self.worker_id, started=False)
            self._ready.clear()
        if self._running:
            _done, still = await asyncio.wait(
                list(self._running.values()), timeout=self.shutdown_grace_s
            )
            if still:
                ids = [job_id for job_id, t in self._running.items() if t in still]
                for t in still:
                    t.cancel()
                await asyncio.wait(still)
                claims.release(self.engine, ids, self.worker_id, started=True)


_gc_tuned = False


def tune_gc() -> None:
    """For a worker process: move what startup allocated out of the collector's sight and
    collect the young generation less often. A worker allocates many short-lived objects
    per reply (HTTP, JSON); with the default thresholds the cyclic collector costs about
    15 % of its CPU time. Once per process. No full collection first: it costs about 0.1 s
    of CPU in a process that imported the app, to free the little start-up leaves behind."""
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    # The event loop shares the GIL with the batched database threads: hand it over after
    # 1 ms rather than 5, so a reply that arrived is not kept waiting behind a batch.
    sys.setswitchinterval(0.001)


def run_worker(
    *,
    concurrency: int,
    queue_name: str = "default",
    burst: bool = False,
    engine: Engine | None = None,
    **options: Any,
) -> WorkerStats:
    """Run a worker in this thread until stopped (SIGTERM / SIGINT) or, with ``burst``, until
    its queue holds nothing to do."""

    async def main() -> WorkerStats:
        registry.discover()
        tune_gc()
        worker = Worker(
            engine=engine, queue_name=queue_name, concurrency=concurrency, burst=burst, **options
        )
        worker.install_signal_handlers()
        return await worker.run()

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(main())
    return uvloop.run(main())
