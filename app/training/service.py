"""Training runs: create and queue, follow, cancel, and execute (in a worker or the CLI).

``execute`` runs the trainer outside any long transaction: it reads its inputs, trains, and
writes progress in short write transactions, so pages see it move and can ask it to stop.
"""

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.config import get_settings
from app.db import write_transaction
from app.jobs import queue
from app.models import (
    ModelConfig,
    SdiDataset,
    SdiExample,
    SdiMode,
    TrainingRun,
    TrainingStatus,
    utcnow,
)
from app.training import loading, trainer
from app.training import schemas as training_schemas
from app.training.schemas import TrainingCreate, TrainingParams

TASK = "training.train"
CONCURRENCY_KEY = "training"
ACTIVE = (TrainingStatus.queued.value, TrainingStatus.running.value)
FINISHED = (
    TrainingStatus.succeeded.value,
    TrainingStatus.failed.value,
    TrainingStatus.cancelled.value,
)
# Progress rows are written at most this often (evaluation points and the end always are).
WRITE_EVERY_S = 2.0
CANCEL_CHECK_EVERY_S = 2.0


class TrainingServiceError(ValueError):
    """A request that cannot be honoured (unknown dataset, duplicate name...); ``field`` names
    the input at fault, where there is one, so a form can say it beside that field."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def group_key(run_id: int) -> str:
    return f"training:{run_id}"


def list_runs(session: Session) -> list[TrainingRun]:
    return list(session.exec(select(TrainingRun).order_by(col(TrainingRun.id).desc())).all())


def get(session: Session, run_id: int) -> TrainingRun | None:
    return session.get(TrainingRun, run_id)


def datasets(session: Session) -> list[SdiDataset]:
    return list(session.exec(select(SdiDataset).order_by(col(SdiDataset.name))).all())


def dataset_by_name(session: Session, name: str) -> SdiDataset | None:
    return session.exec(select(SdiDataset).where(SdiDataset.name == name)).first()


def split_messages(session: Session, dataset_id: int, split: str) -> list[list[dict[str, Any]]]:
    rows = session.exec(
        select(SdiExample.messages)
        .where(SdiExample.dataset_id == dataset_id, SdiExample.split == split)
        .order_by(col(SdiExample.position))
    ).all()
    return [list(messages) for messages in rows]


def _name_taken(session: Session, name: str) -> bool:
    if session.exec(select(ModelConfig.id).where(ModelConfig.name == name)).first():
        return True
    return (
        session.exec(
            select(TrainingRun.id).where(
                TrainingRun.name == name, col(TrainingRun.status).in_(ACTIVE)
            )
        ).first()
        is not None
    )


def create_training(
    session: Session, data: TrainingCreate, *, user_id: int | None = None, enqueue: bool = True
) -> TrainingRun:
    """Record a training run and (unless ``enqueue`` is False, as in the CLI) queue its job."""
    dataset = session.get(SdiDataset, data.dataset_id)
    if dataset is None:
        raise TrainingServiceError(f"no SDI dataset with id {data.dataset_id}", field="dataset_id")
    if not split_messages(session, data.dataset_id, "train"):
        raise TrainingServiceError(
            f"dataset {dataset.name!r} has no training examples", field="dataset_id"
        )
    if _name_taken(session, data.name):
        raise TrainingServiceError(
            f"a model named {data.name!r} already exists or is training", field="name"
        )
    try:
        loading.resolve_base(data.base_model)
    except Exception as exc:  # LlmError for a missing bundled model, TrainingError otherwise
        raise TrainingServiceError(str(exc), field="base_model") from None
    run = TrainingRun(
        name=data.name,
        dataset_id=data.dataset_id,
        base_model=data.base_model,
        params=data.params.model_dump(),
        created_by=user_id,
    )
    session.add(run)
    session.flush()
    if enqueue:
        assert run.id is not None
        job = queue.enqueue(
            session,
            TASK,
            {"training_run_id": run.id},
            concurrency_key=CONCURRENCY_KEY,
            concurrency_limit=1,
            lock_key=f"training-run:{run.id}",
            group_key=group_key(run.id),
            max_attempts=2,
        )
        run.job_id = job.id
        session.add(run)
        session.flush()
    return run


def request_cancel(session: Session, run: TrainingRun) -> None:
    """A queued run is cancelled now; a running one stops at its next step."""
    if run.status == TrainingStatus.queued.value:
        run.status = TrainingStatus.cancelled.value
        run.finished_at = utcnow()
        assert run.id is not None
        queue.cancel_group(session, group_key(run.id))
    elif run.status == TrainingStatus.running.value:
        run.cancel_requested = True
    else:  # finished meanwhile: nothing to cancel, say so
        raise TrainingServiceError(f"The training has already {run.status}; nothing to cancel.")
    session.add(run)
    session.flush()


def mark_failed(session: Session, run_id: int, error: str) -> None:
    """Record a failure the trainer could not record itself (a crashed or stopped worker)."""
    run = session.get(TrainingRun, run_id)
    if run is not None and run.status in ACTIVE:
        run.status = TrainingStatus.failed.value
        run.error = error
        run.finished_at = utcnow()
        session.add(run)
        session.flush()


# -- execution ----------------------------------------------------------------------------


def output_dir_for(run_id: int) -> str:
    """Relative to the data directory, like every path stored on the row."""
    return f"training/{run_id}"


def _relative(path: str) -> str:
    data_dir = get_settings().data_dir.resolve()
    try:
        return str(Path(path).resolve().relative_to(data_dir))
    except ValueError:
        return path


class _Reporter:
    """Writes trainer progress to the row (throttled) and answers "should I stop?"."""

    def __init__(
        self,
        run_id: int,
        engine: Engine | None,
        cancel_event: threading.Event | None,
        on_progress: Callable[[trainer.Progress], None] | None,
        heartbeat: Callable[[], None] | None,
    ) -> None:
        self.run_id = run_id
        self.engine = engine
        self.cancel_event = cancel_event
        self.on_progress = on_progress
        self.heartbeat = heartbeat
        self.history: list[dict[str, Any]] = []
        self._last_write = 0.0
        self._last_check = 0.0
        self._cancelled = False

    def progress(self, p: trainer.Progress) -> None:
        self.history.extend(p.new_points)
        if self.on_progress is not None:
            self.on_progress(p)
        now = time.monotonic()
        has_eval = any("val_loss" in point for point in p.new_points)
        if now - self._last_write < WRITE_EVERY_S and not has_eval and p.step < p.total_steps:
            return
        self._last_write = now
        with write_transaction(self.engine) as session:
            run = session.get(TrainingRun, self.run_id)
            if run is None:
                return
            run.step, run.total_steps, run.epoch = p.step, p.total_steps, p.epoch
            run.train_loss, run.val_loss = p.train_loss, p.val_loss
            run.tokens_per_s, run.examples_per_s, run.eta_s = (
                p.tokens_per_s,
                p.examples_per_s,
                p.eta_s,
            )
            run.loss_history = list(self.history)
            session.add(run)
        if self.heartbeat is not None:
            self.heartbeat()

    @property
    def interrupted(self) -> bool:
        """Stopped by its process (a worker shutting down), not by a user's cancel."""
        return not self._cancelled and self.cancel_event is not None and self.cancel_event.is_set()

    def should_cancel(self) -> bool:
        if self._cancelled or (self.cancel_event is not None and self.cancel_event.is_set()):
            return True
        now = time.monotonic()
        if now - self._last_check >= CANCEL_CHECK_EVERY_S:
            self._last_check = now
            with write_transaction(self.engine) as session:
                run = session.get(TrainingRun, self.run_id)
                self._cancelled = run is None or run.cancel_requested
        return self._cancelled


