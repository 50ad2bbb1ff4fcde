"""`sdilab import-replies` against a committed database."""

from pathlib import Path

import typer
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select
from typer.testing import CliRunner

from app.db import session_scope
from app.imports.cli import register
from app.models import Reply, Run, RunArm
from tests import factories
from tests.imports.helpers import csv_bytes, paired_rows


def _cli() -> typer.Typer:
    cli = typer.Typer()
    register(cli)
    cli.command("noop", hidden=True)(lambda: None)  # keeps typer in multi-command mode
    return cli


def _file(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp_path / "replies.csv"
    path.write_bytes(csv_bytes(rows))
    return path


def test_import_replies_with_a_baseline(committed_db: Engine, tmp_path: Path) -> None:
    with session_scope(committed_db) as s:
        factories.imported_question_set(s)
    path = _file(tmp_path, paired_rows(["s1", "s2", "s3"]))
    result = CliRunner().invoke(
        _cli(),
        ["import-replies", str(path), "--set", "facts", "--name", "ui", "--baseline", "gpt-b"],
    )
    assert result.exit_code == 0, result.output
    assert "Imported 12 replies into run 'ui'" in result.output
    assert "baseline: gpt-b, 6 replies" in result.output
    with Session(committed_db) as s:
        run = s.exec(select(Run)).one()
        assert run.source == "imported"
        labels = s.exec(select(RunArm.label).order_by(col(RunArm.position))).all()
        assert labels == ["baseline", "gpt-a"]
        assert s.exec(select(func.count()).select_from(Reply)).one() == 12


def test_a_bad_row_exits_nonzero_names_it_and_saves_nothing(
    committed_db: Engine, tmp_path: Path
) -> None:
    with session_scope(committed_db) as s:
        factories.imported_question_set(s)
    rows = paired_rows(["s1", "s2", "s3"])
    rows[6]["variant_kind"] = "sneaky"
    path = _file(tmp_path, rows)
    result = CliRunner().invoke(
        _cli(), ["import-replies", str(path), "--set", "facts", "--name", "x"]
    )
    assert result.exit_code == 1
    assert "1 problem(s); nothing imported" in result.output
    assert "row 7 (line 8), column variant_kind: 'sneaky' is not one of" in result.output
    missing = CliRunner().invoke(
        _cli(), ["import-replies", str(path), "--set", "nope", "--name", "x"]
    )
    assert missing.exit_code == 1 and "No question set named 'nope'" in missing.output
    good = _file(tmp_path, paired_rows(["s1"]))
    wrong = CliRunner().invoke(
        _cli(), ["import-replies", str(good), "--set", "facts", "--name", "x", "--baseline", "zz"]
    )
    assert wrong.exit_code == 1 and "not one of the file's models" in wrong.output
    with Session(committed_db) as s:
        assert s.exec(select(func.count()).select_from(Run)).one() == 0
