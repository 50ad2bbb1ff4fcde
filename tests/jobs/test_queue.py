"""The queue against a real database (SQLite, or Postgres with SDILAB_TEST_DATABASE_URL)."""

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.db import session_scope
from app.jobs import claims, queue, registry
from app.jobs.worker import Worker
from app.models import Job, utcnow
from tests.jobs import tasks_for_tests as t


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    t.reset()


def add(engine: Engine, task: str, args: dict[str, Any], **kw: Any) -> int:
    with session_scope(engine) as s:
        job = queue.enqueue(s, task, args, **kw)
        assert job.id is not None
        return job.id


def job(engine: Engine, job_id: int) -> Job:
    with Session(engine) as s:
        row = s.get(Job, job_id)
        assert row is not None
        return row


def run_burst(engine: Engine, **kw: Any) -> Worker:
    options: dict[str, Any] = {"poll_interval_s": 0.05, "backoff_base_s": 0.01, "concurrency": 8}
    options.update(kw)
    worker = Worker(engine=engine, burst=True, **options)
    asyncio.run(worker.run())
    return worker


def test_enqueue_is_sent_on_commit_and_lock_key_is_unique(db: Session) -> None:
    job_row = queue.enqueue(db, "test.echo", {"value": 1}, lock_key="k:1", group_key="g")
    assert job_row.id is not None and job_row.status == "todo" and job_row.attempts == 0
    with pytest.raises(IntegrityError):
        queue.enqueue(db, "test.echo", {"value": 2}, lock_key="k:1")


def test_claim_marks_doing_and_skips_future_and_excluded(committed_db: Engine) -> None:
    now_id = add(committed_db, "test.echo", {}, concurrency_key="a")
    other_id = add(committed_db, "test.echo", {}, concurrency_key="b")
    add(committed_db, "test.echo", {}, run_at=utcnow() + timedelta(hours=1))

    claimed = claims.claim(
        committed_db, queue="default", worker_id="w1", limit=10, exclude_keys=["b"]
    )
    assert [c.id for c in claimed] == [now_id]
    assert claimed[0].attempts == 1
    row = job(committed_db, now_id)
    assert (row.status, row.worker_id, row.attempts) == ("doing", "w1", 1)
    assert row.heartbeat_at is not None
    assert [
        c.id for c in claims.claim(committed_db, queue="default", worker_id="w2", limit=10)
    ] == [other_id]
    assert claims.claim(committed_db, queue="default", worker_id="w2", limit=10) == []
    assert claims.claim(committed_db, queue="other", worker_id="w2", limit=10) == []


def test_outcome_needs_ownership(committed_db: Engine) -> None:
    job_id = add(committed_db, "test.echo", {})
    claims.claim(committed_db, queue="default", worker_id="w1", limit=1)
    assert not claims.complete(committed_db, job_id, "someone-else", {"x": 1})
    assert claims.complete(committed_db, job_id, "w1", {"x": 1})
    assert not claims.complete(committed_db, job_id, "w1", {"x": 2})
    row = job(committed_db, job_id)
    assert (row.status, row.result) == ("succeeded", {"x": 1})
    assert row.finished_at is not None


def test_finishing_many_stores_each_result_of_the_jobs_still_owned(committed_db: Engine) -> None:
    ids = [add(committed_db, "test.echo", {}) for _ in range(4)]
    claims.claim(committed_db, queue="default", worker_id="w1", limit=4)
    done = [
        claims.Finished(ids[0], "w1", {"n": 0}),
        claims.Finished(ids[1], "w1", None),
        claims.Finished(ids[2], "someone-else", {"n": 2}),  # not its job: nothing stored
        claims.Finished(ids[3], "w1", {"n": 3, "nested": [1, {"a": None}]}),
    ]
    with committed_db.begin() as conn:
        outcomes = claims.finish_many(conn, done)
    assert [o is not None for o in outcomes] == [True, True, False, True]
    rows = [job(committed_db, i) for i in ids]
    assert [(r.status, r.result) for r in rows] == [
        ("succeeded", {"n": 0}),
        ("succeeded", None),
        ("doing", None),
        ("succeeded", {"n": 3, "nested": [1, {"a": None}]}),
    ]


def test_worker_runs_jobs_and_stores_results(committed_db: Engine) -> None:
    ids = [add(committed_db, "test.echo", {"value": i}) for i in range(20)]
    worker = run_burst(committed_db)
    assert worker.stats.succeeded == 20
    for i, job_id in enumerate(ids):
        row = job(committed_db, job_id)
        assert row.status == "succeeded"
        assert row.result == {"echo": i, "attempt": 1}
    assert all(t.CALLS[i] == 1 for i in ids)


