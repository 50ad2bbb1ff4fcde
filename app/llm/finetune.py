"""Fine-tuning through an OpenAI-compatible API: upload a file, create, follow and cancel jobs.

Blocking calls (run them in a thread from async code) with the client's retries off
(``max_retries=0``): the caller decides when to try again. Errors are LlmError, with the key
scrubbed from their text.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.llm.openai_provider import api_key, map_error
from app.llm.types import LlmError, ModelSpec

if TYPE_CHECKING:  # the SDK takes ~0.3 s to import: loaded when a fine-tune is made
    import openai

TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class FineTuneJob:
    id: str
    status: str
    model: str
    fine_tuned_model: str
    trained_tokens: int | None
    error: str
    training_file: str
    validation_file: str

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class FineTuneEvent:
    id: str
    created_at: int
    level: str
    message: str


def _client(spec: ModelSpec) -> tuple["openai.OpenAI", str]:
    import openai

    secret = api_key(spec)
    client = openai.OpenAI(
        api_key=secret, base_url=spec.base_url or None, max_retries=0, timeout=spec.timeout_s
    )
    return client, secret


def _call(spec: ModelSpec, action: Any) -> Any:
    client, secret = _client(spec)
    try:
        with client:
            return action(client)
    except LlmError:
        raise
    except Exception as exc:
        raise map_error(exc, secret) from None


def _error_text(error: Any) -> str:
    if not error:
        return ""
    message = getattr(error, "message", None) or (
        error.get("message") if isinstance(error, dict) else None
    )
    code = getattr(error, "code", None) or (error.get("code") if isinstance(error, dict) else None)
    text = str(message or error)
    return f"{code}: {text}" if code else text


def _job(raw: Any) -> FineTuneJob:
    try:
        return FineTuneJob(
            id=str(raw.id),
            status=str(raw.status),
            model=str(raw.model or ""),
            fine_tuned_model=str(raw.fine_tuned_model or ""),
            trained_tokens=raw.trained_tokens,
            error=_error_text(raw.error),
            training_file=str(raw.training_file or ""),
            validation_file=str(raw.validation_file or ""),
        )
    except AttributeError as exc:
        raise LlmError(
            f"malformed fine-tuning job in the response ({exc})", retryable=True
        ) from None


def upload_file(spec: ModelSpec, content: bytes, filename: str) -> str:
    """Upload a JSONL file for fine-tuning; returns the file id."""
    uploaded = _call(
        spec,
        lambda c: c.files.create(
            file=(filename, content, "application/jsonl"), purpose="fine-tune"
        ),
    )
    return str(uploaded.id)


def create_job(
    spec: ModelSpec,
    *,
    model: str,
    training_file: str,
    validation_file: str | None = None,
    epochs: int | None = None,
    suffix: str | None = None,
    seed: int | None = None,
) -> FineTuneJob:
    params: dict[str, Any] = {"model": model, "training_file": training_file}
    if validation_file:
        params["validation_file"] = validation_file
    if epochs is not None:
        params["hyperparameters"] = {"n_epochs": epochs}
    if suffix:
        params["suffix"] = suffix
    if seed is not None:
        params["seed"] = seed
    return _job(_call(spec, lambda c: c.fine_tuning.jobs.create(**params)))


def retrieve_job(spec: ModelSpec, job_id: str) -> FineTuneJob:
    return _job(_call(spec, lambda c: c.fine_tuning.jobs.retrieve(job_id)))


def cancel_job(spec: ModelSpec, job_id: str) -> FineTuneJob:
    return _job(_call(spec, lambda c: c.fine_tuning.jobs.cancel(job_id)))


def list_events(spec: ModelSpec, job_id: str, limit: int = 100) -> list[FineTuneEvent]:
    """The job's latest events, oldest first (the API lists them newest first)."""
    page = _call(spec, lambda c: c.fine_tuning.jobs.list_events(job_id, limit=limit))
    events = [
        FineTuneEvent(
            id=str(e.id),
            created_at=int(e.created_at or 0),
            level=str(e.level or "info"),
            message=str(e.message or ""),
        )
        for e in page.data
    ]
    return events[::-1]
