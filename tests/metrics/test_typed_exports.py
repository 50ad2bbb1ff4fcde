"""Results out as Parquet and JSON Lines: the CSV's rows, typed, read back with pyarrow; the
replies carry every LLM judge's labels; the files stream (more than one row group)."""

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.metrics import exports
from app.models import JudgeLabel
from tests import factories
from tests.metrics import helpers


@pytest.fixture
def judged_run(db: Session, admin: factories.UserWithPassword):  # type: ignore[no-untyped-def]
    """A rated run (three raters, one adjudication) with one LLM judge that skipped a reply."""
    run = factories.make_run(
        db, factories.make_question_set(db, n=6), kinds=(("neutral", "none"), ("biased", "asserts"))
    )
    raters = helpers.make_raters(db, 3)
    helpers.random_ratings(db, run, raters, admin.id, seed=7)
    slots = helpers.slots(db, run)
    slots[0].response.text = '=HYPERLINK("http://evil")'
    judge = factories.make_model_config(db, name="typed-judge")
    for i, slot in enumerate(slots[1:]):
        db.add(
            JudgeLabel(
                reply_id=slot.response.id,
                judge_model_id=judge.id,
                rubric_version="v2",
                label=("agree", "correct", "evasive")[i % 3],
                verdict="true" if i % 2 else "false",
                helpfulness=1 + i % 5,
                confidence=0.5 + i / 100,
            )
        )
    db.flush()
    return run, judge


def _csv_rows(client: TestClient, run_id: int, what: str) -> list[dict[str, str]]:
    response = client.get(f"/results/runs/{run_id}/{what}.csv")
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.text)))


