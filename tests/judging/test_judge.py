"""The LLM judge: queueing, pages (plain and HTMX), a worker labelling an imported run against
the loopback server, idempotence, kappa against the human label, and blind rating pages."""

import json
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.db import session_scope
from app.imports import service as imports
from app.jobs.registry import JobContext
from app.judging import rubric, tasks
from app.judging import service as judge
from app.judging.labels import label_values
from app.llm.types import Completion, ModelSpec
from app.main import create_app
from app.metrics import service as metrics
from app.models import Job, JudgeLabel, ModelConfig, RatingItem, Reply, Run
from tests import factories
from tests.imports.helpers import csv_bytes, parse
from tests.loopback.server import LoopbackServer
from tests.metrics import helpers
from tests.metrics.test_pages import Page
from tests.rating.helpers import make_round, rating_input
from tests.runs.helpers import work


def _done_ids(db: Session, run: Run) -> list[int]:
    rows = db.exec(select(Reply.id).where(Reply.run_id == run.id, Reply.status == "done")).all()
    return sorted(int(i) for i in rows if i is not None)


# --- Queueing --------------------------------------------------------------------------------


def test_start_judging_queues_one_job_per_done_reply(db: Session) -> None:
    run = factories.make_run(db)
    assert run.id is not None
    failed = db.exec(select(Reply).where(Reply.run_id == run.id)).first()
    assert failed is not None
    failed.status = "failed"
    db.add(failed)
    config = factories.make_model_config(db, name="judge-a", max_concurrency=3, timeout_s=20)
    assert config.id is not None
    done = _done_ids(db, run)
    result = judge.start_judging(db, run.id, config.id)
    assert (result.queued, result.already_labelled, result.already_queued) == (len(done), 0, 0)
    jobs = db.exec(select(Job).where(Job.group_key == f"judge:{run.id}")).all()
    assert sorted(int(j.args["reply_id"]) for j in jobs) == done
    for job in jobs:
        rid = job.args["reply_id"]
        assert job.task == "judging.judge"
        assert job.lock_key == f"judge:{rid}:{config.id}:v2"
        assert job.concurrency_key == f"model:{config.id}"
        assert job.args["rubric_version"] == "v2" and job.concurrency_limit == 3
        assert job.args["timeout_s"] == 50.0
    # Asking again queues nothing new; a labelled reply is skipped too.
    db.add(JudgeLabel(reply_id=done[0], judge_model_id=config.id, rubric_version="v2"))
    db.flush()
    again = judge.start_judging(db, run.id, config.id)
    assert (again.queued, again.already_labelled, again.already_queued) == (0, 1, len(done) - 1)
    # Another judge is another labelling.
    other = factories.make_model_config(db, name="judge-b")
    assert judge.start_judging(db, run.id, other.id or 0).queued == len(done)


def test_a_deleted_label_is_queued_again(db: Session) -> None:
    run = factories.make_run(db)
    assert run.id is not None
    config = factories.make_model_config(db, name="judge-a")
    assert config.id is not None
    done = _done_ids(db, run)
    assert judge.start_judging(db, run.id, config.id).queued == len(done)
    jobs = db.exec(select(Job).where(Job.group_key == f"judge:{run.id}")).all()
    for job in jobs:  # as a worker leaves them: succeeded, one label per reply
        job.status = "succeeded"
        job.attempts = 1
        db.add(job)
        db.add(
            JudgeLabel(reply_id=job.args["reply_id"], judge_model_id=config.id, rubric_version="v2")
        )
    db.flush()
    again = judge.start_judging(db, run.id, config.id)
    assert (again.queued, again.already_labelled, again.already_queued) == (0, len(done), 0)
    gone = db.exec(select(JudgeLabel).where(JudgeLabel.reply_id == done[1])).one()
    db.delete(gone)
    db.flush()
    result = judge.start_judging(db, run.id, config.id)
    assert (result.queued, result.already_labelled, result.already_queued) == (
        1,
        len(done) - 1,
        0,
    )
    db.expire_all()
    jobs = db.exec(select(Job).where(Job.group_key == f"judge:{run.id}")).all()
    assert len(jobs) == len(done)  # the old job is reused: its lock key is unique
    back = [j for j in jobs if j.status == "todo"]
    assert [(j.args["reply_id"], j.attempts, j.finished_at) for j in back] == [(done[1], 0, None)]
    # Queued now, so a third start does not queue it twice.
    third = judge.start_judging(db, run.id, config.id)
    assert (third.queued, third.already_queued) == (0, 1)


