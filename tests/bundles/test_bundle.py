"""A study bundle round trip: exported from the test database, imported into a fresh one
(SQLite; and on a Postgres test run, Postgres -> fresh SQLite -> fresh Postgres), every run's
results JSON is the same figure for figure, with human, judge and PPI labels."""

import hashlib
import io
import json
import re
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, select

from app import migrate
from app.bundles import service as bundles
from app.db.engine import build_engine
from app.metrics import service as metrics
from app.metrics import sources
from app.models import JudgeLabel, ModelConfig, Rating, Run, RunArm, User
from app.rating import service as rating_service
from tests import factories
from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL
from tests.html import find
from tests.metrics import helpers
from tests.training.sdi_like import make_dataset

RESAMPLES = 200


@pytest.fixture
def study(db: Session, admin: factories.UserWithPassword) -> dict[str, Any]:
    """A rated run in a sampled round (three raters, adjudications), an LLM judge on every
    reply, an SDI dataset behind the SDI arm's config (with secrets in its extra settings)."""
    qs = factories.make_question_set(db, n=8)
    run = factories.make_run(
        db,
        qs,
        kinds=(("neutral", "none"), ("biased", "asserts"), ("biased", "negates")),
    )
    for i, slot in enumerate(helpers.slots(db, run)):
        if i % 3 == 0:
            slot.response.text = "True, certainly."
            slot.response.verdict = "true"
    round_ = rating_service.open_round(
        db, run_ids=[run.id], name="study round", raters_per_reply=2, sample_size=30
    )
    raters = helpers.make_raters(db, 3)
    helpers.random_ratings(db, run, raters, admin.id, seed=11, adjudicate_share=0.2)
    for rating in db.exec(select(Rating)).all():
        rating.round_id = round_.id
    judge = factories.make_model_config(db, name="study judge")
    labels = ("agree", "correct", "evasive")
    for i, slot in enumerate(helpers.slots(db, run)):
        db.add(
            JudgeLabel(
                reply_id=slot.response.id,
                judge_model_id=judge.id,
                rubric_version="v2",
                label=labels[i % 3] if i % 7 else labels[(i + 1) % 3],
                verdict=slot.response.verdict,
                helpfulness=1 + i % 5,
                confidence=0.9,
            )
        )
    dataset = make_dataset(db, qs)
    sdi_arm = db.exec(select(RunArm).where(RunArm.run_id == run.id, RunArm.label == "sdi")).one()
    config = db.get(ModelConfig, sdi_arm.model_config_id)
    assert config is not None
    config.sdi_dataset_id = dataset.id
    config.api_key_env = "STUDY_API_KEY"
    config.extra = {"api_key": "sk-very-secret", "Authorization": "Bearer x", "note": "kept"}
    db.flush()
    return {"run": run, "judge": judge, "dataset": dataset, "raters": raters}


def _results(session: Session, run_id: int, judge_id: int) -> dict[str, Any]:
    """The run's results JSON from each source of labels."""
    out = {}
    for source in ("human", f"judge:model-{judge_id}-v2", f"ppi:model-{judge_id}-v2"):
        results = metrics.run_results(
            session, run_id, resamples=RESAMPLES, source=sources.parse(source), use_snapshot=False
        )
        out[source.split(":")[0]] = results.model_dump(mode="json")
    return out


@dataclass
class Ids:
    """What is numbered differently in the target database: the run, its arms, the judge."""

    run: int
    arms: dict[str, int]
    judge: int


def _ids(session: Session, run_id: int, judge_name: str | None) -> Ids:
    arms = session.exec(select(RunArm).where(RunArm.run_id == run_id)).all()
    judge = _judge_id(session, judge_name) if judge_name else 0
    return Ids(run_id, {a.label: a.id for a in arms if a.id is not None}, judge)


