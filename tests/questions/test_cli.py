"""`sdilab import` and `sdilab seed` against a committed database."""

from pathlib import Path

import typer
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select
from typer.testing import CliRunner

from app.cli import cli as sdilab
from app.models import Question, QuestionSet, VariantTemplate
from tests.questions.helpers import csv_bytes, distinct_statements, rows_for


def _cli() -> typer.Typer:
    return sdilab


def _counts(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session:
        return (
            session.exec(select(func.count()).select_from(QuestionSet)).one(),
            session.exec(select(func.count()).select_from(Question)).one(),
        )


def _thousand_rows(tmp_path: Path, bad_row: int | None) -> Path:
    rows = rows_for(distinct_statements(1000, seed=11))
    if bad_row is not None:
        rows[bad_row - 1]["truth"] = "sometimes"
    path = tmp_path / "thousand.csv"
    path.write_bytes(csv_bytes(rows))
    return path


def test_import_with_one_bad_row_exits_nonzero_names_it_and_saves_nothing(
    committed_db: Engine, tmp_path: Path
) -> None:
    path = _thousand_rows(tmp_path, bad_row=617)
    result = CliRunner().invoke(_cli(), ["import", str(path), "--name", "thousand"])
    assert result.exit_code == 1
    assert "row 617 (line 618), column truth" in result.output
    assert "'sometimes' is not a truth value" in result.output
    assert "nothing imported" in result.output
    assert _counts(committed_db) == (0, 0)


def test_import_without_the_bad_row_imports_everything(
    committed_db: Engine, tmp_path: Path
) -> None:
    path = _thousand_rows(tmp_path, bad_row=None)
    result = CliRunner().invoke(_cli(), ["import", str(path), "--name", "thousand"])
    assert result.exit_code == 0, result.output
    assert "Imported 1000 statements into set 'thousand'" in result.output
    assert "Duplicates flagged: 0" in result.output
    assert _counts(committed_db) == (1, 1000)
    again = CliRunner().invoke(_cli(), ["import", str(path), "--name", "thousand"])
    assert again.exit_code == 1 and "already exists" in again.output
    assert _counts(committed_db) == (1, 1000)


def test_import_reports_duplicates(committed_db: Engine, tmp_path: Path) -> None:
    path = tmp_path / "dups.jsonl"
    path.write_text(
        '{"statement": "Cats are mammals.", "truth": true}\n'
        '{"statement": "cats are mammals!", "truth": false}\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(_cli(), ["import", str(path), "--name", "dups"])
    assert result.exit_code == 0, result.output
    assert "with conflicting labels: 1" in result.output
    assert "row 2: duplicate of row 1, conflicting label" in result.output


def test_seed_is_idempotent(committed_db: Engine) -> None:
    runner = CliRunner()
    first = runner.invoke(_cli(), ["seed"])
    assert first.exit_code == 0, first.output
    assert "Loaded question set 'seed'" in first.output
    with Session(committed_db) as session:
        templates = session.exec(select(func.count()).select_from(VariantTemplate)).one()
    assert templates > 20
    assert _counts(committed_db) == (1, 100)
    second = runner.invoke(_cli(), ["seed"])
    assert second.exit_code == 0
    assert "already present" in second.output and "added: 0" in second.output
    assert _counts(committed_db) == (1, 100)
    with Session(committed_db) as session:
        assert session.exec(select(func.count()).select_from(VariantTemplate)).one() == templates
