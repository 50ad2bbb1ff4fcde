"""`sdilab train` in-process, with the real model."""

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.db import session_scope
from app.models import ModelConfig, TrainingRun
from tests import factories
from tests.training.sdi_like import make_dataset

pytestmark = pytest.mark.model


def test_sdilab_train_creates_a_trained_model(committed_db: Engine) -> None:
    with session_scope(committed_db) as s:
        dataset = make_dataset(s, factories.make_question_set(s, n=2), n_train=4, n_val=2)
        name = dataset.name
    args = ["train", "--dataset", name, "--name", "cli-model", "--epochs", "1", "--rank", "2"]
    args += ["--max-len", "64", "--batch-size", "2", "--max-steps", "2", "--threads", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Done" in result.output and "cli-model" in result.output
    with Session(committed_db) as s:
        run = s.exec(select(TrainingRun)).one()
        config = s.exec(select(ModelConfig).where(ModelConfig.name == "cli-model")).one()
    assert run.status == "succeeded" and run.job_id is None
    assert run.params["rank"] == 2 and run.params["max_steps"] == 2 and run.step == 2
    assert config.provider == "trained" and config.id == run.model_config_id


def test_sdilab_train_reports_an_unknown_dataset(committed_db: Engine) -> None:
    result = CliRunner().invoke(cli, ["train", "--dataset", "nope"])
    assert result.exit_code == 1 and "no SDI dataset named 'nope'" in result.output


def test_sdilab_train_background_queues_a_job(committed_db: Engine) -> None:
    with session_scope(committed_db) as s:
        dataset = make_dataset(s, factories.make_question_set(s, n=2), n_train=2, n_val=0)
        name = dataset.name
    result = CliRunner().invoke(cli, ["train", "--dataset", name, "--background"])
    assert result.exit_code == 0, result.output
    with Session(committed_db) as s:
        run = s.exec(select(TrainingRun)).one()
    assert "Queued training" in result.output
    assert run.status == "queued" and run.job_id is not None and run.name == f"{name}-lora"
