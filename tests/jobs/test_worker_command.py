"""`sdilab worker` as a real process: it waits for work, collects a run queued after it started
(against the loopback server), and on SIGTERM finishes the calls it has in flight, gives
back the jobs it had not started, and exits 0."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.models import Job, Reply
from tests.loopback.server import LoopbackServer
from tests.runs.helpers import replies, run_row, start_run

ROOT = Path(__file__).resolve().parents[2]
WORKER = [sys.executable, "-m", "app.cli", "worker", "--concurrency", "4", "--poll", "0.1"]


def _job_counts(engine: Engine) -> Counter[str]:
    with Session(engine) as s:
        rows = s.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    return Counter({status: int(n) for status, n in rows})


def _wait_for(
    condition: Callable[[], bool], what: str, worker: "subprocess.Popen[str]", timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert worker.poll() is None, f"the worker exited before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_worker_collects_a_queued_run_and_stops_gracefully_on_sigterm(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    worker = subprocess.Popen(
        WORKER, cwd=ROOT, env=os.environ.copy(), stderr=subprocess.PIPE, text=True
    )
    try:
        # Queued while the worker idles: it finds the jobs at a poll.
        first = start_run(committed_db, loopback_server.base_url, questions=3)
        _wait_for(
            lambda: run_row(committed_db, first).status == "completed",
            "the first run to complete",
            worker,
            120,
        )
        assert {r.status for r in replies(committed_db, first)} == {"done"}
        assert worker.poll() is None, "a worker without --burst keeps waiting for work"

        # Slow calls: SIGTERM arrives while some are in flight and others wait in the queue.
        loopback_server.configure(latency_s=1.0)
        second = start_run(committed_db, loopback_server.base_url, questions=10)
        _wait_for(lambda: _job_counts(committed_db)["doing"] > 0, "jobs in flight", worker, 60)
        worker.send_signal(signal.SIGTERM)
        _out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    assert "worker done:" in err
    counts = _job_counts(committed_db)
    assert counts["doing"] == 0, counts  # every job it held was finished or given back
    assert counts["todo"] > 0, counts  # the run was stopped, not drained
    assert counts["failed"] == 0, counts
    with Session(committed_db) as s:
        done = s.execute(
            select(func.count()).where(Reply.run_id == second, Reply.status == "done")
        ).scalar_one()
    # Calls in flight at the signal were completed and stored; none was stored twice.
    assert done >= 1 and done == counts["succeeded"] - 3 * 2
    assert run_row(committed_db, second).status == "running"
