"""Per-key concurrency limits hold over every worker: the count of doing jobs is the lease."""

import asyncio
import threading
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.jobs import claims
from app.jobs.worker import Worker
from app.models import Job
from tests.jobs import tasks_for_tests as t
from tests.jobs.test_queue import add


def _limited(engine: Engine, n: int, limit: int, key: str = "model:9") -> list[int]:
    return [
        add(
            engine,
            "test.limited",
            {"key": key},
            concurrency_key=key,
            concurrency_limit=limit,
        )
        for _ in range(n)
    ]


def _doing(engine: Engine, key: str) -> int:
    with Session(engine) as s:
        return int(
            s.execute(
                select(func.count()).where(Job.status == "doing", Job.concurrency_key == key)
            ).scalar_one()
        )


def test_a_key_limit_holds_across_claimers(committed_db: Engine) -> None:
    _limited(committed_db, 10, limit=3)
    full: set[str] = set()
    first = claims.claim(committed_db, queue="default", worker_id="w1", limit=10, saturated=full)
    assert len(first) == 3 and full == {"model:9"}
    assert claims.claim(committed_db, queue="default", worker_id="w2", limit=10) == []
    assert claims.complete(committed_db, first[0].id, "w1")
    second = claims.claim(committed_db, queue="default", worker_id="w2", limit=10)
    assert len(second) == 1 and second[0].attempts == 1
    assert _doing(committed_db, "model:9") == 3


def test_a_retried_or_released_job_frees_its_slot(committed_db: Engine) -> None:
    _limited(committed_db, 4, limit=2)
    a, b = claims.claim(committed_db, queue="default", worker_id="w1", limit=10)
    with Session(committed_db) as s:
        assert claims.reschedule(s, a.id, "w1", "try later", 3600)
        s.commit()
    assert claims.release(committed_db, [b.id], "w1", started=False) == 1
    again = claims.claim(committed_db, queue="default", worker_id="w2", limit=10)
    assert len(again) == 2 and a.id not in {j.id for j in again}


def test_limited_room_caps_the_limited_jobs_but_not_the_others(committed_db: Engine) -> None:
    _limited(committed_db, 5, limit=5)
    plain = [add(committed_db, "test.echo", {}) for _ in range(3)]
    jobs = claims.claim(committed_db, queue="default", worker_id="w1", limit=20, limited_room=2)
    limited = [j for j in jobs if j.task == "test.limited"]
    assert len(limited) == 2
    assert sorted(j.id for j in jobs if j.task == "test.echo") == plain


def test_a_full_key_excluded_lets_other_jobs_through(committed_db: Engine) -> None:
    _limited(committed_db, 30, limit=2)
    other = _limited(committed_db, 3, limit=3, key="model:10")
    full: set[str] = set()
    claims.claim(committed_db, queue="default", worker_id="w1", limit=5, saturated=full)
    assert full == {"model:9"}
    # The oldest five are all of the full key: a claim excluding it reaches the others.
    jobs = claims.claim(
        committed_db, queue="default", worker_id="w2", limit=5, exclude_keys=sorted(full)
    )
    assert [j.id for j in jobs] == other


def test_concurrent_claims_never_exceed_the_limit(committed_db: Engine) -> None:
    """Eight claimers at once, round after round: exact on Postgres too (advisory lock)."""
    _limited(committed_db, 120, limit=5)
    errors: list[BaseException] = []
    for round_ in range(6):
        barrier = threading.Barrier(8)

        def claim(i: int, round_: int = round_, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                claims.claim(committed_db, queue="default", worker_id=f"w{round_}.{i}", limit=4)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=30)
        assert not errors, errors
        assert _doing(committed_db, "model:9") == 5
        with Session(committed_db) as s:  # free two slots for the next round
            doing = s.exec(select(Job).where(Job.status == "doing").limit(2)).all()
        for job in doing:
            assert claims.complete(committed_db, job.id or 0, job.worker_id)


def test_two_workers_share_one_limit(committed_db: Engine) -> None:
    ids = _limited(committed_db, 60, limit=3)
    t.PEAK.clear()
    options: dict[str, Any] = {"burst": True, "concurrency": 8, "poll_interval_s": 0.02}
    workers = [Worker(engine=committed_db, **options) for _ in range(2)]
    threads = [threading.Thread(target=lambda w=w: asyncio.run(w.run())) for w in workers]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert sum(w.stats.succeeded for w in workers) == 60
    assert all(t.CALLS[i] == 1 for i in ids)
    # Each worker alone would allow 3; together they never ran more than 3 at once.
    assert t.PEAK["model:9"] == 3


def test_finishing_hands_the_slot_to_the_next_job_of_the_key(committed_db: Engine) -> None:
    ids = _limited(committed_db, 4, limit=2)
    lower = add(
        committed_db,
        "test.limited",
        {"key": "model:9"},
        concurrency_key="model:9",
        concurrency_limit=1,
    )
    a, b = claims.claim(committed_db, queue="default", worker_id="w1", limit=10)
    to = claims.HandOff("default", "model:9", 2)
    handed = claims.finish(committed_db, claims.Finished(a.id, "w1", None, to))
    assert handed is not None and [j.id for j in handed] == [ids[2]]
    assert handed[0].attempts == 1 and _doing(committed_db, "model:9") == 2
    # Not this worker's job any more: nothing is finished, nothing handed.
    assert claims.finish(committed_db, claims.Finished(b.id, "w2", None, to)) is None
    assert claims.finish(committed_db, claims.Finished(b.id, "w1", None, to)) == [
        claims.ClaimedJob(ids[3], "test.limited", {"key": "model:9"}, 1, 6, "model:9", 2)
    ]
    # A job of the key with a lower limit is not handed a slot of a higher-limit one.
    assert claims.finish(committed_db, claims.Finished(ids[2], "w1", None, to)) == []
    assert job_status(committed_db, lower) == "todo"


def job_status(engine: Engine, job_id: int) -> str:
    with Session(engine) as s:
        row = s.get(Job, job_id)
        assert row is not None
        return row.status
