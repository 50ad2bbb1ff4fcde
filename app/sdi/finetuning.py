"""Fine-tuning an SDI model through an OpenAI-compatible API, followed as a background job.

One step at a time (each a job run): upload the training (and validation) file, create the
job, then poll its status and events until it ends. Each step is planned from the database,
calls the provider with no transaction open, and records its outcome in a short write.
On success the fine-tuned model becomes a model config (sdi_mode "fine_tuned").
"""

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from app.llm import finetune
from app.llm.types import LlmError, ModelSpec
from app.model_configs.service import build_spec
from app.models import ModelConfig, Provider, SdiDataset, SdiFineTune, SdiMode, SdiStatus, utcnow
from app.sdi import service
from app.sdi.openai_format import validate_text
from app.sdi.schemas import FineTuneCreate

POLL_INTERVAL_S = 20.0
MAX_EVENTS = 200
ACTIVE = ("pending", "uploaded", "validating_files", "queued", "running")


@dataclass
class Step:
    """What one step needs, read from the database before any network call."""

    fine_tune_id: int
    spec: ModelSpec
    provider_job_id: str
    training_file_id: str
    validation_file_id: str
    base_model: str
    epochs: int | None
    suffix: str
    seed: int | None
    dataset_id: int
    training: bytes = b""
    validation: bytes = b""


@dataclass
class Outcome:
    training_file_id: str = ""
    validation_file_id: str = ""
    job: finetune.FineTuneJob | None = None
    events: list[finetune.FineTuneEvent] = field(default_factory=list)
    error: str = ""


def list_fine_tunes(session: Session, dataset_id: int) -> list[SdiFineTune]:
    return list(
        session.exec(
            select(SdiFineTune)
            .where(SdiFineTune.dataset_id == dataset_id)
            .order_by(col(SdiFineTune.id).desc())
        ).all()
    )


def start_fine_tune(
    session: Session,
    dataset: SdiDataset,
    data: FineTuneCreate,
    *,
    created_by: int | None = None,
    poll_interval_s: float = POLL_INTERVAL_S,
    background: bool = True,
) -> SdiFineTune:
    """Check the training file and the model, store the fine-tune and (``background``) queue
    its first step for the worker; without it the caller follows it with ``advance``."""
    from app.jobs.queue import enqueue

    if dataset.status != SdiStatus.ready:
        raise service.SdiError(f"dataset {dataset.name!r} is not ready ({dataset.status})")
    base = session.get(ModelConfig, data.base_model_id)
    if base is None:
        raise service.SdiError(f"no model config with id {data.base_model_id}")
    if base.provider != Provider.openai.value:
        raise service.SdiError(
            f"model {base.name!r} is not an OpenAI-compatible model; fine-tuning goes through "
            "the OpenAI API (train the local model on the Training page instead)"
        )
    report = validate_text(service.export_text(session, dataset.id or 0, "openai", "train"))
    if not report.ok:
        problems = "; ".join(str(e) for e in report.errors[:5])
        raise service.SdiError(f"the training file does not pass the format check: {problems}")
    fine_tune = SdiFineTune(
        dataset_id=dataset.id or 0,
        base_model_config_id=base.id or 0,
        base_model=data.base_model or base.model_id,
        epochs=data.epochs,
        suffix=data.suffix,
        seed=data.seed,
        result_name=data.name or f"{dataset.name} (fine-tuned)",
        status="pending",
        created_by=created_by,
    )
    session.add(fine_tune)
    session.flush()
    if not background:
        return fine_tune
    enqueue(
        session,
        "sdi.finetune",
        {"fine_tune_id": fine_tune.id, "poll_s": poll_interval_s},
        group_key=f"sdi:{dataset.id}",
    )
    return fine_tune


def plan(session: Session, fine_tune_id: int) -> Step | None:
    """The next step of an active fine-tune, or None when it has ended."""
    fine_tune = session.get(SdiFineTune, fine_tune_id)
    if fine_tune is None or fine_tune.status not in ACTIVE:
        return None
    base = session.get(ModelConfig, fine_tune.base_model_config_id)
    if base is None:
        raise LlmError("the base model config was deleted", retryable=False)
    step = Step(
        fine_tune_id=fine_tune_id,
        spec=build_spec(session, base),
        provider_job_id=fine_tune.provider_job_id,
        training_file_id=fine_tune.training_file_id,
        validation_file_id=fine_tune.validation_file_id,
        base_model=fine_tune.base_model,
        epochs=fine_tune.epochs,
        suffix=fine_tune.suffix,
        seed=fine_tune.seed,
        dataset_id=fine_tune.dataset_id,
    )
    if not fine_tune.training_file_id:
        step.training = service.export_text(
            session, fine_tune.dataset_id, "openai", "train"
        ).encode()
        step.validation = service.export_text(
            session, fine_tune.dataset_id, "openai", "validation"
        ).encode()
    return step


