"""Migration 0002 drops rating_rounds.rating_count without touching the rounds' rows; going
back re-adds it, counted from the ratings."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app import migrate
from app.db import build_engine
from app.rating import leases, submissions
from tests import factories
from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL, _reset_postgres
from tests.rating.helpers import make_round, rating_input, walk

COUNTS = {
    table: f"SELECT count(*) FROM {table}"
    for table in ("rating_items", "rating_rater_states", "rating_leases", "ratings")
}


@pytest.fixture
def scratch_url(engine: Engine) -> Iterator[str]:
    """A database of its own at head: a new SQLite file, or the test Postgres one (rebuilt)."""
    url = TEST_DATABASE_URL if IS_POSTGRES else f"sqlite:///{Path(tempfile.mkdtemp()) / 'm.db'}"
    if IS_POSTGRES:
        _reset_postgres(engine)
    migrate.upgrade(url)
    try:
        yield url
    finally:
        if IS_POSTGRES:
            _reset_postgres(engine)
            migrate.upgrade(TEST_DATABASE_URL)


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {table: int(conn.execute(text(sql)).scalar() or 0) for table, sql in COUNTS.items()}


def test_downgrade_counts_each_rounds_ratings_and_upgrade_keeps_the_queue(
    scratch_url: str,
) -> None:
    scratch = build_engine(scratch_url)
    with Session(scratch, expire_on_commit=False) as s:
        full, _ = make_round(s, k=2, questions=1)
        partly, _ = make_round(s, k=1, questions=1)
        a, b = factories.make_user(s).id, factories.make_user(s).id
        walk(s, full, a)
        walk(s, full, b)
        rid = leases.next_for(s, partly, a)
        assert rid is not None
        submissions.submit(s, partly, a, rid, rating_input())
        assert leases.next_for(s, partly, a) is not None  # an open lease, not a rating
        s.commit()
    before = _counts(scratch)
    assert before["ratings"] == 2 * 4 + 1
    scratch.dispose()

    migrate.downgrade(scratch_url, "0001")
    with scratch.connect() as conn:
        rows = conn.execute(text("SELECT id, rating_count FROM rating_rounds")).all()
    assert dict(rows) == {full.id: 8, partly.id: 1}
    assert _counts(scratch) == before

    migrate.upgrade(scratch_url)
    columns = {c["name"] for c in inspect(scratch).get_columns("rating_rounds")}
    assert "rating_count" not in columns and "item_count" in columns
    assert _counts(scratch) == before
    scratch.dispose()
