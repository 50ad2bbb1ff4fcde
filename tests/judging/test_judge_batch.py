"""Judging through the OpenAI Batch API against the loopback server's /v1/files and
/v1/batches (failed lines, a worker killed mid-batch, the cache, the page and the CLI), and
the tokens and cost of a judge's labels (stored per label, summed on the pages and the CLI)."""

import json
import os
import signal
import subprocess
import time
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.db import session_scope
from app.judging import service as judge
from app.judging.rubric import RUBRIC_VERSION, case_of, judge_messages
from app.main import create_app
from app.models import Job, JudgeBatch, JudgeLabel, PromptVariant, Question, Reply
from tests import factories
from tests.judging.test_judge_jobs import ANSWER, REPLY, _judged_run, _labels
from tests.loopback.chat import words
from tests.loopback.server import LoopbackServer
from tests.runs.helpers import work
from tests.runs.test_crash import ROOT, WORKER

PRICE_IN, PRICE_OUT = 0.5, 2.0  # $ per 1k tokens
OUT = words(json.dumps(ANSWER))  # the judge's answer, as the loopback server counts it


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(judge, "BATCH_POLL_S", 0.1)


def _priced_run(engine: Engine, base_url: str, questions: int) -> tuple[int, int]:
    return _judged_run(
        engine, base_url, questions, price_input_per_1k=PRICE_IN, price_output_per_1k=PRICE_OUT
    )


def _done_ids(engine: Engine, run_id: int) -> set[int]:
    with Session(engine) as s:
        return set(
            s.execute(select(Reply.id).where(Reply.run_id == run_id, Reply.status == "done"))
            .scalars()
            .all()
        )


def _batch_state(engine: Engine) -> JudgeBatch | None:
    with Session(engine) as s:
        return s.execute(select(JudgeBatch)).scalars().first()


def _prompt_tokens(engine: Engine, reply_id: int) -> int:
    """What the loopback server counts for the judge's prompt of a reply (words)."""
    with Session(engine) as s:
        reply = s.get(Reply, reply_id)
        assert reply is not None
        variant = s.get(PromptVariant, reply.prompt_variant_id)
        assert variant is not None
        question = s.get(Question, variant.question_id)
        assert question is not None
        case = case_of(
            question.statement,
            bool(question.truth),
            question.explanation,
            variant.messages,
            variant.followup,
            reply.first_text,
            reply.text,
        )
    return sum(words(m["content"]) for m in judge_messages(case, RUBRIC_VERSION))


def _check_one_label_each(engine: Engine, run_id: int) -> list[JudgeLabel]:
    labels = _labels(engine)
    keys = Counter((x.reply_id, x.judge_model_id, x.rubric_version) for x in labels)
    assert set(keys.values()) == {1}, "a label written twice"
    assert {reply for reply, _, _ in keys} == _done_ids(engine, run_id), "a label lost"
    assert {(x.label, x.confidence) for x in labels} == {("correct", 0.75)}
    return labels