def _start(run_id: int, engine: Engine | None) -> dict[str, Any] | None:
    """Mark the run running and read its inputs; None if there is nothing to do."""
    with write_transaction(engine) as session:
        run = session.get(TrainingRun, run_id)
        if run is None or run.status not in ACTIVE:
            return None
        if run.cancel_requested:
            run.status = TrainingStatus.cancelled.value
            run.finished_at = utcnow()
            session.add(run)
            return None
        dataset = session.get(SdiDataset, run.dataset_id) if run.dataset_id else None
        run.status = TrainingStatus.running.value
        run.started_at = utcnow()
        run.error = ""
        run.step = 0
        run.loss_history = []
        run.output_dir = output_dir_for(run_id)
        session.add(run)
        return {
            "name": run.name,
            "base_model": run.base_model,
            "params": TrainingParams.model_validate(run.params),
            "dataset": None if dataset is None else {"id": dataset.id, "name": dataset.name},
            "train": split_messages(session, dataset.id, "train") if dataset else [],  # type: ignore[arg-type]
            "validation": split_messages(session, dataset.id, "validation") if dataset else [],  # type: ignore[arg-type]
        }


def _finish(
    run_id: int, engine: Engine | None, status: TrainingStatus, **values: Any
) -> TrainingRun | None:
    with write_transaction(engine) as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            return None
        for key, value in values.items():
            setattr(run, key, value)
        run.status = status.value
        run.finished_at = utcnow()
        session.add(run)
        return run


