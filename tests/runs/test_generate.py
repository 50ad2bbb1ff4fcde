"""The runs.generate task end to end: a real worker, the loopback server over HTTP."""

import time

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.jobs.batching import batched
from app.models import Job, LlmCacheEntry, PromptVariant
from app.runs import tasks
from tests.loopback.server import LoopbackServer
from tests.loopback.state import reply_for
from tests.runs.helpers import replies, run_row, slot_counts, start_run, work


def test_run_fills_every_slot_once(committed_db: Engine, loopback_server: LoopbackServer) -> None:
    run_id = start_run(committed_db, loopback_server.base_url, questions=5, samples=2)
    work(committed_db)
    rows = replies(committed_db, run_id)
    assert len(rows) == 5 * 1 * 2 * 2
    assert set(slot_counts(rows).values()) == {1}
    assert {r.status for r in rows} == {"done"}
    with Session(committed_db) as s:
        variants = {v.id: v for v in s.exec(select(PromptVariant)).all()}
    for r in rows:
        expected = reply_for(variants[r.prompt_variant_id].messages)
        assert r.text == expected
        assert r.verdict == ("true" if expected.startswith("True") else "false")
        assert r.tokens_in > 0 and r.tokens_out > 0 and r.finish_reason == "stop"
        assert r.attempts == 1 and r.error == "" and r.completed_at is not None
        assert r.transcript[-1] == {"role": "assistant", "content": expected}
    run = run_row(committed_db, run_id)
    assert run.status == "completed" and run.finished_at is not None


def test_pushback_stores_both_turns(committed_db: Engine, loopback_server: LoopbackServer) -> None:
    run_id = start_run(
        committed_db,
        loopback_server.base_url,
        questions=2,
        kinds=(("pushback", "none", "I don't think that's right. [[reply: Yes, you are right.]]"),),
    )
    work(committed_db)
    rows = replies(committed_db, run_id)
    assert len(rows) == 4 and {r.status for r in rows} == {"done"}
    for r in rows:
        first = r.transcript[1]["content"]
        assert r.first_text == first and first.startswith(("True.", "False."))
        assert r.first_verdict == ("true" if first.startswith("True") else "false")
        assert r.attempts == 1, (r.attempts, r.error)
        # Giving in to the pushback gives up the first answer (not "true": it agrees with the
        # user's doubt, not with the claim).
        assert r.text == "Yes, you are right."
        assert r.verdict == ("false" if r.first_verdict == "true" else "true")
        assert [m["role"] for m in r.transcript] == ["user", "assistant", "user", "assistant"]
        assert r.transcript[2]["content"].startswith("I don't think that's right.")
    # Two calls per slot; the second carried the first answer in its history.
    assert loopback_server.stats()["calls"]["chat"] == 8
    second_calls = [b for b in loopback_server.requests() if len(b["messages"]) == 3]
    assert len(second_calls) == 4


def test_identical_requests_are_served_from_the_cache(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    first = start_run(committed_db, loopback_server.base_url, questions=3)
    work(committed_db)
    calls = loopback_server.stats()["calls"]["chat"]
    assert calls == 6
    # Same models (same settings), same prompts: a new run asks nothing of the server.
    with Session(committed_db) as s:
        assert len(s.exec(select(LlmCacheEntry)).all()) == 6
    second = start_run(committed_db, loopback_server.base_url, questions=3)
    work(committed_db)
    assert loopback_server.stats()["calls"]["chat"] == calls
    again, before = replies(committed_db, second), replies(committed_db, first)
    assert {r.status for r in again} == {"done"} and all(r.from_cache for r in again)
    assert sorted(r.text for r in again) == sorted(r.text for r in before)
    assert not any(r.from_cache for r in before)


def test_a_refused_request_fails_the_slot_without_retrying(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    loopback_server.script(["400"])
    run_id = start_run(committed_db, loopback_server.base_url, questions=1)
    work(committed_db, concurrency=1)
    rows = sorted(replies(committed_db, run_id), key=lambda r: r.id)
    assert [r.status for r in rows] == ["failed", "done"]
    assert "HTTP 400" in rows[0].error and rows[0].attempts == 1
    with Session(committed_db) as s:
        job = s.exec(select(Job).where(Job.args["reply_id"].as_integer() == rows[0].id)).one()
    assert job.status == "failed" and "HTTP 400" in job.last_error
    assert run_row(committed_db, run_id).status == "completed"


def test_retryable_errors_are_retried_and_recorded(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    loopback_server.configure(retry_after=0.1)
    loopback_server.script(["429", "500", "malformed"])
    run_id = start_run(committed_db, loopback_server.base_url, questions=1)
    work(committed_db, concurrency=1)
    rows = replies(committed_db, run_id)
    assert [r.status for r in rows] == ["done", "done"]
    # Three failed attempts spread over the two slots, then each stored once.
    assert sum(r.attempts for r in rows) == 5 and all(r.error == "" for r in rows)
    assert loopback_server.stats()["faults"] == {"429": 1, "500": 1, "malformed": 1, "ok": 2}


def test_a_reply_to_a_negated_claim_is_stored_as_a_verdict_on_the_statement(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    """A reply that calls "I believe <negation>" false affirms the statement itself."""
    loopback_server.configure(reply_mode="false")
    run_id = start_run(
        committed_db, loopback_server.base_url, questions=2, kinds=(("biased", "negates", ""),)
    )
    work(committed_db)
    rows = replies(committed_db, run_id)
    assert rows and {r.status for r in rows} == {"done"}
    assert all(r.text.startswith("False") for r in rows)
    assert {r.verdict for r in rows} == {"true"}


def test_a_job_handed_a_slot_starts_with_its_slot_already_read(
    committed_db: Engine, loopback_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transaction that stores a reply and hands its slot on also reads the successor's
    slot: only the claimed jobs query their slots, and every slot is still filled once."""
    loaded: list[int] = []
    load = tasks._load_slots

    def counting(reply_ids: list[int]) -> list[tasks.Slot | None]:
        loaded.extend(reply_ids)
        return load(reply_ids)

    monkeypatch.setattr(tasks, "load_slot", batched(counting))
    run_id = start_run(
        committed_db, loopback_server.base_url, questions=6, model_fields={"max_concurrency": 2}
    )
    work(committed_db, concurrency=4)
    rows = replies(committed_db, run_id)
    assert len(rows) == 12 and {r.status for r in rows} == {"done"}
    assert set(slot_counts(rows).values()) == {1}
    assert 0 < len(loaded) < len(rows), loaded
    assert loopback_server.stats()["calls"]["chat"] == 12
    assert not tasks._preloaded


def test_a_stale_preloaded_slot_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    slot = tasks.Slot(1, 1, 1, 0, "pending", [], "", "none")
    now = time.monotonic()
    monkeypatch.setattr(tasks, "_preloaded", {7: (slot, now), 8: (slot, now - 60)})
    assert tasks._take_preloaded(7) == (True, slot)
    assert tasks._take_preloaded(7) == (False, None)  # used once
    assert tasks._take_preloaded(8) == (False, None)  # a job given back and claimed later
    assert tasks._preloaded == {}
