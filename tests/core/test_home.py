"""The home page counts what the lab holds."""

import re

from fastapi.testclient import TestClient
from sqlmodel import Session

from tests import factories


def test_home_counts_statements_runs_and_replies(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    factories.make_run(db, factories.make_question_set(db, n=3))  # 3 x 2 kinds x 2 arms
    page = admin_client.get("/", headers=htmx_headers)
    assert page.status_code == 200
    counts = dict(re.findall(r"<dt>([^<]+)</dt><dd>(?:<a [^>]*>)?(\d+)", page.text))
    assert counts["Statements"] == "3"
    assert counts["Runs"] == "1"
    assert counts["Replies"] == "12"


def test_home_shows_the_latest_runs_and_rounds_waiting(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    from app.rating.service import open_round

    run = factories.make_run(db, factories.make_question_set(db, n=3))
    run.name = "Run on three"
    db.add(run)
    open_round(db, run_ids=[run.id or 0], name="Round of three", raters_per_reply=2)
    db.flush()
    page = admin_client.get("/", headers=htmx_headers)
    assert page.status_code == 200
    recent = page.text.split('id="recent-runs"')[1].split("</section>")[0]
    assert "Run on three" in recent and f"/runs/{run.id}" in recent
    assert re.search(r"\d+ / 12", recent)  # replies done out of 12 slots
    waiting = page.text.split('id="waiting-rounds"')[1].split("</section>")[0]
    assert "Round of three" in waiting and re.search(r"0 / \d+", waiting)
