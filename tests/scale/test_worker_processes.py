"""Three `sdilab worker` processes on one run share the model's limit of 4: the loopback
server never sees more than 4 calls at once (and sees 4), though the workers could run 6
together, and every reply slot is filled exactly once, with faults that make jobs retry."""

import re
import subprocess
from collections import Counter

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.db import session_scope
from app.models import Job
from app.runs import service
from app.runs.schemas import ArmCreate, RunCreate
from tests import factories
from tests.loopback.server import LoopbackServer
from tests.loopback.state import reply_for
from tests.runs.helpers import replies, run_row, slot_counts
from tests.scale.processes import ROOT, SDILAB, stop

pytestmark = pytest.mark.slow
LIMIT = 4
PER_WORKER = 2  # three workers could run 6 at once; the model allows 4
PROMPTS = 150


def one_arm_run(engine: Engine, base_url: str) -> int:
    with session_scope(engine) as s:
        qs = factories.make_question_set(s, n=PROMPTS)
        template = factories.make_template(s)
        model = factories.make_model_config(
            s, base_url=base_url, max_concurrency=LIMIT, timeout_s=5.0
        )
        run = service.create_run(
            s,
            RunCreate(
                question_set_id=qs.id or 0,
                template_ids=[template.id or 0],
                arms=[ArmCreate(model_config_id=model.id or 0, label="baseline")],
            ),
        )
        assert run.id is not None
        return run.id


def test_three_worker_processes_share_one_model_limit(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    loopback_server.configure(
        latency_s=0.1, retry_after=0.1, fault_seed=3, fault_rates={"429": 0.05, "500": 0.03}
    )
    run_id = one_arm_run(committed_db, loopback_server.base_url)
    command = [
        *SDILAB,
        "worker",
        "--burst",
        "--concurrency",
        str(PER_WORKER),
        "--poll",
        "0.05",
        "--heartbeat",
        "0.5",
        "--backoff-base",
        "0.05",
        "--backoff-cap",
        "0.2",
    ]
    workers = [
        subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True) for _ in range(3)
    ]
    try:
        outputs = [w.communicate(timeout=120)[1] for w in workers]
    finally:
        for w in workers:
            stop(w)
    assert [w.returncode for w in workers] == [0, 0, 0], outputs

    stats = loopback_server.stats()
    assert stats["max_in_flight"] == LIMIT
    assert sum(stats["faults"].values()) > 0, "no fault was injected: nothing was retried"

    rows = replies(committed_db, run_id)
    assert len(rows) == PROMPTS and set(slot_counts(rows).values()) == {1}
    assert Counter(r.status for r in rows) == {"done": PROMPTS}
    with Session(committed_db) as s:
        jobs = s.exec(select(Job)).all()
    assert len(jobs) == PROMPTS and {j.status for j in jobs} == {"succeeded"}
    for row in rows:
        assert row.text == reply_for(row.transcript[:-1])
    assert run_row(committed_db, run_id).status == "completed"

    done = [int(m.group(1)) for m in (re.search(r"(\d+) succeeded", o) for o in outputs) if m]
    assert sum(done) == PROMPTS
    assert sum(1 for n in done if n > 0) >= 2, f"the work was not shared: {done}"
