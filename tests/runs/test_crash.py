"""A worker process killed with SIGKILL mid-run, then started again: every reply slot is
filled exactly once. Against the loopback server over real HTTP, with and without faults."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.models import Job, PromptVariant, Reply
from tests.loopback.server import LoopbackServer
from tests.loopback.state import reply_for
from tests.runs.helpers import replies, run_row, slot_counts, start_run

ROOT = Path(__file__).resolve().parents[2]
WORKER = [
    sys.executable,
    "-m",
    "app.cli",
    "worker",
    "--concurrency",
    "16",
    "--stale-after",
    "2",
    "--heartbeat",
    "0.5",
    "--poll",
    "0.1",
    "--backoff-base",
    "0.05",
    "--backoff-cap",
    "0.5",
]


def _done(engine: Engine, run_id: int) -> int:
    with Session(engine) as s:
        return int(
            s.execute(
                select(func.count()).where(Reply.run_id == run_id, Reply.status == "done")
            ).scalar_one()
        )


def _kill_midway(engine: Engine, run_id: int, total: int) -> int:
    worker = subprocess.Popen(WORKER, cwd=ROOT, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        while _done(engine, run_id) < total // 4:
            assert worker.poll() is None, "the worker exited early"
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    done = _done(engine, run_id)
    assert done < total, "killed too late to test anything"
    with Session(engine) as s:
        doing = s.execute(select(func.count()).where(Job.status == "doing")).scalar_one()
    assert doing > 0, "the killed worker left no job behind"
    return done


def _restart_until_done(engine: Engine) -> None:
    finished = subprocess.run([*WORKER, "--burst"], cwd=ROOT, env=os.environ.copy(), timeout=300)
    assert finished.returncode == 0


def _check_exactly_once(engine: Engine, run_id: int, total: int) -> list[Reply]:
    rows = replies(engine, run_id)
    assert len(rows) == total and set(slot_counts(rows).values()) == {1}
    assert Counter(r.status for r in rows) == {"done": total}
    with Session(engine) as s:
        variants = {v.id: v for v in s.exec(select(PromptVariant)).scalars()}
        jobs = s.exec(select(Job)).scalars().all()
    assert {j.status for j in jobs} == {"succeeded"} and len(jobs) == total
    for r in rows:
        assert r.text == reply_for(variants[r.prompt_variant_id].messages)
        assert r.transcript[-1]["content"] == r.text and r.completed_at is not None
    run = run_row(engine, run_id)
    assert run.status == "completed"
    return rows


def test_sigkill_mid_run_then_restart(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    loopback_server.configure(latency_s=0.05)
    run_id = start_run(committed_db, loopback_server.base_url, questions=75, samples=2)
    total = 75 * 2 * 2
    _kill_midway(committed_db, run_id, total)
    _restart_until_done(committed_db)
    _check_exactly_once(committed_db, run_id, total)
    # Calls cut off by the kill were made again; nothing else was.
    assert total <= loopback_server.stats()["calls"]["chat"] <= total + 16


@pytest.mark.slow
def test_2000_prompts_with_faults_and_a_sigkill(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    loopback_server.configure(
        latency_s=0.01,
        retry_after=0.2,
        timeout_sleep_s=2.0,
        fault_seed=11,
        fault_rates={"429": 0.03, "503": 0.01, "500": 0.03, "timeout": 0.01, "malformed": 0.02},
    )
    run_id = start_run(
        committed_db,
        loopback_server.base_url,
        questions=500,
        kinds=(("neutral", "none", ""), ("biased", "asserts", "")),
        model_fields={"timeout_s": 0.5, "max_concurrency": 16},
    )  # 500 statements x 2 templates x 2 arms = 2,000 reply slots
    total = 2000
    _kill_midway(committed_db, run_id, total)
    _restart_until_done(committed_db)
    rows = _check_exactly_once(committed_db, run_id, total)
    faults = loopback_server.stats()["faults"]
    assert all(faults.get(name, 0) > 0 for name in ("429", "503", "500", "timeout", "malformed"))
    assert sum(r.attempts > 1 for r in rows) > 0  # some slots needed more than one attempt
