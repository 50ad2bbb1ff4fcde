"""`sdilab run ...` against a committed database and the loopback server."""

import time

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.db import session_scope
from app.jobs import queue
from app.models import Job, QuestionSet, Reply, Run, utcnow
from app.runs.cli import WORKER_GRACE_S
from tests import factories
from tests.loopback.server import LoopbackServer
from tests.runs.helpers import loopback_models, replies, run_row


def _setup(engine: Engine, base_url: str) -> tuple[str, list[str], list[str]]:
    with session_scope(engine) as s:
        qs = factories.make_question_set(s, n=4, name="cli set")
        templates = [
            factories.make_template(s, text="Is it true that {statement_clause}?"),
            factories.make_template(
                s, kind="biased", stance="asserts", text="I think {claim_clause}."
            ),
        ]
        models = loopback_models(s, base_url)
        return qs.name, [m.name for m in models], [t.name for t in templates]


def _only_run(engine: Engine) -> Run:
    with Session(engine) as s:
        return s.exec(select(Run)).one()


def test_start_wait_runs_an_in_process_worker(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    set_name, models, templates = _setup(committed_db, loopback_server.base_url)
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "start",
            "--set",
            set_name,
            "--models",
            ",".join(models),
            "--templates",
            templates[0],
            "--limit",
            "3",
            "--samples",
            "2",
            "--seed",
            "5",
            "--wait",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "running a worker in this process" in result.output
    run = _only_run(committed_db)
    assert run.status == "completed" and run.question_limit == 3 and run.seed == 5
    rows = replies(committed_db, run.id or 0)
    assert len(rows) == 3 * 1 * 2 * 2 and {r.status for r in rows} == {"done"}
    assert f"Run #{run.id}" in result.output and "completed" in result.output
    assert loopback_server.stats()["calls"]["chat"] == 12


def test_start_without_wait_queues_and_status_retry_cancel(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    set_name, models, _templates = _setup(committed_db, loopback_server.base_url)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["run", "start", "--set", set_name, "--models", models[0], "--labels", "only"]
    )
    assert result.exit_code == 0, result.output
    run = _only_run(committed_db)
    with Session(committed_db) as s:
        jobs = s.exec(select(Job)).all()
        slots = s.exec(select(Reply)).all()
    # Every template is active by default: 4 statements x 2 templates x 1 arm.
    assert len(jobs) == len(slots) == 8 and {j.status for j in jobs} == {"todo"}

    status = runner.invoke(cli, ["run", "status", str(run.id)])
    assert status.exit_code == 0 and "8 pending" in status.output and "only" in status.output

    with session_scope(committed_db) as s:
        slot = s.get(Reply, slots[0].id)
        assert slot is not None
        slot.status, slot.error = "failed", "HTTP 500: gave up"
        s.add(slot)
        job = s.exec(select(Job).where(Job.lock_key == f"reply:{slot.id}")).one()
        job.status = "failed"
        s.add(job)
    assert "HTTP 500: gave up" in runner.invoke(cli, ["run", "status", run.name]).output
    retried = runner.invoke(cli, ["run", "retry", str(run.id)])
    assert retried.exit_code == 0 and "1 failed replies queued again" in retried.output

    cancelled = runner.invoke(cli, ["run", "cancel", str(run.id)])
    assert cancelled.exit_code == 0 and "8 pending replies" in cancelled.output
    assert run_row(committed_db, run.id or 0).status == "cancelled"
    assert runner.invoke(cli, ["run", "list"]).exit_code == 0


def test_start_reports_unknown_names(committed_db: Engine, loopback_server: LoopbackServer) -> None:
    set_name, models, _ = _setup(committed_db, loopback_server.base_url)
    runner = CliRunner()
    bad_set = runner.invoke(cli, ["run", "start", "--set", "nope", "--models", models[0]])
    assert bad_set.exit_code == 1 and "no question set named 'nope'" in bad_set.output
    bad_model = runner.invoke(cli, ["run", "start", "--set", set_name, "--models", "ghost"])
    assert bad_model.exit_code == 1 and "no model named 'ghost'" in bad_model.output
    with Session(committed_db) as s:
        assert s.exec(select(Run)).all() == []
        assert s.exec(select(QuestionSet)).one().name == set_name


def test_start_wait_runs_its_own_worker_when_a_busy_worker_takes_nothing(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    """A worker seems busy (a job of another kind, heart-beating now), so --wait follows;
    when none of the run's jobs has been taken after the grace, it runs a worker itself."""
    set_name, models, templates = _setup(committed_db, loopback_server.base_url)
    with session_scope(committed_db) as s:
        queue.enqueue_many(s, [{"task": "other.kind", "args": {}, "lock_key": "busy"}])
        busy = s.exec(select(Job).where(Job.lock_key == "busy")).one()
        busy.status, busy.worker_id, busy.heartbeat_at = "doing", "elsewhere:1", utcnow()
        s.add(busy)
    started = time.monotonic()
    result = CliRunner().invoke(
        cli,
        [
            *["run", "start", "--set", set_name, "--models", models[0]],
            *["--templates", templates[0], "--limit", "2", "--wait"],
        ],
    )
    assert result.exit_code == 0, result.output
    assert "A worker is running jobs" in result.output
    assert "No worker took the run's jobs: running a worker in this process" in result.output
    assert time.monotonic() - started >= WORKER_GRACE_S
    run = _only_run(committed_db)
    assert run.status == "completed"
    assert {r.status for r in replies(committed_db, run.id or 0)} == {"done"}
    with Session(committed_db) as s:  # the other worker's job was left alone
        assert s.exec(select(Job).where(Job.lock_key == "busy")).one().status == "doing"
