"""Training runs through the job queue and a real worker, on the bundled SmolLM2."""

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.config import get_settings
from app.db import session_scope
from app.jobs.worker import run_worker
from app.models import Job, ModelConfig, SdiExample, TrainingRun
from app.training import service, trainer
from app.training.schemas import TrainingCreate, TrainingParams
from tests import factories
from tests.training.sdi_like import make_dataset

pytestmark = pytest.mark.model

QUICK = TrainingParams(
    rank=2, epochs=1, batch_size=2, max_length=64, max_steps=2, threads=1, dropout=0.0
)


def _create(engine: Engine, name: str, params: TrainingParams = QUICK, enqueue: bool = True) -> int:
    with session_scope(engine) as s:
        dataset = make_dataset(s, factories.make_question_set(s, n=2), n_train=4, n_val=2)
        run = service.create_training(
            s,
            TrainingCreate(dataset_id=dataset.id or 0, name=name, params=params),
            enqueue=enqueue,
        )
        assert run.id is not None
        return run.id


def _row(engine: Engine, run_id: int) -> TrainingRun:
    with Session(engine) as s:
        run = s.get(TrainingRun, run_id)
        assert run is not None
        return run


def test_a_queued_training_runs_in_the_worker_and_becomes_a_model(committed_db: Engine) -> None:
    run_id = _create(committed_db, "worker-lora")
    run_worker(concurrency=2, burst=True, engine=committed_db, poll_interval_s=0.05)

    run = _row(committed_db, run_id)
    assert run.status == "succeeded", run.error
    assert run.step == run.total_steps == 2
    assert run.n_train == 4 and run.n_val == 2
    assert run.train_loss is not None and run.val_loss is not None
    assert [p["step"] for p in run.loss_history if "val_loss" in p] == [0, 2]
    assert run.merged_format == "gguf" and run.started_at and run.finished_at
    data_dir = get_settings().data_dir
    assert (data_dir / run.merged_path).is_file()
    assert run.merged_path == f"training/{run_id}/model.gguf"
    saved = json.loads((data_dir / run.output_dir / "training_config.json").read_text())
    assert saved["params"] == QUICK.model_dump()
    assert saved["training_run_id"] == run_id
    with Session(committed_db) as s:
        config = s.get(ModelConfig, run.model_config_id)
        job = s.get(Job, run.job_id)
    assert config is not None and job is not None
    assert (config.name, config.provider, config.model_id) == (
        "worker-lora",
        "trained",
        run.merged_path,
    )
    assert config.sdi_mode == "fine_tuned" and config.sdi_dataset_id == run.dataset_id
    assert job.status == "succeeded" and job.result == {
        "status": "succeeded",
        "model_config_id": config.id,
        "steps": 2,
    }


def test_a_bad_dataset_fails_with_a_clear_error(committed_db: Engine) -> None:
    run_id = _create(committed_db, "bad-lora")
    with session_scope(committed_db) as s:
        run = s.get(TrainingRun, run_id)
        assert run is not None
        for example in s.exec(select(SdiExample).where(SdiExample.dataset_id == run.dataset_id)):
            example.messages = example.messages[:1]  # no assistant reply left
            s.add(example)
    run_worker(concurrency=1, burst=True, engine=committed_db, poll_interval_s=0.05)
    run = _row(committed_db, run_id)
    assert run.status == "failed"
    assert "must end with the assistant's reply" in run.error
    assert run.model_config_id is None
    with Session(committed_db) as s:
        job = s.get(Job, run.job_id)
    assert job is not None and job.status == "failed" and job.attempts == 1
    assert "assistant" in job.last_error


def test_cancel_stops_between_steps(committed_db: Engine) -> None:
    run_id = _create(committed_db, "cancel-lora", enqueue=False)

    def cancel_after_first_report(progress: trainer.Progress) -> None:
        with session_scope(committed_db) as s:
            run = s.get(TrainingRun, run_id)
            assert run is not None
            service.request_cancel(s, run)

    outcome = service.execute(run_id, engine=committed_db, on_progress=cancel_after_first_report)
    assert outcome == {"status": "cancelled"}
    run = _row(committed_db, run_id)
    assert run.status == "cancelled" and run.step == 0 and run.model_config_id is None
    assert run.finished_at is not None


def test_cancelling_a_queued_training_cancels_its_job(committed_db: Engine) -> None:
    run_id = _create(committed_db, "queued-lora")
    with session_scope(committed_db) as s:
        run = s.get(TrainingRun, run_id)
        assert run is not None
        service.request_cancel(s, run)
    run = _row(committed_db, run_id)
    with Session(committed_db) as s:
        job = s.get(Job, run.job_id)
    assert run.status == "cancelled" and job is not None and job.status == "cancelled"
    assert service.execute(run_id, engine=committed_db) == {"status": "skipped"}


def test_create_refuses_bad_requests(db: Session, tmp_path: Path) -> None:
    dataset = make_dataset(db, factories.make_question_set(db, n=2), n_train=2, n_val=0)
    ok = TrainingCreate(dataset_id=dataset.id or 0, name="taken")
    factories.make_model_config(db, name="taken")
    with pytest.raises(service.TrainingServiceError, match="already exists"):
        service.create_training(db, ok)
    with pytest.raises(service.TrainingServiceError, match="no SDI dataset"):
        service.create_training(db, ok.model_copy(update={"dataset_id": 999_999}))
    with pytest.raises(service.TrainingServiceError, match="base model not found"):
        service.create_training(
            db, ok.model_copy(update={"name": "fresh", "base_model": str(tmp_path / "x.gguf")})
        )
    run = service.create_training(db, ok.model_copy(update={"name": "fresh"}))
    job = db.get(Job, run.job_id)
    assert job is not None and job.task == "training.train"
    assert job.args == {"training_run_id": run.id} and job.concurrency_key == "training"
    with pytest.raises(service.TrainingServiceError, match="already exists or is training"):
        service.create_training(db, ok.model_copy(update={"name": "fresh"}))


def test_a_stopping_worker_puts_the_training_back_in_the_queue(committed_db: Engine) -> None:
    import threading

    run_id = _create(committed_db, "interrupted-lora", enqueue=False)
    stop = threading.Event()
    outcome = service.execute(
        run_id, engine=committed_db, cancel_event=stop, on_progress=lambda _p: stop.set()
    )
    assert outcome == {"status": "interrupted"}
    run = _row(committed_db, run_id)
    assert run.status == "queued" and not run.cancel_requested and run.finished_at is None
