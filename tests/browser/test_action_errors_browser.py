"""The action buttons' error paths in Chromium with JavaScript on: the state changes behind the
page's back (another tab, another admin, the worker) after the page is loaded and before the
click; the click then shows a *visible* message and changes nothing.

The buttons are plain forms (no hx-post): the browser posts and shows the server's page.
"""

import re
from datetime import datetime

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.models import ApiToken, ModelConfig, Reply, Run, SdiDataset, SdiFineTune, User
from tests import factories
from tests.browser.test_form_errors_browser import _count, _logged_in_admin, expect_message
from tests.imports.helpers import csv_bytes, paired_rows

pytestmark = pytest.mark.browser


# -- runs: retry -----------------------------------------------------------------------------


def test_retrying_a_run_cancelled_meanwhile_shows_why(committed_db: Engine, page: Page) -> None:
    with Session(committed_db) as s:
        run = factories.make_run(s, status="completed")
        reply = s.exec(select(Reply).where(Reply.run_id == run.id)).first()
        assert reply is not None
        reply.status = "failed"
        s.add(reply)
        s.commit()
        run_id = run.id
    _logged_in_admin(committed_db, page)
    page.goto(f"/runs/{run_id}")
    retry = page.locator(f"form[action='/runs/{run_id}/retry'] button")
    expect(retry).to_be_visible()
    with Session(committed_db) as s:  # another admin cancels the run while this page is open
        cancelled = s.get(Run, run_id)
        assert cancelled is not None
        cancelled.status = "cancelled"
        s.add(cancelled)
        s.commit()
    retry.click()
    expect_message(page, "the run is cancelled: resume it first")
    with Session(committed_db) as s:
        assert s.get(Run, run_id).status == "cancelled"  # type: ignore[union-attr]
        statuses = s.exec(select(Reply.status).where(Reply.run_id == run_id)).all()
        assert statuses.count("failed") == 1  # the failed reply was not sent back


# -- API tokens: revoke ----------------------------------------------------------------------


def test_revoking_a_token_revoked_meanwhile_says_so(committed_db: Engine, page: Page) -> None:
    from app.accounts import tokens
    from app.models import TokenScope

    admin = _logged_in_admin(committed_db, page)
    with Session(committed_db) as s:
        owner = s.exec(select(User).where(User.email == admin.email)).one()
        token, _raw = tokens.create_token(s, owner, "laptop", TokenScope.read)
        s.commit()
        token_id = token.id
    page.goto("/account")
    revoke = page.locator(f"form[action='/account/tokens/{token_id}/revoke'] button")
    expect(revoke).to_be_visible()
    with Session(committed_db) as s:  # revoked in another tab (or through the API) first
        revoked = tokens.revoke_token(s, token_id or 0)
        s.commit()
        first: datetime | None = revoked.revoked_at
    revoke.click()
    expect_message(page, "That token was already revoked.")
    expect(page.locator(f"form[action='/account/tokens/{token_id}/revoke']")).to_have_count(0)
    with Session(committed_db) as s:
        again = s.get(ApiToken, token_id)
        assert again is not None and again.revoked_at == first  # the first revocation stands


# -- SDI: fine-tune cancel -------------------------------------------------------------------


def _fine_tune(engine: Engine) -> tuple[int, int]:
    with Session(engine) as s:
        qs = factories.make_question_set(s, n=2, name="ft set")
        base = factories.make_model_config(s, name="ft base")
        dataset = SdiDataset(name="ft data", question_set_id=qs.id or 0, status="ready")
        s.add(dataset)
        s.flush()
        job = SdiFineTune(
            dataset_id=dataset.id or 0,
            base_model_config_id=base.id or 0,
            base_model="gpt-4o-mini",
            status="running",
        )
        s.add(job)
        s.commit()
        assert dataset.id is not None and job.id is not None
        return dataset.id, job.id


