"""Migrations keep data: a database filled at each revision (every table, with edge values)
upgrades to head with every row and value kept, and downgrades back to it likewise."""

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from app import migrate
from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL, _reset_postgres
from tests.core import migration_data as data

SCRIPTS = ScriptDirectory.from_config(migrate.alembic_config())
REVISIONS = [s.revision for s in reversed(list(SCRIPTS.walk_revisions()))]
# What a migration renames or rewrites on purpose, by the revision that does it.
RENAMED_TABLES = {"0004": {"responses": "replies"}}
RENAMED_COLUMNS = {"0004": {"response_id": "reply_id"}}
REWRITTEN = {
    "0005": {
        ("jobs", "task"): {"metrics.judge": "judging.judge"},
        ("jobs", "lock_key"): {"response:41": "reply:41", "response:42": "reply:42"},
    }
}


def _after(revision: str) -> list[str]:
    return REVISIONS[REVISIONS.index(revision) + 1 :]


def _merged(table: dict[str, Any], revision: str) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for later in _after(revision):
        out |= table.get(later, {})
    return out


@pytest.fixture
def scratch(engine: Engine, tmp_path: Path) -> Iterator[str]:
    """A database of its own: a new SQLite file, or the test Postgres one (re-migrated after)."""
    if not IS_POSTGRES:
        yield f"sqlite:///{tmp_path / 'data.db'}"
        return
    _reset_postgres(engine)
    try:
        yield TEST_DATABASE_URL
    finally:
        _reset_postgres(engine)
        migrate.upgrade(TEST_DATABASE_URL)


def _project(
    rows: dict[str, dict[Any, dict[str, Any]]], keep: dict[str, dict[Any, dict[str, Any]]]
) -> dict[str, dict[Any, dict[str, Any]]]:
    """``rows`` without the tables and columns that ``keep`` lacks."""
    out = {}
    for table, by_key in rows.items():
        if table not in keep or not keep[table]:
            continue
        columns = set(next(iter(keep[table].values())))
        out[table] = {k: {c: v for c, v in r.items() if c in columns} for k, r in by_key.items()}
    return out


@pytest.mark.slow
@pytest.mark.parametrize("revision", REVISIONS)
def test_a_filled_database_keeps_every_value_through_upgrade_and_downgrade(
    scratch: str, revision: str
) -> None:
    migrate.upgrade(scratch, revision)
    with data.engine_at(scratch) as eng:
        inserted = data.populate(eng)
        assert all(len(rows) == data.ROWS for rows in inserted.values())
        before = data.read_all(eng)
    after, lost = _upgraded(scratch, revision, before)
    assert lost == [], f"upgrading from {revision} changed data:\n" + "\n".join(lost[:20])
    migrate.downgrade(scratch, revision)
    back = data.read_url(scratch)
    # Columns that a later revision added and dropped again are not compared (their data is
    # gone by design); everything that survived the round trip must be as it was.
    kept = _project(before, back)
    survived = {
        t: {
            k: {c: v for c, v in r.items() if c in _columns_at_head(after, t, revision)}
            for k, r in rows.items()
        }
        for t, rows in kept.items()
    }
    lost = list(data.differences(survived, back, {}, {}, {}))
    assert lost == [], f"downgrading to {revision} changed data:\n" + "\n".join(lost[:20])


def _upgraded(
    url: str, revision: str, before: dict[str, dict[Any, dict[str, Any]]]
) -> tuple[dict[str, dict[Any, dict[str, Any]]], list[str]]:
    """Upgrade ``url`` from ``revision`` to head: its rows after, and what ``before`` lost
    (beside the renames and rewrites the migrations since ``revision`` declare)."""
    migrate.upgrade(url, "head")
    after = data.read_url(url)
    lost = data.differences(
        before,
        after,
        _merged(RENAMED_TABLES, revision),
        _merged(RENAMED_COLUMNS, revision),
        _merged(REWRITTEN, revision),
    )
    return after, list(lost)


def _columns_at_head(
    after: dict[str, dict[Any, dict[str, Any]]], table: str, revision: str
) -> set[str]:
    """The columns of ``table`` (as named at ``revision``) that exist at head."""
    new_table = _merged(RENAMED_TABLES, revision).get(table, table)
    rows = after.get(new_table) or {}
    if not rows:
        return set()
    head = set(next(iter(rows.values())))
    back = {v: k for k, v in _merged(RENAMED_COLUMNS, revision).items()}
    return {back.get(c, c) for c in head}


FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("data_at_*.json"))
# Released migrations are never edited again: a schema change is a new revision. A new one is
# added here once it has landed.
RELEASED = {
    "2026_11_30_0001_initial_schema.py": (
        "b85ccb6b072deddf59dab9c120faf5f1bb0a75b572d79a8a795bab29f0683a05"
    ),
    "2026_11_30_0002_drop_round_rating_count.py": (
        "6d6d399368f6242099099c5f3005f7b1fb23cf853042c1d22cb5325379e3c118"
    ),
    "2026_12_06_0003_tally_changed_at.py": (
        "6296efec0cef92b9481181e6019c043200ebba25a18bf89e01bf723a25884762"
    ),
    "2026_12_07_0004_replies.py": (
        "ef59680a590fc2eb761cd6218e8e7b2e81c92dc880d611b75a935c6cc7abb1b8"
    ),
    "2026_12_07_0005_job_limit_run_version.py": (
        "3fffc7519713bc98abafe6d9b18b9ac8f35b93fe2e850ade42df33e31941de16"
    ),
    "2026_12_07_0006_judge_sampling.py": (
        "2fa03a2f8c278ab9fb961be702a379a060c126be861f8cf82251b5ae11a5f37f"
    ),
    "2026_12_07_0007_h4_rating_tokens.py": (
        "a99f79d670dd634e250b76fa6bba136207a48bcd587ebdd30ddbc32873e4cb20"
    ),
    "2026_12_07_0008_cache_policy.py": (
        "0165005daa49a818fec087d48b4ace7272026dbadffba275eb4b1903fb900e0c"
    ),
    "2026_12_07_0009_api_tokens.py": (
        "a1dc9812f6f63c18400a96ce35dcecc6e2a26cd504638536e00dbe12176a213a"
    ),
}


def test_released_migrations_are_unchanged() -> None:
    versions = migrate.ROOT / "migrations" / "versions"
    for name, digest in RELEASED.items():
        assert hashlib.sha256((versions / name).read_bytes()).hexdigest() == digest, (
            f"{name} was edited; write a new revision instead"
        )


def test_a_fixture_of_this_release_exists() -> None:
    assert FIXTURES, "commit a data fixture made at the current head (see migration_data.py)"


@pytest.mark.slow
@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_committed_data_fixtures_upgrade_to_head_intact(scratch: str, fixture: Path) -> None:
    """A database filled at an earlier release (committed data, not made by today's code)
    upgrades to head with every row and value kept."""
    text = fixture.read_text(encoding="utf-8")
    revision = json.loads(text)["revision"]
    migrate.upgrade(scratch, revision)
    with data.engine_at(scratch) as eng:
        data.load(eng, text)
        before = data.read_all(eng)
    assert sum(len(rows) for rows in before.values()) > 0
    _after, lost = _upgraded(scratch, revision, before)
    assert lost == [], "\n".join(lost[:20])