def test_retry_then_success_counts_attempts(committed_db: Engine) -> None:
    a = add(committed_db, "test.flaky", {"fail_times": 2, "how": "retry"})
    b = add(committed_db, "test.flaky", {"fail_times": 1, "how": "crash"})
    run_burst(committed_db)
    ra, rb = job(committed_db, a), job(committed_db, b)
    assert (ra.status, ra.attempts, ra.result) == ("succeeded", 3, {"ok": 3})
    assert (rb.status, rb.attempts) == ("succeeded", 2)
    assert ra.last_error == "" and rb.last_error == ""


def _run_once(engine: Engine, worker: Worker, job_id: int) -> None:
    """Claim and run exactly one attempt of a job with ``worker``'s policies."""
    (claimed,) = claims.claim(engine, queue="default", worker_id=worker.worker_id, limit=1)
    assert claimed.id == job_id
    asyncio.run(worker._execute(claimed, registry.get(claimed.task)))


def test_retry_after_is_honoured(committed_db: Engine) -> None:
    job_id = add(committed_db, "test.flaky", {"fail_times": 1, "how": "retry", "delay_s": 30})
    worker = Worker(engine=committed_db, backoff_base_s=0.01)
    before = utcnow()
    _run_once(committed_db, worker, job_id)
    row = job(committed_db, job_id)
    assert row.status == "todo" and row.attempts == 1 and row.worker_id == ""
    assert row.last_error == "try again"
    assert row.scheduled_at >= before + timedelta(seconds=30)
    assert row.scheduled_at <= utcnow() + timedelta(seconds=31.5)


def test_backoff_grows_exponentially_with_full_jitter() -> None:
    import random

    rng = random.Random(1)
    for attempt in range(1, 8):
        cap = min(60.0, 1.0 * 2 ** (attempt - 1))
        draws = [claims.backoff_delay(attempt, base_s=1.0, cap_s=60.0, rng=rng) for _ in range(200)]
        assert all(0 <= d <= cap for d in draws)
        assert max(draws) > cap * 0.8  # full jitter spans the whole window
        assert min(draws) < cap * 0.2


def test_unexpected_error_backs_off(committed_db: Engine) -> None:
    job_id = add(committed_db, "test.flaky", {"fail_times": 1, "how": "crash"})
    worker = Worker(engine=committed_db, backoff_base_s=100, backoff_cap_s=100, seed=3)
    before = utcnow()
    _run_once(committed_db, worker, job_id)
    row = job(committed_db, job_id)
    assert row.status == "todo"
    assert row.last_error == "RuntimeError: boom"
    assert before <= row.scheduled_at <= utcnow() + timedelta(seconds=100)


def test_attempt_cap_fails_the_job_and_calls_the_hook(committed_db: Engine) -> None:
    job_id = add(committed_db, "test.flaky", {"fail_times": 99, "how": "crash"}, max_attempts=3)
    with session_scope(committed_db) as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(args={"fail_times": 99, "how": "crash", "mark_job": job_id})
        )
    run_burst(committed_db)
    row = job(committed_db, job_id)
    assert row.status == "failed" and row.attempts == 3
    assert "RuntimeError: boom" in row.last_error and "gave up after 3" in row.last_error
    assert t.CALLS[job_id] == 3
    assert len(t.FAILURES) == 1 and t.FAILURES[0][2] == 3
    assert row.result == {"hook": row.last_error}  # the hook wrote in the same transaction


def test_permanent_failure_does_not_retry(committed_db: Engine) -> None:
    job_id = add(committed_db, "test.flaky", {"fail_times": 5, "how": "permanent"})
    run_burst(committed_db)
    row = job(committed_db, job_id)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "bad input")
    assert t.CALLS[job_id] == 1


def test_timeout_is_retried_then_fails(committed_db: Engine) -> None:
    job_id = add(committed_db, "test.slow", {"sleep": 5}, max_attempts=2)
    run_burst(committed_db)
    row = job(committed_db, job_id)
    assert row.status == "failed" and row.attempts == 2
    assert "timed out after 0.2 s" in row.last_error


def test_unknown_task_fails(committed_db: Engine) -> None:
    job_id = add(committed_db, "test.nope", {})
    run_burst(committed_db)
    row = job(committed_db, job_id)
    assert row.status == "failed" and "unknown task" in row.last_error