def test_cancelling_a_fine_tune_that_finished_meanwhile_shows_why(
    committed_db: Engine, page: Page
) -> None:
    dataset_id, job_id = _fine_tune(committed_db)
    _logged_in_admin(committed_db, page)
    page.goto(f"/sdi/{dataset_id}")
    cancel = page.locator(f"form[action='/sdi/fine-tunes/{job_id}/cancel'] button")
    expect(cancel).to_be_visible()
    with Session(committed_db) as s:  # the provider's job succeeds while the page is open
        job = s.get(SdiFineTune, job_id)
        assert job is not None
        job.status = "succeeded"
        s.add(job)
        s.commit()
    cancel.click()
    expect_message(page, re.compile(r"already finished \(succeeded\); nothing to cancel"))
    expect(page.get_by_text("Fine-tuning cancelled.")).to_have_count(0)
    with Session(committed_db) as s:
        assert s.get(SdiFineTune, job_id).status == "succeeded"  # type: ignore[union-attr]


# -- reply import: confirm -------------------------------------------------------------------


def test_confirming_an_import_whose_set_was_deleted_meanwhile_shows(
    committed_db: Engine, page: Page
) -> None:
    from app.questions import service as questions

    with Session(committed_db) as s:
        set_id = factories.make_question_set(s, n=2, name="for replies").id
        s.commit()
    _logged_in_admin(committed_db, page)
    configs_before = _count(committed_db, ModelConfig)
    page.goto("/imports/replies")
    page.fill("input[name=name]", "imported")
    page.select_option("select[name=set_id]", str(set_id))
    content = csv_bytes(paired_rows(["q1", "q2"]))
    page.set_input_files(
        "input[name=file]", files=[{"name": "r.csv", "mimeType": "text/csv", "buffer": content}]
    )
    page.click("form[hx-post='/imports/replies'] button[type=submit]")
    confirm = page.locator("form[hx-post*='/confirm']")
    expect(confirm).to_be_visible()
    with Session(committed_db) as s:  # someone deletes the set before the import is confirmed
        questions.delete_set(s, set_id or 0)
        s.commit()
    confirm.locator("button[type=submit]").click()
    expect_message(page, "Choose an existing question set.")
    expect(page.get_by_text("nothing will be saved")).to_be_visible()
    assert _count(committed_db, Run) == 0
    assert _count(committed_db, ModelConfig) == configs_before


def _stop_polling(page: Page, url: str) -> None:
    """The page's own refresh would hide the button; the click is what is under test."""
    page.route(
        f"**{url}",
        lambda route: route.abort() if route.request.method == "GET" else route.continue_(),
    )


# -- judging: cancel / resume ----------------------------------------------------------------


def _judge_jobs(engine: Engine, status: str) -> tuple[int, list[int]]:
    from app.jobs import queue
    from app.judging.service import group_key

    with Session(engine) as s:
        run = factories.make_run(s)
        assert run.id is not None
        jobs = [queue.enqueue(s, "judge", {"n": n}, group_key=group_key(run.id)) for n in range(2)]
        s.flush()
        for job in jobs:
            job.status = status
            s.add(job)
        s.commit()
        return run.id, [j.id for j in jobs if j.id is not None]


def _job_statuses(engine: Engine, ids: list[int]) -> list[str]:
    from app.models import Job

    with Session(engine) as s:
        return [s.get(Job, i).status for i in ids]  # type: ignore[union-attr]


def test_cancelling_judge_jobs_that_finished_meanwhile_shows(
    committed_db: Engine, page: Page
) -> None:
    run_id, ids = _judge_jobs(committed_db, "todo")
    _logged_in_admin(committed_db, page)
    page.goto(f"/results/runs/{run_id}/judge")
    _stop_polling(page, f"/results/runs/{run_id}/judge")
    cancel = page.locator(f"form[action='/results/runs/{run_id}/judge/cancel'] button")
    expect(cancel).to_be_visible()
    with Session(committed_db) as s:  # the worker finishes them while the page is open
        from app.models import Job

        for i in ids:
            job = s.get(Job, i)
            assert job is not None
            job.status = "succeeded"
            s.add(job)
        s.commit()
    cancel.click()
    expect_message(page, "No judge jobs were left to cancel.")
    assert _job_statuses(committed_db, ids) == ["succeeded", "succeeded"]