def _as_csv(value: Any) -> str:
    """A typed value as the CSV writes it."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(exports.neutralise(value))


def _same_cell(csv_cell: str, value: Any) -> bool:
    if isinstance(value, datetime):
        return datetime.fromisoformat(csv_cell).replace(tzinfo=None) == value.replace(tzinfo=None)
    if isinstance(value, float):
        return abs(float(csv_cell) - value) < 1e-12
    return csv_cell == _as_csv(value)


@pytest.mark.parametrize("what", exports.WHATS)
def test_parquet_and_jsonl_hold_the_csv_rows(
    admin_client: TestClient, judged_run, what: str
) -> None:  # type: ignore[no-untyped-def]
    run, _ = judged_run
    expected = _csv_rows(admin_client, run.id, what)
    assert expected

    response = admin_client.get(f"/results/runs/{run.id}/{what}.parquet")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert f'run-{run.id}-{what}.parquet"' in response.headers["content-disposition"]
    table = pq.read_table(pa.BufferReader(response.content))
    parquet_rows = table.to_pylist()

    response = admin_client.get(f"/results/runs/{run.id}/{what}.jsonl")
    assert response.status_code == 200
    lines = response.text.splitlines()
    jsonl_rows = [json.loads(line) for line in lines]

    assert len(parquet_rows) == len(jsonl_rows) == len(expected)
    assert table.column_names[: len(exports.COLUMNS[what])] == exports.COLUMNS[what]
    for row, from_parquet, from_jsonl in zip(expected, parquet_rows, jsonl_rows, strict=True):
        assert list(from_jsonl) == table.column_names
        for column in exports.COLUMNS[what]:
            assert _same_cell(row[column], from_parquet[column]), (column, row, from_parquet)
            value = from_jsonl[column]
            if isinstance(from_parquet[column], datetime):
                value = datetime.fromisoformat(value)
            assert _same_cell(row[column], value), (column, row[column], value)


def test_typed_columns_are_typed(admin_client: TestClient, judged_run) -> None:  # type: ignore[no-untyped-def]
    run, _ = judged_run
    schema = {
        what: pq.read_table(
            pa.BufferReader(admin_client.get(f"/results/runs/{run.id}/{what}.parquet").content)
        ).schema
        for what in exports.WHATS
    }
    assert schema["replies"].field("truth").type == pa.bool_()
    assert schema["replies"].field("reply_id").type == pa.int64()
    assert schema["replies"].field("mean_helpfulness").type == pa.float64()
    assert schema["ratings"].field("created_at").type == pa.timestamp("us", tz="UTC")
    assert schema["ratings"].field("helpfulness").type == pa.int64()
    assert schema["metrics"].field("accuracy").type == pa.float64()
    assert schema["metrics"].field("accuracy_n").type == pa.int64()
    assert schema["metrics"].field("accuracy_method").type == pa.string()
    # Text is kept as it is (not a spreadsheet), where the CSV neutralises a formula.
    replies = pq.read_table(
        pa.BufferReader(admin_client.get(f"/results/runs/{run.id}/replies.parquet").content)
    ).to_pylist()
    assert replies[0]["reply"] == '=HYPERLINK("http://evil")'


def test_replies_carry_the_judges_labels(admin_client: TestClient, db: Session, judged_run) -> None:  # type: ignore[no-untyped-def]
    run, judge = judged_run
    prefix = f"judge_model-{judge.id}-v2_"
    table = pq.read_table(
        pa.BufferReader(admin_client.get(f"/results/runs/{run.id}/replies.parquet").content)
    )
    assert table.column_names[len(exports.REPLIES_COLUMNS) :] == [
        prefix + name for name in ("label", "verdict", "helpfulness", "confidence")
    ]
    assert table.schema.field(prefix + "helpfulness").type == pa.int64()
    stored = {
        j.reply_id: j
        for j in db.exec(select(JudgeLabel).where(JudgeLabel.judge_model_id == judge.id)).all()
    }
    rows = table.to_pylist()
    assert rows[0][prefix + "label"] is None  # the reply the judge skipped
    assert sum(r[prefix + "label"] is not None for r in rows) == len(stored) == len(rows) - 1
    for row in rows[1:]:
        label = stored[row["reply_id"]]
        assert row[prefix + "label"] == label.label
        assert row[prefix + "verdict"] == label.verdict
        assert row[prefix + "helpfulness"] == label.helpfulness
        assert row[prefix + "confidence"] == pytest.approx(label.confidence)
    jsonl = [
        json.loads(line)
        for line in admin_client.get(f"/results/runs/{run.id}/replies.jsonl").text.splitlines()
    ]
    assert [r[prefix + "label"] for r in jsonl] == [r[prefix + "label"] for r in rows]


def test_a_large_export_streams_in_row_groups(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    run = factories.make_run(db, factories.make_question_set(db, n=7))  # 28 replies
    monkeypatch.setattr(exports, "_BATCH", 10)
    chunks = list(exports.stream_parquet(db, "replies", run.id))
    assert len(chunks) >= 3  # bytes leave before the last row is read
    parquet = pq.ParquetFile(pa.BufferReader(b"".join(chunks)))
    assert parquet.metadata.num_row_groups == 3
    assert parquet.read().column("reply_id").to_pylist() == sorted(
        r.response.id for r in helpers.slots(db, run)
    )
    lines = list(exports.stream_jsonl(db, "replies", run.id))
    assert len(lines) == 3 and sum(chunk.count("\n") for chunk in lines) == 28


def test_an_empty_run_gives_a_readable_empty_file(db: Session) -> None:
    run = factories.make_run(db, factories.make_question_set(db, n=2), status="running")
    for slot in helpers.slots(db, run):
        slot.response.status = "pending"
    db.flush()
    table = pq.read_table(pa.BufferReader(b"".join(exports.stream_parquet(db, "replies", run.id))))
    assert table.num_rows == 0 and table.column_names == exports.REPLIES_COLUMNS
    assert list(exports.stream_jsonl(db, "replies", run.id)) == []


def test_bad_format_requests_are_refused(admin_client: TestClient, judged_run) -> None:  # type: ignore[no-untyped-def]
    run, _ = judged_run
    assert admin_client.get(f"/results/runs/{run.id}/nope.parquet").status_code == 404
    assert admin_client.get("/results/runs/999999/replies.jsonl").status_code == 404
    refused = admin_client.get(f"/results/runs/{run.id}/replies.parquet?source=judge:parser")
    assert refused.status_code == 422 and "metrics.parquet only" in refused.text


def test_export_command_writes_parquet_and_jsonl(committed_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from app.cli import cli
    from app.db import session_scope

    with session_scope(committed_db) as session:
        admin = factories.make_user(session, role="admin")
        run = factories.make_run(session)
        helpers.random_ratings(session, run, helpers.make_raters(session, 3), admin.id)
        run_id = run.id
    out = tmp_path / "ratings.parquet"
    result = CliRunner().invoke(
        cli, ["export", str(run_id), "--what", "ratings", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.column_names == exports.RATINGS_COLUMNS and table.num_rows > 0
    out = tmp_path / "replies.txt"
    result = CliRunner().invoke(
        cli, ["export", str(run_id), "--what", "replies", "--format", "jsonl", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["reply_id"] for r in rows] == sorted(r["reply_id"] for r in rows)
    assert len(rows) == 24
    bad = CliRunner().invoke(cli, ["export", str(run_id), "--format", "xlsx"])
    assert bad.exit_code != 0 and "--format" in bad.output


def test_metrics_from_a_judge_come_typed_too(admin_client: TestClient, judged_run) -> None:  # type: ignore[no-untyped-def]
    run, judge = judged_run
    source = f"judge:model-{judge.id}-v2"
    expected = list(
        csv.DictReader(
            io.StringIO(
                admin_client.get(f"/results/runs/{run.id}/metrics.csv?source={source}").text
            )
        )
    )
    response = admin_client.get(f"/results/runs/{run.id}/metrics.parquet?source={source}")
    assert response.status_code == 200
    rows = pq.read_table(pa.BufferReader(response.content)).to_pylist()
    assert len(rows) == len(expected) > 0
    assert {r["source"] for r in rows} == {source}
    for row, from_csv in zip(rows, expected, strict=True):
        for column in ("arm", "kind", "accuracy", "accuracy_n", "sycophancy_erroneous"):
            assert _same_cell(from_csv[column], row[column]), column
    unknown = admin_client.get(f"/results/runs/{run.id}/metrics.jsonl?source=judge:nobody")
    assert unknown.status_code == 422
