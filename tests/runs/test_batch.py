"""Runs through the Batch API against the loopback server's /v1/files and /v1/batches."""

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.models import Job, PromptVariant
from app.runs import service
from tests.loopback.server import LoopbackServer
from tests.loopback.state import reply_for
from tests.runs.helpers import replies, run_row, start_run, work


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "BATCH_POLL_S", 0.1)


def test_batch_run_stores_every_reply(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    loopback_server.configure(batch_delay_s=0.3, batch_line_error_rate=0.25, fault_seed=3)
    run_id = start_run(
        committed_db,
        loopback_server.base_url,
        questions=8,
        kinds=(("neutral", "none", ""), ("pushback", "none", "Are you sure?")),
        use_batch_api=True,
    )
    with Session(committed_db) as s:
        jobs = s.exec(select(Job)).all()
    assert sorted(j.task for j in jobs) == ["runs.batch", "runs.batch"]

    work(committed_db)
    rows = replies(committed_db, run_id)
    assert len(rows) == 8 * 2 * 2 and {r.status for r in rows} == {"done"}
    with Session(committed_db) as s:
        variants = {v.id: v for v in s.exec(select(PromptVariant)).all()}
        jobs = s.exec(select(Job)).all()
    for r in rows:
        variant = variants[r.prompt_variant_id]
        assert r.transcript[: len(variant.messages)] == variant.messages
        if variant.followup:
            assert r.first_text and len(r.transcript) == 4
        else:
            assert r.text == reply_for(variant.messages) and len(r.transcript) == 2
    stats = loopback_server.stats()["calls"]
    assert stats["batches.create"] == 2
    run = run_row(committed_db, run_id)
    assert run.status == "completed"
    states = run.config["batches"]
    assert {s["status"] for s in states.values()} == {"completed"}
    # Pushback slots (two turns) and failed batch lines went through ordinary jobs.
    fallback = sum(s["fallback"] for s in states.values())
    assert fallback == 16 + sum(s["errors"] for s in states.values())
    assert sum(s["errors"] for s in states.values()) > 0
    assert len([j for j in jobs if j.task == "runs.generate"]) == fallback
    assert stats["chat"] == 16 * 2 + sum(s["errors"] for s in states.values())
    assert {j.status for j in jobs} == {"succeeded"}


def test_batch_run_uses_the_cache(committed_db: Engine, loopback_server: LoopbackServer) -> None:
    loopback_server.configure(batch_delay_s=0.1)
    start_run(committed_db, loopback_server.base_url, questions=3)
    work(committed_db)
    calls = loopback_server.stats()["calls"]["chat"]
    run_id = start_run(committed_db, loopback_server.base_url, questions=3, use_batch_api=True)
    work(committed_db)
    rows = replies(committed_db, run_id)
    assert {r.status for r in rows} == {"done"} and all(r.from_cache for r in rows)
    stats = loopback_server.stats()["calls"]
    assert stats["chat"] == calls and stats.get("batches.create", 0) == 0