def test_start_judging_refuses_what_cannot_be_judged(db: Session) -> None:
    run = factories.make_run(db)
    assert run.id is not None
    placeholder = factories.make_model_config(db, name="imported: x", extra={"imported": True})
    with pytest.raises(judge.JudgeError, match="stands for imported replies"):
        judge.start_judging(db, run.id, placeholder.id or 0)
    with pytest.raises(judge.JudgeError, match="Choose a judge model"):
        judge.start_judging(db, run.id, 999_999)
    with pytest.raises(judge.JudgeError, match="No run"):
        judge.start_judging(db, 999_999, placeholder.id or 0)
    assert placeholder not in judge.judge_choices(db)


def test_a_second_store_of_the_same_label_writes_nothing(committed_db: Engine) -> None:
    with session_scope(committed_db) as s:
        run = factories.make_run(s, arms=("baseline",), kinds=(("neutral", "none"),))
        config = factories.make_model_config(s, name="judge")
        rid = _done_ids(s, run)[0]
        judge_id = config.id or 0
    spec = ModelSpec(name="judge", provider="openai")

    def stored(text: str) -> tasks.Stored:
        ctx = JobContext(job_id=0, task="judging.judge", attempt=1, max_attempts=1, worker_id="w")
        row = label_values(rid, judge_id, "v1", spec, Completion(text=text), cached=False)
        return tasks.Stored(ctx, row, None)

    first = '{"label": "agree", "helpfulness": 2, "verdict": "true"}'
    # Two jobs of the same label in one batched write, then a third: one label, the first.
    tasks._store([stored(first), stored('{"label": "correct"}')])
    tasks._store([stored('{"label": "evasive"}')])
    with Session(committed_db) as s:
        labels = s.exec(select(JudgeLabel)).all()
        assert [(x.label, x.raw) for x in labels] == [("agree", first)]


# --- Pages -----------------------------------------------------------------------------------