def call_provider(step: Step) -> Outcome:
    """The network part of a step: upload, or create the job, or poll it.
    Raises LlmError (``retryable`` says whether to try again)."""
    spec = step.spec
    if not step.training_file_id:
        name = f"sdi-{step.dataset_id}"
        outcome = Outcome(
            training_file_id=finetune.upload_file(spec, step.training, f"{name}-train.jsonl")
        )
        if step.validation:
            outcome.validation_file_id = finetune.upload_file(
                spec, step.validation, f"{name}-validation.jsonl"
            )
        return outcome
    if not step.provider_job_id:
        job = finetune.create_job(
            spec,
            model=step.base_model,
            training_file=step.training_file_id,
            validation_file=step.validation_file_id or None,
            epochs=step.epochs,
            suffix=step.suffix or None,
            seed=step.seed,
        )
    else:
        job = finetune.retrieve_job(spec, step.provider_job_id)
    return Outcome(job=job, events=finetune.list_events(spec, job.id))


def _merge_events(fine_tune: SdiFineTune, events: list[finetune.FineTuneEvent]) -> None:
    known = {e.get("id") for e in fine_tune.events}
    merged = list(fine_tune.events)
    for event in events:
        if event.id not in known:
            merged.append(
                {
                    "id": event.id,
                    "created_at": event.created_at,
                    "level": event.level,
                    "message": event.message,
                }
            )
    fine_tune.events = merged[-MAX_EVENTS:]


def apply(session: Session, fine_tune_id: int, outcome: Outcome) -> bool:
    """Record a step's outcome; True when the fine-tune has ended."""
    fine_tune = session.get(SdiFineTune, fine_tune_id)
    if fine_tune is None:
        return True
    if outcome.error:
        return fail(session, fine_tune, outcome.error)
    if outcome.training_file_id:
        fine_tune.training_file_id = outcome.training_file_id
        fine_tune.validation_file_id = outcome.validation_file_id
        fine_tune.status = "uploaded"
    if outcome.job is not None:
        job = outcome.job
        fine_tune.provider_job_id = job.id
        fine_tune.status = job.status
        fine_tune.trained_tokens = job.trained_tokens
        fine_tune.error = job.error
        _merge_events(fine_tune, outcome.events)
        if job.status == "succeeded":
            fine_tune.fine_tuned_model_id = job.fine_tuned_model
            config = _result_model(session, fine_tune)
            fine_tune.result_model_config_id = config.id
        if job.finished:
            fine_tune.finished_at = utcnow()
            if job.status == "failed" and not fine_tune.error:
                fine_tune.error = "the provider reported the job as failed"
    session.add(fine_tune)
    session.flush()
    return fine_tune.status not in ACTIVE


def fail(session: Session, fine_tune: SdiFineTune, error: str) -> bool:
    fine_tune.status = "failed"
    fine_tune.error = error[:2000]
    fine_tune.finished_at = utcnow()
    session.add(fine_tune)
    session.flush()
    return True


def _result_model(session: Session, fine_tune: SdiFineTune) -> ModelConfig:
    base = session.get(ModelConfig, fine_tune.base_model_config_id)
    assert base is not None
    name = fine_tune.result_name
    if session.exec(select(ModelConfig).where(ModelConfig.name == name)).first() is not None:
        name = f"{name} #{fine_tune.id}"
    config = ModelConfig(
        name=name[:120],
        provider=base.provider,
        model_id=fine_tune.fine_tuned_model_id,
        base_url=base.base_url,
        api_key_env=base.api_key_env,
        temperature=base.temperature,
        max_tokens=base.max_tokens,
        top_p=base.top_p,
        seed=base.seed,
        system_prompt=base.system_prompt,
        price_input_per_1k=base.price_input_per_1k,
        price_output_per_1k=base.price_output_per_1k,
        max_concurrency=base.max_concurrency,
        timeout_s=base.timeout_s,
        sdi_mode=SdiMode.fine_tuned.value,
        sdi_dataset_id=fine_tune.dataset_id,
        fine_tuned_model_id=fine_tune.fine_tuned_model_id,
        extra={"sdi_fine_tune_id": fine_tune.id, "sdi_base_model_config_id": base.id},
    )
    session.add(config)
    session.flush()
    return config


def advance(session: Session, fine_tune_id: int) -> bool:
    """One step in the caller's session (CLI, tests); True when the fine-tune has ended.
    Non-retryable provider errors end it as failed; retryable ones propagate."""
    step = plan(session, fine_tune_id)
    if step is None:
        return True
    try:
        outcome = call_provider(step)
    except LlmError as exc:
        if exc.retryable:
            raise
        outcome = Outcome(error=str(exc))
    return apply(session, fine_tune_id, outcome)


def cancel(session: Session, fine_tune: SdiFineTune) -> None:
    """Ask the provider to cancel (when a job exists) and mark the fine-tune cancelled."""
    if fine_tune.status not in ACTIVE:  # finished meanwhile: nothing to cancel, say so
        raise service.SdiError(
            f"the fine-tuning job has already finished ({fine_tune.status}); nothing to cancel"
        )
    if fine_tune.provider_job_id:
        base = session.get(ModelConfig, fine_tune.base_model_config_id)
        if base is not None:
            try:
                finetune.cancel_job(build_spec(session, base), fine_tune.provider_job_id)
            except LlmError as exc:
                raise service.SdiError(f"the provider refused to cancel: {exc}") from None
    fine_tune.status = "cancelled"
    fine_tune.finished_at = utcnow()
    session.add(fine_tune)
    session.flush()


def summary(fine_tune: SdiFineTune) -> dict[str, Any]:
    return {
        "status": fine_tune.status,
        "job": fine_tune.provider_job_id,
        "model": fine_tune.fine_tuned_model_id,
        "error": fine_tune.error,
    }