def _requeue(run_id: int, engine: Engine | None) -> None:
    """Back to the queue: the job is released by the stopping worker and starts over."""
    with write_transaction(engine) as session:
        run = session.get(TrainingRun, run_id)
        if run is not None and run.status == TrainingStatus.running.value:
            run.status = TrainingStatus.queued.value
            run.step = 0
            run.eta_s = None
            session.add(run)


def _create_model_config(session: Session, run: TrainingRun, result: trainer.TrainResult) -> int:
    name = run.name
    if session.exec(select(ModelConfig.id).where(ModelConfig.name == name)).first():
        name = f"{run.name}-{run.id}"
    model_path = _relative(result.merged_path)
    config = ModelConfig(
        name=name[:120],
        provider="trained",
        model_id=model_path,
        sdi_mode=SdiMode.fine_tuned.value,
        sdi_dataset_id=run.dataset_id,
        fine_tuned_model_id=model_path,
        max_concurrency=1,
        timeout_s=600.0,
        extra={
            "training_run_id": run.id,
            "format": result.merged_format,
            "adapter": _relative(result.adapter_dir),
        },
    )
    session.add(config)
    session.flush()
    assert config.id is not None
    return config.id


def execute(
    run_id: int,
    *,
    engine: Engine | None = None,
    cancel_event: threading.Event | None = None,
    on_progress: Callable[[trainer.Progress], None] | None = None,
    heartbeat: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Train a queued or running run to the end; record the outcome on its row.

    ``cancel_event`` is the caller's own stop (a worker shutting down): the run goes back to
    the queue. A user's cancel is the row's ``cancel_requested``. Returns {"status": ...};
    raises training_schemas.TrainingError after recording a failure.
    """
    inputs = _start(run_id, engine)
    if inputs is None:
        return {"status": "skipped"}
    reporter = _Reporter(run_id, engine, cancel_event, on_progress, heartbeat)
    out_dir = get_settings().data_dir / output_dir_for(run_id)
    try:
        if inputs["dataset"] is None:
            raise training_schemas.TrainingError("the run's SDI dataset was deleted")
        result = trainer.train(
            base_model=inputs["base_model"],
            params=inputs["params"],
            train_examples=inputs["train"],
            val_examples=inputs["validation"],
            output_dir=out_dir,
            name=inputs["name"],
            on_progress=reporter.progress,
            should_cancel=reporter.should_cancel,
            metadata={"training_run_id": run_id, "dataset": inputs["dataset"]},
        )
    except trainer.Cancelled:
        if reporter.interrupted:
            _requeue(run_id, engine)
            return {"status": "interrupted"}
        _finish(run_id, engine, TrainingStatus.cancelled, loss_history=reporter.history)
        return {"status": "cancelled"}
    except KeyboardInterrupt:  # Ctrl-C in `sdilab train`
        _finish(run_id, engine, TrainingStatus.cancelled, loss_history=reporter.history)
        raise
    except Exception as exc:
        message = (
            str(exc)
            if isinstance(exc, training_schemas.TrainingError)
            else f"{type(exc).__name__}: {exc}"
        )
        _finish(run_id, engine, TrainingStatus.failed, error=message, loss_history=reporter.history)
        if isinstance(exc, training_schemas.TrainingError):
            raise
        raise training_schemas.TrainingError(message) from exc

    with write_transaction(engine) as session:
        run = session.get(TrainingRun, run_id)
        assert run is not None
        run.model_config_id = _create_model_config(session, run, result)
        run.status = TrainingStatus.succeeded.value
        run.finished_at = utcnow()
        run.step = result.steps
        run.n_train, run.n_val = result.n_train, result.n_val
        run.train_loss, run.val_loss = result.final_train_loss, result.final_val_loss
        run.eta_s = 0.0
        run.loss_history = result.history
        run.adapter_path = _relative(result.adapter_dir)
        run.merged_path = _relative(result.merged_path)
        run.merged_format = result.merged_format
        session.add(run)
        config_id = run.model_config_id
    return {"status": "succeeded", "model_config_id": config_id, "steps": result.steps}