def _renumbered(value: Any, old: Ids, new: Ids, key: str = "") -> Any:
    """The results of the source database with the target's ids."""
    arms = {old.arms[label]: new.arms[label] for label in old.arms}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "run_id" and v == old.run:
                out[k] = new.run
            elif (k.endswith("arm_id") or (key == "arms" and k == "id")) and v in arms:
                out[k] = arms[v]
            else:
                out[k] = _renumbered(v, old, new, k)
        return out
    if isinstance(value, list):
        return [_renumbered(v, old, new, key) for v in value]
    if isinstance(value, str):
        return re.sub(rf"\bmodel-{old.judge}-", f"model-{new.judge}-", value)
    return value


@contextmanager
def fresh_database(kind: str) -> Iterator[Engine]:
    """An empty database migrated to head: a temporary SQLite file, or a new Postgres
    database beside the test one."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'fresh.db'}"
            migrate.upgrade(url)
            engine = build_engine(url)
            yield engine
            engine.dispose()
        return
    base = make_url(TEST_DATABASE_URL)
    name = f"{base.database}_bundle"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        engine = build_engine(url)
        yield engine
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _import(engine: Engine, data: bytes) -> tuple[bundles.Imported, Session]:
    session = Session(engine, expire_on_commit=False)
    imported = bundles.import_bundle(session, io.BytesIO(data))
    session.commit()
    return imported, session


def _judge_id(session: Session, name: str) -> int:
    config = session.exec(select(ModelConfig).where(ModelConfig.name == name)).one()
    assert config.id is not None
    return config.id


def test_a_bundle_gives_the_same_results_in_a_fresh_database(
    db: Session, study: dict[str, Any]
) -> None:
    run_id, judge_id = study["run"].id, study["judge"].id
    expected = _results(db, run_id, judge_id)
    ids = _ids(db, run_id, "study judge")
    assert expected["human"]["metrics"] and expected["ppi"]["ppi"]
    buffer = io.BytesIO()
    bundles.export_bundle(db, buffer, [run_id])
    data = buffer.getvalue()

    legs = ["sqlite", "postgres"] if IS_POSTGRES else ["sqlite"]
    for kind in legs:
        with fresh_database(kind) as engine:
            imported, session = _import(engine, data)
            with session:
                new = _ids(session, imported.runs[ids.run], "study judge")
                got = _results(session, new.run, new.judge)
                assert got == _renumbered(expected, ids, new)
                # The next leg imports what this database exports.
                buffer = io.BytesIO()
                bundles.export_bundle(session, buffer)
                data = buffer.getvalue()
                ids, expected = new, got


def _bundle(db: Session, run_id: int) -> bytes:
    buffer = io.BytesIO()
    bundles.export_bundle(db, buffer, [run_id])
    return buffer.getvalue()


def test_the_manifest_hashes_every_member_and_names_the_version(
    db: Session, study: dict[str, Any]
) -> None:
    data = _bundle(db, study["run"].id)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["format"] == "sdilab-bundle" and manifest["format_version"] == 1
        assert manifest["app_version"] == bundles.app_version() != "unknown"
        assert manifest["runs"] == [{"id": study["run"].id, "name": study["run"].name}]
        members = manifest["members"]
        assert set(members) == {f"{name}.jsonl" for name in bundles.PART_NAMES}
        assert set(archive.namelist()) == set(members) | {"manifest.json"}
        for name, meta in members.items():
            content = archive.read(name)
            assert hashlib.sha256(content).hexdigest() == meta["sha256"]
            assert len(content) == meta["bytes"]
            assert len(content.splitlines()) == meta["rows"]
        assert members["replies.jsonl"]["rows"] == 48
        assert members["raters.jsonl"]["rows"] >= 3
        assert members["sdi_examples.jsonl"]["rows"] == 16
        assert members["judge_labels.jsonl"]["rows"] == 48
        everything = b"".join(archive.read(n) for n in archive.namelist())
    # No key, no account: only pseudonyms and the key variable's name.
    assert b"sk-very-secret" not in everything and b"Bearer" not in everything
    assert b"STUDY_API_KEY" in everything and b'"note": "kept"' in everything
    emails = [u.email for u in db.exec(select(User)).all()]
    assert emails and not any(email.encode() in everything for email in emails)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        raters = [json.loads(line) for line in archive.read("raters.jsonl").splitlines()]
    assert [r["pseudonym"] for r in raters] == [f"R{i}" for i in range(1, len(raters) + 1)]
    assert set(raters[0]) == {"id", "pseudonym", "role"}


def _tampered(data: bytes, member: str, change: Any) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            target.writestr(name, change(content) if name == member else content)
    return out.getvalue()


@pytest.mark.parametrize(
    ("member", "change", "message"),
    [
        ("ratings.jsonl", lambda b: b.replace(b'"agree"', b'"correct"', 1), "SHA-256"),
        ("manifest.json", lambda b: b.replace(b'"sdilab-bundle"', b'"other"'), "manifest"),
        (
            "manifest.json",
            lambda b: b.replace(b'"format_version": 1', b'"format_version": 9'),
            "version",
        ),
    ],
)
def test_an_altered_bundle_is_refused_and_nothing_is_imported(
    db: Session, study: dict[str, Any], member: str, change: Any, message: str
) -> None:
    data = _tampered(_bundle(db, study["run"].id), member, change)
    with fresh_database("sqlite") as engine, Session(engine) as session:
        with pytest.raises(bundles.BundleError, match=message):
            bundles.import_bundle(session, io.BytesIO(data))
        session.rollback()
        assert session.exec(select(Run)).all() == []


def test_not_a_bundle_is_refused(db: Session) -> None:
    with pytest.raises(bundles.BundleError, match="not a zip"):
        bundles.import_bundle(db, io.BytesIO(b"hello"))
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("x.txt", "x")
    with pytest.raises(bundles.BundleError, match=r"no manifest\.json"):
        bundles.import_bundle(db, io.BytesIO(empty.getvalue()))
    with pytest.raises(bundles.BundleError, match="No run 999999"):
        bundles.export_bundle(db, io.BytesIO(), [999999])


def test_importing_twice_renames_what_is_taken(db: Session, study: dict[str, Any]) -> None:
    data = _bundle(db, study["run"].id)
    with fresh_database("sqlite") as engine:
        first, session = _import(engine, data)
        session.close()
        second, session = _import(engine, data)
        with session:
            assert first.runs != second.runs
            assert any("(bundle 1)" in note for note in second.renamed)
            names = [c.name for c in session.exec(select(ModelConfig)).all()]
            assert "study judge" in names and "study judge (bundle 1)" in names
            # The same raters (one account per pseudonym and bundle), none able to log in.
            users = session.exec(select(User)).all()
            assert len(users) == first.rows["raters"]
            assert all(not u.is_active and not u.password_hash for u in users)
            assert all(u.email.endswith("@bundle.invalid") for u in users)


def test_the_commands_export_and_import(committed_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from app.cli import cli
    from app.db import session_scope

    with session_scope(committed_db) as session:
        admin = factories.make_user(session, role="admin")
        run = factories.make_run(session)
        helpers.random_ratings(session, run, helpers.make_raters(session, 3), admin.id)
        run_id = run.id
    out = tmp_path / "study.zip"
    result = CliRunner().invoke(cli, ["bundle", "export", str(out), "--run", str(run_id)])
    assert result.exit_code == 0, result.output
    assert "1 run(s), 24 replies" in result.output and out.exists()
    result = CliRunner().invoke(cli, ["bundle", "import", str(out)])
    assert result.exit_code == 0, result.output
    new_id = int(re.search(rf"run {run_id} is now run (\d+)", result.output).group(1))  # type: ignore[union-attr]
    with session_scope(committed_db) as session:
        before = metrics.run_results(session, run_id, resamples=RESAMPLES, use_snapshot=False)
        after = metrics.run_results(session, new_id, resamples=RESAMPLES, use_snapshot=False)
        assert after.model_dump(mode="json") == _renumbered(
            before.model_dump(mode="json"), _ids(session, run_id, None), _ids(session, new_id, None)
        )
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"nope")
    result = CliRunner().invoke(cli, ["bundle", "import", str(bad)])
    assert result.exit_code == 1 and "nothing imported" in result.output


def test_the_page_downloads_and_imports_a_bundle(
    admin_client: TestClient, db: Session, study: dict[str, Any], htmx_headers: dict[str, str]
) -> None:
    run_id = study["run"].id
    page = admin_client.get("/bundles", headers=htmx_headers)
    assert page.status_code == 200
    links = [a.attrs.get("href") for a in find(page.text, "a")]
    assert f"/bundles/study.zip?runs={run_id}" in links
    results = admin_client.get(f"/results/runs/{run_id}")
    assert f"/bundles/study.zip?runs={run_id}" in [
        a.attrs.get("href") for a in find(results.text, "a")
    ]
    download = admin_client.get(f"/bundles/study.zip?runs={run_id}")
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    assert f'sdilab-study-runs-{run_id}.zip"' in download.headers["content-disposition"]
    done = admin_client.post(
        "/bundles/import",
        files={"file": ("study.zip", download.content, "application/zip")},
        headers=htmx_headers,
    )
    assert done.status_code == 200, done.text
    status = find(done.text, "div", role="status")
    assert status and f"Run {run_id} of the bundle is run" in status[0].text
    new_id = int(re.search(rf"Run {run_id} of the bundle is run (\d+)", status[0].text).group(1))  # type: ignore[union-attr]
    assert db.get(Run, new_id) is not None


def test_the_page_shows_why_a_bundle_is_refused(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    before = len(db.exec(select(Run)).all())
    refused = admin_client.post(
        "/bundles/import",
        files={"file": ("study.zip", b"not a zip", "application/zip")},
        headers=htmx_headers,
    )
    assert refused.status_code == 400
    alert = find(refused.text, "p", role="alert")
    assert alert and "not a zip bundle" in alert[0].text and "nothing was imported" in alert[0].text
    empty = admin_client.post("/bundles/import", data={}, headers=htmx_headers)
    assert empty.status_code == 400 and "Choose a bundle" in empty.text
    assert len(db.exec(select(Run)).all()) == before
    assert admin_client.get("/bundles/study.zip?runs=999999").status_code == 404
    assert admin_client.get("/bundles/study.zip?runs=x").status_code == 422


def test_raters_cannot_use_bundles(rater_client: TestClient) -> None:
    assert rater_client.get("/bundles").status_code == 403
    assert rater_client.get("/bundles/study.zip").status_code == 403
    assert rater_client.post("/bundles/import", data={}).status_code == 403


def test_one_run_of_a_shared_round_travels_alone(
    db: Session, admin: factories.UserWithPassword
) -> None:
    """Two runs of one question set rated in one round: a bundle of one of them holds that
    run's share of the round only, and its results are the same."""
    qs = factories.make_question_set(db, n=6)
    first, second = factories.make_run(db, qs), factories.make_run(db, qs)
    round_ = rating_service.open_round(
        db, run_ids=[first.id, second.id], name="shared", raters_per_reply=2
    )
    raters = helpers.make_raters(db, 3)
    helpers.random_ratings(db, first, raters, admin.id, seed=5)
    helpers.random_ratings(db, second, raters, admin.id, seed=6)
    for rating in db.exec(select(Rating)).all():
        rating.round_id = round_.id
    db.flush()
    expected = metrics.run_results(db, first.id, resamples=RESAMPLES, use_snapshot=False)
    data = _bundle(db, first.id)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = json.loads(archive.read("manifest.json"))["members"]
        round_runs = [json.loads(x) for x in archive.read("rating_round_runs.jsonl").splitlines()]
    assert [r["run_id"] for r in round_runs] == [first.id]
    assert members["replies.jsonl"]["rows"] == 24 and members["question_sets.jsonl"]["rows"] == 1
    assert members["rating_items.jsonl"]["rows"] == 24
    with fresh_database("sqlite") as engine:
        imported, session = _import(engine, data)
        with session:
            new_id = imported.runs[first.id]
            got = metrics.run_results(session, new_id, resamples=RESAMPLES, use_snapshot=False)
            assert got.model_dump(mode="json") == _renumbered(
                expected.model_dump(mode="json"),
                _ids(db, first.id, None),
                _ids(session, new_id, None),
            )
            assert len(session.exec(select(Run)).all()) == 1