def test_resuming_judge_jobs_resumed_meanwhile_shows(committed_db: Engine, page: Page) -> None:
    from app.judging import service as judging

    run_id, ids = _judge_jobs(committed_db, "cancelled")
    _logged_in_admin(committed_db, page)
    page.goto(f"/results/runs/{run_id}/judge")
    resume = page.locator(f"form[action='/results/runs/{run_id}/judge/resume'] button")
    expect(resume).to_be_visible()
    with Session(committed_db) as s:  # resumed in another tab first
        assert judging.resume_judging(s, run_id) == 2
        s.commit()
    after_first = _job_statuses(committed_db, ids)
    _stop_polling(page, f"/results/runs/{run_id}/judge")
    resume.click()
    expect_message(page, "No cancelled judge jobs were left to resume.")
    assert _job_statuses(committed_db, ids) == after_first


# -- training: cancel ------------------------------------------------------------------------


def test_cancelling_a_training_that_finished_meanwhile_shows_why(
    committed_db: Engine, page: Page
) -> None:
    from app.models import TrainingRun

    with Session(committed_db) as s:
        training = TrainingRun(name="lora-1", status="running", total_steps=10)
        s.add(training)
        s.commit()
        training_id = training.id
    _logged_in_admin(committed_db, page)
    page.goto(f"/training/{training_id}")
    _stop_polling(page, f"/training/{training_id}/progress")
    cancel = page.locator(f"form[action='/training/{training_id}/cancel'] button")
    expect(cancel).to_be_visible()
    with Session(committed_db) as s:  # the trainer finishes while the page is open
        done = s.get(TrainingRun, training_id)
        assert done is not None
        done.status = "succeeded"
        s.add(done)
        s.commit()
    cancel.click()
    expect_message(page, "The training has already succeeded; nothing to cancel.")
    with Session(committed_db) as s:
        again = s.get(TrainingRun, training_id)
        assert again is not None and again.status == "succeeded" and not again.cancel_requested


# -- rating: "add newly finished replies" ----------------------------------------------------


def test_adding_replies_to_a_round_closed_meanwhile_shows_why(
    committed_db: Engine, page: Page
) -> None:
    from app.models import RatingItem, RatingRound
    from tests.rating.helpers import make_round

    with Session(committed_db) as s:
        round_, _runs = make_round(s, questions=2)
        s.commit()
        round_id = round_.id
    with Session(committed_db) as s:
        items_before = len(s.exec(select(RatingItem).where(RatingItem.round_id == round_id)).all())
    _logged_in_admin(committed_db, page)
    page.goto(f"/rating/rounds/{round_id}")
    sync = page.locator(f"form[action='/rating/rounds/{round_id}/sync'] button")
    expect(sync).to_be_visible()
    with Session(committed_db) as s:  # another admin closes the round first
        closed = s.get(RatingRound, round_id)
        assert closed is not None
        closed.is_open = False
        s.add(closed)
        s.commit()
    sync.click()
    expect_message(page, "The round is closed: reopen it to add replies.")
    with Session(committed_db) as s:
        assert s.get(RatingRound, round_id).is_open is False  # type: ignore[union-attr]
        items = s.exec(select(RatingItem).where(RatingItem.round_id == round_id)).all()
        assert len(items) == items_before


# -- users: deactivate / reactivate ----------------------------------------------------------


@pytest.mark.parametrize(
    ("active", "button", "message"),
    [
        pytest.param(True, "deactivate", "was already deactivated.", id="deactivate"),
        pytest.param(False, "reactivate", "is already active.", id="reactivate"),
    ],
)
def test_a_user_switched_meanwhile_shows(
    committed_db: Engine, page: Page, active: bool, button: str, message: str
) -> None:
    from app.accounts import service as accounts

    with Session(committed_db, expire_on_commit=False) as s:
        rater = factories.make_user(s)
        user = s.exec(select(User).where(User.email == rater.email)).one()
        accounts.set_active(s, user, active)
        s.commit()
        user_id = user.id
    _logged_in_admin(committed_db, page)
    page.goto("/users")
    click = page.locator(f"form[action='/users/{user_id}/{button}'] button")
    expect(click).to_be_visible()
    with Session(committed_db) as s:  # another admin does it first
        other = s.get(User, user_id)
        assert other is not None
        accounts.set_active(s, other, not active)
        s.commit()
    click.click()
    expect_message(page, f"{rater.email} {message}")
    with Session(committed_db) as s:
        assert s.get(User, user_id).is_active is (not active)  # type: ignore[union-attr]