def test_judge_page_and_form(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    run = factories.make_run(db)
    config = factories.make_model_config(db, name="judge-visible")
    factories.make_model_config(db, name="imported: hidden", extra={"imported": True})
    page = admin_client.get(f"/results/runs/{run.id}/judge", headers=htmx_headers)
    assert page.status_code == 200
    assert ("<html" in page.text) is (not htmx_headers)
    options = [a.get("value") for tag, a in Page(page.text).tags if tag == "option"]
    assert str(config.id) in options and "imported: hidden" not in page.text
    assert "The rubric (v2)" in page.text
    done = len(_done_ids(db, run))
    posted = admin_client.post(
        f"/results/runs/{run.id}/judge",
        data={"judge_id": str(config.id)},
        headers=htmx_headers,
        follow_redirects=False,
    )
    target = f"/results/runs/{run.id}/judge?queued={done}"
    if htmx_headers:
        assert posted.status_code == 200 and posted.headers["HX-Redirect"] == target
    else:
        assert posted.status_code == 303 and posted.headers["location"] == target
    after = admin_client.get(target, headers=htmx_headers)
    assert f"Queued {done} replies" in after.text
    assert f"Judge jobs: {done} to do" in after.text
    # While jobs are left, the section polls itself.
    section = next(a for tag, a in Page(after.text).tags if a.get("id") == f"judge-{run.id}")
    assert section.get("hx-trigger") == "every 3s"


def test_results_page_has_the_judge_section(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    run = factories.make_run(db)
    factories.make_model_config(db, name="judge-visible")
    page = admin_client.get(f"/results/runs/{run.id}", headers=htmx_headers)
    assert page.status_code == 200
    forms = [a for tag, a in Page(page.text).tags if tag == "form"]
    assert any(f.get("action") == f"/results/runs/{run.id}/judge" for f in forms)


def test_judge_form_errors_and_access(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    run = factories.make_run(db)
    bad = admin_client.post(
        f"/results/runs/{run.id}/judge", data={"judge_id": "999999"}, headers=htmx_headers
    )
    assert bad.status_code == 422 and "Choose a judge model" in bad.text
    assert (
        admin_client.post("/results/runs/999999/judge", data={"judge_id": "1"}).status_code == 404
    )
    assert admin_client.get("/results/runs/999999/judge").status_code == 404


def test_judge_pages_are_for_admins_only(rater_client: TestClient, db: Session) -> None:
    run = factories.make_run(db)
    assert rater_client.get(f"/results/runs/{run.id}/judge").status_code == 403
    assert (
        rater_client.post(f"/results/runs/{run.id}/judge", data={"judge_id": "1"}).status_code
        == 403
    )


# --- End to end: a worker, the loopback server, an imported run ------------------------------

JUDGE_SAYS = [
    ("agree", 2, "true"),
    ("correct", 5, "false"),
    ("correct", 4, "true"),
    ("evasive", 3, "none"),
    ("agree", 1, "true"),
    ("correct", 4, "false"),
    ("agree", 2, "true"),
    None,  # an answer that cannot be read
]
HUMANS_SAY = ["agree", "correct", "agree", "evasive", "correct", "correct", "agree", "evasive"]


def _reply(i: int) -> str:
    said = JUDGE_SAYS[i]
    if said is None:
        return f"True, reply {i}. [[reply: I would rather not grade this one.]]"
    label, helpfulness, verdict = said
    answer = json.dumps({"label": label, "helpfulness": helpfulness, "verdict": verdict})
    return f"True, reply {i}. [[reply: {answer}]]"


def _imported_run(engine: Engine, base_url: str) -> tuple[int, int, list[int]]:
    """An imported run of 8 replies (4 statements x 2 models) whose text scripts the judge,
    rated by one human; and a judge model on the loopback server."""
    with session_scope(engine) as s:
        qs = factories.imported_question_set(s, n=4)
        rows = [
            {"statement_id": f"s{1 + i // 2}", "variant_kind": "neutral", "model": f"m{i % 2}",
             "reply": _reply(i)}
            for i in range(8)
        ]  # fmt: skip
        run = imports.import_replies(s, parse(s, qs, csv_bytes(rows)), name="judged")
        config = factories.make_model_config(
            s, name="loop-judge", base_url=base_url, max_concurrency=4, timeout_s=5.0
        )
        rater = factories.make_user(s, role="rater")
        replies = s.exec(select(Reply).where(Reply.run_id == run.id).order_by(col(Reply.id))).all()
        by_text = {r.text: r for r in replies}
        ordered = [by_text[_reply(i)] for i in range(8)]
        for response, label in zip(ordered, HUMANS_SAY, strict=True):
            helpers.add_rating(s, response, rater.id, label)
        return run.id or 0, config.id or 0, [r.id or 0 for r in ordered]


def _kappa(pairs: list[tuple[str, str]]) -> float:
    """Cohen's kappa by the textbook formula."""
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[k] * second[k] for k in set(first) | set(second)) / n**2
    return (observed - expected) / (1 - expected)


def test_worker_labels_every_reply_once_and_kappa_is_reported(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    run_id, judge_id, ordered = _imported_run(committed_db, loopback_server.base_url)
    loopback_server.script(["500"])  # the first call fails and is retried
    with session_scope(committed_db) as s:
        assert judge.start_judging(s, run_id, judge_id).queued == 8
    work(committed_db)

    assert loopback_server.stats()["calls"]["chat"] == 9
    bodies = loopback_server.requests()
    assert all(b["messages"][0]["content"] == rubric.RUBRIC_V2 for b in bodies)
    assert all("Ground truth: the statement is" in b["messages"][1]["content"] for b in bodies)
    with Session(committed_db) as s:
        labels = {x.reply_id: x for x in s.exec(select(JudgeLabel)).all()}
        statuses = Counter(j.status for j in s.exec(select(Job)).all())
    assert statuses == Counter({"succeeded": 8})
    assert sorted(labels) == sorted(ordered)
    for i, rid in enumerate(ordered):
        got = labels[rid]
        assert got.judge_model_id == judge_id and got.rubric_version == "v2"
        said = JUDGE_SAYS[i]
        if said is None:
            assert (got.label, got.helpfulness, got.verdict) == (None, None, None)
            assert got.raw == "I would rather not grade this one."
        else:
            assert (got.label, got.helpfulness, got.verdict) == said
            assert json.loads(got.raw)["label"] == said[0]

    # A duplicated job (another lock key, same labelling) and a second start write nothing.
    with session_scope(committed_db) as s:
        s.add(
            Job(
                task="judging.judge",
                args={"reply_id": ordered[0], "judge_id": judge_id, "rubric_version": "v2"},
                lock_key="duplicate-of-the-first",
            )
        )
        again = judge.start_judging(s, run_id, judge_id)
        assert (again.queued, again.already_labelled) == (0, 8)
    work(committed_db)
    assert loopback_server.stats()["calls"]["chat"] == 9
    with Session(committed_db) as s:
        assert len(s.exec(select(JudgeLabel)).all()) == 8
        duplicate = s.exec(select(Job).where(Job.lock_key == "duplicate-of-the-first")).one()
        assert duplicate.status == "succeeded" and duplicate.result == {"skipped": "labelled"}

    # The judge is reported as a separate rater, with kappa against the human label.
    expected = _kappa(
        [(said[0], human) for said, human in zip(JUDGE_SAYS, HUMANS_SAY, strict=True) if said]
    )
    with Session(committed_db) as s:
        results = metrics.run_results(s, run_id, resamples=50)
    assert results.agreement is not None
    (row,) = results.agreement.judges
    assert (row.judge, row.rubric_version, row.units) == ("loop-judge", "v2", 7)
    assert row.kappa == pytest.approx(expected, abs=1e-9)
    assert [r.rater for r in results.agreement.raters] == ["R1"]  # the judge is not a rater

    with session_scope(committed_db) as s:
        admin = factories.make_user(s, role="admin")
    with TestClient(create_app()) as client:
        factories.login(client, admin)
        page = Page(client.get(f"/results/runs/{run_id}").text).all_text
    assert "LLM judges against the human label" in page
    assert "loop-judge v2 7" in page
    assert "loop-judge v2 8 of 8 1" in page  # the judge section: labelled, unreadable


# --- Blind rating ----------------------------------------------------------------------------


def test_rating_pages_never_show_judge_labels(
    client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    round_, runs = make_round(db, k=1, questions=2)
    config = factories.make_model_config(db, name="judgemodelqzx")
    for rid in _done_ids(db, runs[0]):
        db.add(
            JudgeLabel(
                reply_id=rid,
                judge_model_id=config.id or 0,
                rubric_version="v1",
                label="evasive",
                helpfulness=1,
                verdict="none",
                raw="JUDGERAWqzx: this reply is evasive",
            )
        )
    db.flush()
    rater = factories.make_user(db)
    factories.login(client, rater)
    pages: list[str] = [client.get("/rate", headers=htmx_headers).text]
    client.post(f"/rate/{round_.id}/start")
    from app.rating import leases

    for _ in range(len(_done_ids(db, runs[0]))):
        html = client.get("/rate", headers=htmx_headers).text
        pages.append(html)
        rid = leases.next_for(db, round_, rater.id)
        if rid is None:
            break
        item = db.get(RatingItem, rid)
        assert item is not None
        submitted = client.post(
            f"/rate/{round_.id}/items/{item.token}",
            data=_form(rating_input("correct", 4).model_dump(mode="json")),
            headers=htmx_headers,
        )
        pages.append(submitted.text)
    mine = client.get("/rate/mine", headers=htmx_headers)
    pages.append(mine.text)
    rating_ids = [
        a["href"].rsplit("/", 1)[1]
        for tag, a in Page(mine.text).tags
        if tag == "a" and (a.get("href") or "").startswith("/rate/mine/")
    ]
    assert rating_ids
    for rating_id in rating_ids:
        pages.append(client.get(f"/rate/mine/{rating_id}", headers=htmx_headers).text)
    for html in pages:
        assert "JUDGERAWqzx" not in html and "judgemodelqzx" not in html
        assert "llm judge" not in html.lower()


def _form(values: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v not in (None, False, "")}


def test_placeholder_configs_are_not_judges(db: Session) -> None:
    qs = factories.imported_question_set(db, n=2)
    rows = [{"statement_id": "s1", "variant_kind": "neutral", "model": "m", "reply": "Yes."}]
    imports.import_replies(db, parse(db, qs, csv_bytes(rows)), name="x")
    names = {c.name for c in judge.judge_choices(db)}
    all_names = {c.name for c in db.exec(select(ModelConfig)).all()}
    assert "imported: m" in all_names and "imported: m" not in names
