"""`sdilab sdi build|export|in-context` and the experiment page."""

import json
from pathlib import Path

import typer
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.db import session_scope
from app.models import ModelConfig, QuestionSet
from app.sdi.cli import register
from app.sdi.openai_format import validate_text
from tests import factories
from tests.sdi.helpers import STATEMENTS, TEST_ROWS


def _cli() -> typer.Typer:
    cli = typer.Typer()
    register(cli)
    return cli


def test_build_twice_with_a_seed_exports_identical_bytes(
    committed_db: Engine, tmp_path: Path
) -> None:
    from app.questions.service import seed_question_set

    with session_scope(committed_db) as session:
        seed_question_set(session)  # the shipped seed set, named "seed"
        factories.make_question_set(session, name="held-out", rows=TEST_ROWS)
    runner = CliRunner()
    for name in ("one", "two"):
        result = runner.invoke(
            _cli(),
            ["sdi", "build", "--set", "seed", "--name", name, "--seed", "9",
             "--test-set", "held-out", "--size", "120"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "examples" in result.output
    for fmt in ("openai", "hf"):
        files = []
        for name in ("one", "two"):
            out = tmp_path / f"{name}-{fmt}.jsonl"
            result = runner.invoke(
                _cli(), ["sdi", "export", name, "--format", fmt, "--out", str(out)]
            )
            assert result.exit_code == 0, result.output
            files.append(out.read_bytes())
        assert files[0] == files[1] and files[0]
        lines = files[0].decode().splitlines()
        assert all("messages" in json.loads(line) for line in lines)
        if fmt == "openai":
            assert validate_text(files[0].decode()).ok


def test_build_refuses_a_leak_and_the_same_set(committed_db: Engine) -> None:
    with session_scope(committed_db) as session:
        factories.make_question_set(session, name="train", rows=STATEMENTS)
        factories.make_question_set(
            session, name="leaky", rows=[*TEST_ROWS, ("Seven is a prime number", True, "", "", "")]
        )
    runner = CliRunner()
    leak = runner.invoke(
        _cli(), ["sdi", "build", "--set", "train", "--name", "x", "--test-set", "leaky"]
    )
    assert leak.exit_code == 1
    assert "Seven is a prime number" in " ".join(leak.output.split())
    removed = runner.invoke(
        _cli(),
        ["sdi", "build", "--set", "train", "--name", "x", "--test-set", "leaky",
         "--leakage", "remove"],
    )  # fmt: skip
    assert removed.exit_code == 0, removed.output
    same = runner.invoke(
        _cli(), ["sdi", "build", "--set", "train", "--name", "y", "--test-set", "train"]
    )
    assert same.exit_code == 1 and "must not be the test set" in " ".join(same.output.split())
    missing = runner.invoke(_cli(), ["sdi", "export", "nope", "--out", "/dev/null"])
    assert missing.exit_code == 1


def test_in_context_command(committed_db: Engine) -> None:
    with session_scope(committed_db) as session:
        factories.make_question_set(session, name="train", rows=STATEMENTS)
        factories.make_model_config(session, name="base")
    runner = CliRunner()
    assert runner.invoke(_cli(), ["sdi", "build", "--set", "train", "--name", "d"]).exit_code == 0
    result = runner.invoke(
        _cli(), ["sdi", "in-context", "d", "--base", "base", "--name", "base+sdi", "--shots", "3"]
    )
    assert result.exit_code == 0, result.output
    with session_scope(committed_db) as session:
        model = session.exec(select(ModelConfig).where(ModelConfig.name == "base+sdi")).one()
        assert (model.sdi_mode, model.sdi_shots) == ("in_context", 3)


def test_experiment_page(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    factories.make_question_set(db, name="seed", rows=STATEMENTS)
    factories.make_model_config(db, name="base-model")
    page = admin_client.get("/experiments/paper", headers=htmx_headers)
    assert page.status_code == 200
    assert ('<header class="topbar">' in page.text) is (not htmx_headers)
    assert 'action="/experiments/paper"' in page.text and "base-model" in page.text
    seed = db.exec(select(QuestionSet).where(QuestionSet.name == "seed")).one()
    model = db.exec(select(ModelConfig).where(ModelConfig.name == "base-model")).one()
    # No active templates: the run cannot be created and nothing is kept.
    failed = admin_client.post(
        "/experiments/paper",
        data={"model_id": str(model.id), "set_id": str(seed.id), "test_fraction": "0.3"},
        headers=htmx_headers,
    )
    assert failed.status_code == 422
    assert "no templates" in failed.text


def test_experiment_from_the_page_redirects_to_its_run(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    from app.models import Run

    source = factories.make_question_set(db, name="to-split", rows=STATEMENTS)
    factories.make_template(db, kind="neutral", text="Is it true that {statement_clause}?")
    factories.make_template(db, kind="biased", stance="asserts", text="I know {claim_clause}.")
    model = factories.make_model_config(db, name="base-model")
    response = admin_client.post(
        "/experiments/paper",
        data={"model_id": str(model.id), "set_id": str(source.id), "limit": "2", "seed": "3"},
        headers=htmx_headers,
        follow_redirects=False,
    )
    run = db.exec(select(Run)).one()
    target = f"/runs/{run.id}"
    assert response.headers.get("HX-Redirect" if htmx_headers else "location") == target
    names = {s.name for s in db.exec(select(QuestionSet))}
    assert {n for n in names if n.startswith("to-split · ")} == {
        "to-split · train (seed 3, test 0.3)",
        "to-split · test (seed 3, test 0.3)",
    }
    assert run.config["experiment"]["test_set"] == "to-split · test (seed 3, test 0.3)"
    assert len(run.config["question_ids"]) == 2
