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