def test_stale_jobs_return_to_the_queue(committed_db: Engine) -> None:
    a = add(committed_db, "test.echo", {"value": "a"})
    b = add(committed_db, "test.echo", {"value": "b"}, max_attempts=1)
    claims.claim(committed_db, queue="default", worker_id="dead-worker", limit=2)
    with session_scope(committed_db) as s:
        s.execute(update(Job).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
    worker = run_burst(committed_db, stale_after_s=60)
    assert worker.stats.recovered == 2
    ra, rb = job(committed_db, a), job(committed_db, b)
    # a's first attempt counted; it ran again and succeeded. b had no attempt left.
    assert (ra.status, ra.attempts, ra.result) == ("succeeded", 2, {"echo": "a", "attempt": 2})
    assert rb.status == "failed" and "stopped heart-beating" in rb.last_error


def test_fresh_heartbeat_is_not_stale(committed_db: Engine) -> None:
    job_id = add(committed_db, "test.echo", {})
    claims.claim(committed_db, queue="default", worker_id="alive", limit=1)
    with session_scope(committed_db) as s:
        assert claims.stale_jobs(s, stale_after_s=60) == []
    assert claims.heartbeat(committed_db, "alive") == 1
    assert job(committed_db, job_id).status == "doing"


def test_per_key_limits(committed_db: Engine) -> None:
    for _ in range(12):
        add(
            committed_db,
            "test.limited",
            {"key": "m1"},
            concurrency_key="model:1",
            concurrency_limit=2,
        )
        add(
            committed_db,
            "test.limited",
            {"key": "m2"},
            concurrency_key="model:2",
            concurrency_limit=5,
        )
    t.PEAK.clear()
    run_burst(committed_db, concurrency=16)
    assert t.PEAK["m1"] == 2
    assert 2 < t.PEAK["m2"] <= 5
    with Session(committed_db) as s:
        assert {j.status for j in s.exec(select(Job)).all()} == {"succeeded"}


def test_group_cancel_resume_and_retry_failed(db: Session) -> None:
    ids = [queue.enqueue(db, "test.echo", {}, group_key="run:1").id for _ in range(3)]
    other = queue.enqueue(db, "test.echo", {}, group_key="run:2")
    db.execute(update(Job).where(Job.id == ids[0]).values(status="failed", attempts=6))
    assert queue.cancel_group(db, "run:1") == 2
    assert queue.group_counts(db, "run:1") == {"failed": 1, "cancelled": 2}
    assert queue.resume_group(db, "run:1") == 2
    assert queue.retry_failed(db, "run:1") == 1
    db.expire_all()
    rows = [db.get(Job, i) for i in ids]
    assert all(r is not None and r.status == "todo" and r.attempts == 0 for r in rows)
    assert other.status == "todo" and queue.group_counts(db, "run:2") == {"todo": 1}


def test_two_workers_never_run_a_job_twice(committed_db: Engine) -> None:
    ids = [add(committed_db, "test.echo", {"value": i, "sleep": 0.01}) for i in range(300)]
    workers = [
        Worker(engine=committed_db, burst=True, concurrency=8, poll_interval_s=0.02)
        for _ in range(2)
    ]
    threads = [threading.Thread(target=lambda w=w: asyncio.run(w.run())) for w in workers]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert sum(w.stats.succeeded for w in workers) == 300
    assert all(w.stats.succeeded > 0 for w in workers), "both workers took jobs"
    assert all(t.CALLS[i] == 1 for i in ids)
    with Session(committed_db) as s:
        rows = s.exec(select(Job)).all()
    assert {r.status for r in rows} == {"succeeded"}
    assert {r.attempts for r in rows} == {1}


def test_graceful_stop_finishes_running_and_releases_prefetched(committed_db: Engine) -> None:
    ids = [add(committed_db, "test.echo", {"sleep": 0.3}) for _ in range(10)]

    async def main() -> Worker:
        worker = Worker(engine=committed_db, concurrency=2, poll_interval_s=0.05)
        runner = asyncio.create_task(worker.run())
        await asyncio.sleep(0.15)
        worker.stop()
        await runner
        return worker

    worker = asyncio.run(main())
    rows = [job(committed_db, i) for i in ids]
    done = [r for r in rows if r.status == "succeeded"]
    assert len(done) == worker.stats.succeeded == 2
    assert all(r.status == "todo" and r.attempts == 0 for r in rows if r.status != "succeeded")