def test_batch_judging_labels_every_reply_once_with_its_tokens_and_cost(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    loopback_server.configure(batch_delay_s=0.3, batch_line_error_rate=0.25, fault_seed=3)
    run_id, judge_id = _priced_run(committed_db, loopback_server.base_url, 10)
    with session_scope(committed_db) as s:
        started = judge.start_judging(s, run_id, judge_id, batch=True)
    assert started.batch and started.queued == 40
    with Session(committed_db) as s:
        assert [j.task for j in s.execute(select(Job)).scalars()] == ["judging.batch"]
    with session_scope(committed_db) as s:  # a second start while the batch is under way
        again = judge.start_judging(s, run_id, judge_id, batch=True)
    assert (again.queued, again.already_queued) == (0, 40)

    work(committed_db)
    labels = _check_one_label_each(committed_db, run_id)
    state = _batch_state(committed_db)
    assert state is not None and state.batch_id.startswith("batch_loop")
    assert state.status == "completed" and state.finished_at is not None
    assert len(state.reply_ids) == 40 and state.cached == 0
    # Failed lines went to per-reply jobs; every other label came from the batch.
    stats = loopback_server.stats()["calls"]
    assert stats["batches.create"] == 1
    assert 0 < state.fallback < 40 and state.stored == 40 - state.fallback
    assert Counter(x.via_batch for x in labels) == {True: state.stored, False: state.fallback}
    # Both arms got the same reply to the same prompt: a fallback label may come from the
    # cache (the other arm's, from the batch or its own call); every other one made a call.
    assert stats["chat"] == sum(not x.via_batch and not x.from_cache for x in labels) > 0
    with Session(committed_db) as s:
        jobs = list(s.execute(select(Job)).scalars())
    assert Counter(j.task for j in jobs) == {"judging.batch": 1, "judging.judge": state.fallback}
    assert {j.status for j in jobs} == {"succeeded"}
    # Every label carries its call's tokens (as the server counted them) and their cost.
    for x in labels:
        if x.from_cache:
            assert (x.tokens_in, x.tokens_out, x.cost_usd) == (0, 0, 0.0)
            continue
        assert x.tokens_in == _prompt_tokens(committed_db, x.reply_id) and x.tokens_out == OUT
        assert x.cost_usd == pytest.approx((x.tokens_in * PRICE_IN + OUT * PRICE_OUT) / 1000)


def test_a_worker_killed_mid_batch_resumes_polling_the_same_batch(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    loopback_server.configure(batch_delay_s=3.0)
    run_id, judge_id = _judged_run(committed_db, loopback_server.base_url, 8)
    with session_scope(committed_db) as s:
        assert judge.start_judging(s, run_id, judge_id, batch=True).queued == 32
    worker = subprocess.Popen(WORKER, cwd=ROOT, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while True:
            state = _batch_state(committed_db)
            if state is not None and state.batch_id:
                break
            assert worker.poll() is None, "the worker exited before it was killed"
            assert time.monotonic() < deadline, "no batch was submitted"
            time.sleep(0.05)
        time.sleep(0.3)  # a poll or two
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert _labels(committed_db) == [], "the batch was not over when the worker died"
    submitted = state.batch_id
    # A new worker: the job (its claim gone stale, or snoozed) polls the stored batch.
    work(committed_db, stale_after_s=1.0, heartbeat_s=0.2)
    _check_one_label_each(committed_db, run_id)
    stats = loopback_server.stats()["calls"]
    assert stats["batches.create"] == 1 and stats["files.create"] == 1
    assert stats.get("chat", 0) == 0
    after = _batch_state(committed_db)
    assert after is not None and after.batch_id == submitted and after.stored == 32
    assert after.finished_at is not None


def test_batch_judging_reads_the_cache_first_and_can_be_run_again(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    loopback_server.configure(batch_delay_s=0.1)
    with session_scope(committed_db) as s:
        qs = factories.make_question_set(s, n=3)
        first = factories.make_run(s, qs, reply=REPLY)
        second = factories.make_run(s, qs, reply=REPLY)
        config = factories.make_model_config(
            s, name="loop-judge", base_url=loopback_server.base_url
        )
        ids = (first.id or 0, second.id or 0, config.id or 0)
    with session_scope(committed_db) as s:
        judge.start_judging(s, ids[0], ids[2])
    work(committed_db)
    calls = loopback_server.stats()["calls"]["chat"]
    with session_scope(committed_db) as s:
        assert judge.start_judging(s, ids[1], ids[2], batch=True).queued == 12
    work(committed_db)
    stats = loopback_server.stats()["calls"]
    assert stats["chat"] == calls and stats.get("batches.create", 0) == 0
    second_labels = [
        x for x in _labels(committed_db) if x.reply_id in _done_ids(committed_db, ids[1])
    ]
    assert len(second_labels) == 12 and all(x.from_cache for x in second_labels)
    assert {(x.tokens_in, x.tokens_out, x.cost_usd) for x in second_labels} == {(0, 0, 0.0)}
    with session_scope(committed_db) as s:
        used = judge.usage(s, ids[1])[ids[2], RUBRIC_VERSION]
    assert (used.calls, used.from_cache, used.tokens_in, used.cost_usd) == (0, 12, 0, 0.0)
    # Labels deleted: the finished batch job is sent again and submits a new batch.
    with session_scope(committed_db) as s:
        s.execute(JudgeLabel.__table__.delete())  # type: ignore[attr-defined]
        s.execute(Reply.__table__.update().values(text=Reply.text + " (again)"))  # type: ignore[attr-defined]
    with session_scope(committed_db) as s:
        assert judge.start_judging(s, ids[1], ids[2], batch=True).queued == 12
    work(committed_db)
    assert loopback_server.stats()["calls"]["batches.create"] == 1
    assert len(_labels(committed_db)) == 12


def test_batch_needs_an_openai_model(committed_db: Engine) -> None:
    with session_scope(committed_db) as s:
        run = factories.make_run(s, factories.make_question_set(s, n=2))
        local = factories.make_model_config(s, name="local-judge", provider="local")
        admin = factories.make_user(s, role="admin")
        with pytest.raises(judge.JudgeError, match="Batch API needs an OpenAI"):
            judge.start_judging(s, run.id or 0, local.id or 0, batch=True)
        ids = (run.id or 0, local.id or 0)
    with TestClient(create_app()) as client:
        factories.login(client, admin)
        shown = client.post(
            f"/results/runs/{ids[0]}/judge", data={"judge_id": str(ids[1]), "batch": "true"}
        )
    assert shown.status_code == 422 and "the Batch API needs an OpenAI" in shown.text
    with Session(committed_db) as s:
        assert list(s.execute(select(Job)).scalars()) == []


def test_page_and_cli_start_a_batch_and_show_tokens_and_cost(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    from typer.testing import CliRunner

    from app.cli import cli

    loopback_server.configure(batch_delay_s=0.1)
    run_id, judge_id = _priced_run(committed_db, loopback_server.base_url, 3)
    with session_scope(committed_db) as s:
        admin = factories.make_user(s, role="admin")
    with TestClient(create_app()) as client:
        factories.login(client, admin)
        page = client.get(f"/results/runs/{run_id}/judge").text
        assert 'name="batch"' in page
        started = client.post(
            f"/results/runs/{run_id}/judge", data={"judge_id": str(judge_id), "batch": "true"}
        )
        assert started.status_code == 200
        assert "Queued 12 replies for the judge in one Batch API job" in started.text
        with Session(committed_db) as s:
            assert [j.task for j in s.execute(select(Job)).scalars()] == ["judging.batch"]
        work(committed_db)
        labels = _labels(committed_db)
        tokens_in = sum(x.tokens_in for x in labels)
        cost = sum(x.cost_usd for x in labels)
        assert len(labels) == 12 and tokens_in > 0
        # The two arms' replies are alike: one request per distinct judge prompt.
        assert loopback_server.stats()["calls"].get("chat", 0) == 0
        assert sum(x.from_cache for x in labels) == 6
        page = client.get(f"/results/runs/{run_id}/judge").text
        assert f'<td class="num">{tokens_in}</td><td class="num">{6 * OUT}</td>' in page
        assert f"{cost:.4f}" in page
        judges_page = client.get(f"/results/runs/{run_id}/judges").text
        assert f"6 · {tokens_in} / {6 * OUT} · ${cost:.4f}" in judges_page
        assert "12 through the Batch API" in judges_page and "6 from the cache" in judges_page
        api = client.get(f"/api/runs/{run_id}/judges/figures").json()
        usage = next(j for j in api["judges"] if j["model_id"] == judge_id)["usage"]
        assert usage["tokens_in"] == tokens_in and usage["tokens_out"] == 6 * OUT
        assert usage["cost_usd"] == pytest.approx(cost) and usage["via_batch"] == 12
    runner = CliRunner()
    out = runner.invoke(cli, ["judge", str(run_id), "--judge", "loop-judge", "--batch"])
    assert out.exit_code == 0, out.output
    printed = " ".join(out.output.split())
    assert "Queued 0 replies" in printed
    assert f"6 calls (6 from the cache, 12 through the Batch API), {tokens_in} tokens in" in (
        printed
    )
    assert f"{6 * OUT} out, cost ${cost:.4f}" in printed


def test_per_reply_judging_stores_tokens_and_cost(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    from typer.testing import CliRunner

    from app.cli import cli

    run_id, _ = _priced_run(committed_db, loopback_server.base_url, 2)
    out = CliRunner().invoke(cli, ["judge", str(run_id), "--judge", "loop-judge", "--wait"])
    assert out.exit_code == 0, out.output
    labels = _check_one_label_each(committed_db, run_id)
    assert not any(x.via_batch for x in labels)
    for x in labels:
        if x.from_cache:  # the other arm's reply had the same judge prompt
            assert (x.tokens_in, x.tokens_out, x.cost_usd) == (0, 0, 0.0)
            continue
        assert x.tokens_in == _prompt_tokens(committed_db, x.reply_id) and x.tokens_out == OUT
        assert x.cost_usd == pytest.approx((x.tokens_in * PRICE_IN + OUT * PRICE_OUT) / 1000)
    tokens_in = sum(x.tokens_in for x in labels)
    cost = sum(x.cost_usd for x in labels)
    printed = " ".join(out.output.split())
    calls = sum(not x.from_cache for x in labels)
    assert f"{calls} calls ({8 - calls} from the cache, 0 through the Batch API), " in printed
    assert f"{tokens_in} tokens in, {calls * OUT} out, cost ${cost:.4f}" in printed
    with Session(committed_db) as s:
        results = [j.result or {} for j in s.execute(select(Job)).scalars()]
    assert sum(r["tokens_in"] for r in results) == tokens_in
    assert sum(r["cost_usd"] for r in results) == pytest.approx(cost)


def test_a_batch_job_that_gives_up_hands_its_replies_to_per_reply_jobs(
    committed_db: Engine, loopback_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server without a usable Batch API: the batch job fails for good, and every reply it
    would have labelled gets an ordinary judge job, which labels it."""
    from app.judging import batch as judge_batch
    from app.llm.types import LlmError

    async def refused(*_args: object, **_kwargs: object) -> str:
        raise LlmError("HTTP 404: no /v1/files here", retryable=False)

    monkeypatch.setattr(judge_batch.llm_batch, "upload", refused)
    run_id, judge_id = _judged_run(committed_db, loopback_server.base_url, 3)
    with session_scope(committed_db) as s:
        assert judge.start_judging(s, run_id, judge_id, batch=True).queued == 12
    work(committed_db)
    labels = _check_one_label_each(committed_db, run_id)
    assert not any(x.via_batch for x in labels)
    with Session(committed_db) as s:
        jobs = list(s.execute(select(Job)).scalars())
    assert Counter((j.task, j.status) for j in jobs) == {
        ("judging.batch", "failed"): 1,
        ("judging.judge", "succeeded"): 12,
    }
    assert "no /v1/files here" in next(j.last_error for j in jobs if j.task == "judging.batch")
