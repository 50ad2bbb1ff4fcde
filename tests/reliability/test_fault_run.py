"""A 2,000-prompt run against the loopback server with a fault mix (20 % 429 with
Retry-After, 5 % 500, 2 % timeouts, 1 % malformed bodies, plus 0.5 % 401 that no retry
cures) while the worker process is killed with SIGKILL ten times at seeded random moments and
restarted. The run finishes with exactly one reply per prompt x arm x sample; every failed
reply shows its error and a retry (through the web page) completes it.

Builds on tests/runs/test_crash.py (same worker command and checks)."""

import os
import random
import signal
import subprocess
import time
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.main import create_app
from tests import factories
from tests.loopback.server import LoopbackServer
from tests.runs.helpers import replies, run_row, slot_counts, start_run
from tests.runs.test_crash import ROOT, WORKER, _check_exactly_once, _done, _restart_until_done

KILLS = 10
TOTAL = 2000


def _kill_repeatedly(engine: Engine, run_id: int, rng: random.Random) -> list[int]:
    """Start a worker and SIGKILL it once the run reaches a seeded random point (plus a random
    fraction of a second), ten times. Returns the replies done after each kill."""
    targets = [t * 100 + rng.randint(0, 40) for t in sorted(rng.sample(range(1, 19), KILLS))]
    progress = []
    for target in targets:
        worker = subprocess.Popen(WORKER, cwd=ROOT, env=os.environ.copy())
        try:
            deadline = time.monotonic() + 120
            while _done(engine, run_id) < target:
                assert worker.poll() is None, "the worker exited before it was killed"
                assert time.monotonic() < deadline, "the worker made no progress"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.5))
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        progress.append(_done(engine, run_id))
    return progress


@pytest.mark.slow
def test_2000_prompts_fault_mix_and_ten_sigkills(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    loopback_server.configure(
        latency_s=0.01,
        retry_after=0.2,
        timeout_sleep_s=1.5,
        fault_seed=2026,
        fault_rates={"429": 0.20, "500": 0.05, "timeout": 0.02, "malformed": 0.01, "401": 0.005},
    )
    run_id = start_run(
        committed_db,
        loopback_server.base_url,
        questions=500,
        kinds=(("neutral", "none", ""), ("biased", "asserts", "")),
        model_fields={"timeout_s": 0.5, "max_concurrency": 16},
    )  # 500 statements x 2 templates x 2 arms = 2,000 reply slots
    progress = _kill_repeatedly(committed_db, run_id, random.Random(7))
    assert progress[-1] < TOTAL, "the last kill came after the end"
    assert len(set(progress)) == KILLS, "two kills at the same point"
    _restart_until_done(committed_db)

    rows = replies(committed_db, run_id)
    assert len(rows) == TOTAL and set(slot_counts(rows).values()) == {1}
    statuses = Counter(r.status for r in rows)
    assert set(statuses) == {"done", "failed"}, statuses
    failed = [r for r in rows if r.status == "failed"]
    assert all(r.error for r in failed), "a failed reply without its error"
    assert run_row(committed_db, run_id).status != "running"
    faults = loopback_server.stats()["faults"]
    assert all(faults.get(n, 0) > 0 for n in ("429", "500", "timeout", "malformed", "401"))

    # Retry from the run page once the server behaves: every failed reply completes.
    loopback_server.configure(fault_rates={})
    with Session(committed_db, expire_on_commit=False) as s:
        admin = factories.make_user(s, role="admin")
        s.commit()
    with TestClient(create_app()) as client:
        factories.login(client, admin)
        page = client.get(f"/runs/{run_id}")
        assert page.status_code == 200 and str(len(failed)) in page.text
        retried = client.post(f"/runs/{run_id}/retry", follow_redirects=False)
        assert retried.status_code in (200, 303)
    _restart_until_done(committed_db)
    _check_exactly_once(committed_db, run_id, TOTAL)
    print(
        f"\nfault run: {TOTAL} slots, {KILLS} SIGKILLs (done after each: {progress}), "
        f"faults {faults}, {len(failed)} failed then retried"
    )
