"""OpenAI Batch API: one JSONL of chat requests in, one Completion (or error) per custom_id out.

Flow for a large run: ``build_jsonl`` → ``upload`` → ``create_batch`` → ``poll`` until
``BatchStatus.finished`` → ``download_results``. Each step is a separate call so the runs
domain can store the batch id and resume polling after a restart.
"""

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from app.llm import openai_provider
from app.llm.types import Completion, LlmError, ModelSpec

if TYPE_CHECKING:  # the SDK takes ~0.3 s to import: only the Batch API path loads it
    import openai

ENDPOINT: Final = "/v1/chat/completions"
TERMINAL = {"completed", "failed", "expired", "cancelled"}


@dataclass(frozen=True)
class BatchRequest:
    custom_id: str
    messages: list[dict[str, str]]  # the prompt; the spec's system prompt/prefix are added
    sample_index: int = 0


@dataclass(frozen=True)
class BatchStatus:
    id: str
    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


@dataclass
class BatchResults:
    completions: dict[str, Completion] = field(default_factory=dict)
    errors: dict[str, LlmError] = field(default_factory=dict)


def build_jsonl(spec: ModelSpec, requests: list[BatchRequest]) -> bytes:
    """The batch input file: one chat completion request per line."""
    from app.llm import build_messages, effective_seed

    lines = []
    for request in requests:
        body = openai_provider.request_params(
            spec,
            build_messages(spec, request.messages),
            effective_seed(spec, request.sample_index),
        )
        line = {"custom_id": request.custom_id, "method": "POST", "url": ENDPOINT, "body": body}
        lines.append(json.dumps(line, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8")


def _client(spec: ModelSpec) -> tuple["openai.AsyncOpenAI", str]:
    secret = openai_provider.api_key(spec)
    return openai_provider.client_for(spec.base_url, spec.api_key_env), secret


async def upload(spec: ModelSpec, jsonl: bytes, filename: str = "batch.jsonl") -> str:
    """Upload the input file; returns its file id."""
    client, secret = _client(spec)
    try:
        uploaded = await client.files.create(
            file=(filename, jsonl, "application/jsonl"), purpose="batch", timeout=spec.timeout_s
        )
    except Exception as exc:
        raise openai_provider.map_error(exc, secret) from None
    return str(uploaded.id)


def _status(batch: Any) -> BatchStatus:
    counts = batch.request_counts
    return BatchStatus(
        id=batch.id,
        status=batch.status,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        total=counts.total if counts else 0,
        completed=counts.completed if counts else 0,
        failed=counts.failed if counts else 0,
    )


async def create_batch(
    spec: ModelSpec, input_file_id: str, metadata: dict[str, str] | None = None
) -> BatchStatus:
    client, secret = _client(spec)
    try:
        batch = await client.batches.create(
            input_file_id=input_file_id,
            endpoint=ENDPOINT,
            completion_window="24h",
            metadata=metadata,
            timeout=spec.timeout_s,
        )
    except Exception as exc:
        raise openai_provider.map_error(exc, secret) from None
    return _status(batch)


async def poll(spec: ModelSpec, batch_id: str) -> BatchStatus:
    client, secret = _client(spec)
    try:
        batch = await client.batches.retrieve(batch_id, timeout=spec.timeout_s)
    except Exception as exc:
        raise openai_provider.map_error(exc, secret) from None
    return _status(batch)


async def cancel(spec: ModelSpec, batch_id: str) -> BatchStatus:
    client, secret = _client(spec)
    try:
        batch = await client.batches.cancel(batch_id, timeout=spec.timeout_s)
    except Exception as exc:
        raise openai_provider.map_error(exc, secret) from None
    return _status(batch)


async def _file_text(spec: ModelSpec, file_id: str) -> str:
    client, secret = _client(spec)
    try:
        content = await client.files.content(file_id, timeout=spec.timeout_s)
    except Exception as exc:
        raise openai_provider.map_error(exc, secret) from None
    return content.text


def parse_results(text: str) -> BatchResults:
    """Parse output (and error) file lines into Completions and LlmErrors by custom_id."""
    results = BatchResults()
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            custom_id = str(line["custom_id"])
        except (ValueError, KeyError, TypeError):
            continue
        response = line.get("response") or {}
        status = int(response.get("status_code") or 0)
        if line.get("error") or status >= 400 or not response.get("body"):
            error = line.get("error") or (response.get("body") or {}).get("error") or {}
            message = error.get("message", "") if isinstance(error, dict) else str(error)
            retryable = status in (0, 429) or status >= 500
            results.errors[custom_id] = LlmError(
                f"batch request failed (HTTP {status or '?'}): {message}"[:500],
                retryable=retryable,
            )
            continue
        try:
            results.completions[custom_id] = openai_provider.parse_completion(response["body"])
        except LlmError as exc:
            results.errors[custom_id] = exc
    return results


async def download_results(spec: ModelSpec, status: BatchStatus) -> BatchResults:
    """Completions and errors of a finished batch, keyed by custom_id."""
    results = BatchResults()
    for file_id in (status.output_file_id, status.error_file_id):
        if file_id:
            part = parse_results(await _file_text(spec, file_id))
            results.completions.update(part.completions)
            results.errors.update(part.errors)
    return results
