"""Evaluation-harness logs as reply records: inspect_ai eval logs (the ``.json`` log format)
and promptfoo JSON outputs (``promptfoo eval -o results.json``), read from their documented
JSON shapes (no harness needs to be installed).

Each sample (inspect_ai) or result (promptfoo) becomes one reply record with the reply
importer's fields, and keeps where it came from (the log file, task, sample id, epoch,
model), which the run stores so that a figure can be traced back to the log.

Which statement a sample answers: its metadata's (inspect_ai) or vars' (promptfoo)
``statement_id`` (else ``id``, else the inspect_ai sample id) and ``statement``; its
``variant_kind`` and ``stance`` are read from there too. The prompt is the sample's input
(the last user message when it is a conversation). A pushback sample's first answer and
follow-up turn are the conversation's first assistant message and the user message after it
(what sdilab's exported task file, ``answer_then_pushback``, sends). Text that inspect_ai
stored once as an ``attachment://<hash>`` is read from the sample's ``attachments``.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

INSPECT = "inspect_ai eval log"
PROMPTFOO = "promptfoo output"


@dataclass
class HarnessRecords:
    kind: str
    records: list[dict[str, Any]] = field(default_factory=list)
    # Per record: where it came from (None where it could not be read; the record then
    # carries an "_error").
    source: dict[str, Any] = field(default_factory=dict)  # the log's own: task, model, …


ATTACHMENT = "attachment://"


def _text(value: Any, attachments: Mapping[str, Any]) -> Any:
    """``value`` with an inspect_ai attachment reference replaced by the text it stands for."""
    if isinstance(value, str) and value.startswith(ATTACHMENT):
        stored = attachments.get(value.removeprefix(ATTACHMENT))
        return stored if isinstance(stored, str) else value
    return value


def _content(value: Any, attachments: Mapping[str, Any] | None = None) -> str | None:
    """A message content as text: a string, or the text parts of a content list."""
    attachments = attachments or {}
    if isinstance(value, str):
        return str(_text(value, attachments))
    if isinstance(value, list):
        parts = [
            _text(p.get("text"), attachments)
            for p in value
            if isinstance(p, dict) and p.get("type") == "text"
        ]
        if all(isinstance(p, str) for p in parts) and parts:
            return "\n".join(p for p in parts if isinstance(p, str))
    return None


def _prompt(value: Any, attachments: Mapping[str, Any]) -> str | None:
    if isinstance(value, str):
        return str(_text(value, attachments))
    if isinstance(value, list):
        users = [m for m in value if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return _content(users[-1].get("content"), attachments)
    return None


def _pushback_turns(messages: Any, attachments: Mapping[str, Any]) -> dict[str, str]:
    """A pushback conversation's first answer and the follow-up turn after it."""
    if not isinstance(messages, list):
        return {}
    turns = [m for m in messages if isinstance(m, dict)]
    first = next((i for i, m in enumerate(turns) if m.get("role") == "assistant"), None)
    if first is None:
        return {}
    after = next((m for m in turns[first + 1 :] if m.get("role") == "user"), None)
    first_reply = _content(turns[first].get("content"), attachments)
    followup = _content(after.get("content"), attachments) if after else None
    if not first_reply or not followup:
        return {}
    return {"first_reply": first_reply, "followup": followup}


def _describe(meta: Any) -> dict[str, Any]:
    """The statement and variant fields a sample's metadata (or vars) may carry."""
    if not isinstance(meta, dict):
        return {}
    out = {}
    statement_id = meta.get("statement_id", meta.get("id"))
    if statement_id is not None:
        out["statement_id"] = statement_id
    for key in ("statement", "variant_kind", "stance"):
        if meta.get(key) is not None:
            out[key] = meta[key]
    return out


def _scores(scores: Any) -> dict[str, Any]:
    """The log's own score values by scorer (kept as the harness judged them)."""
    if not isinstance(scores, dict):
        return {}
    return {
        str(name): score.get("value") if isinstance(score, dict) else None
        for name, score in scores.items()
    }


def detect(text: str) -> tuple[str, Any] | None:
    """(kind, the parsed JSON) when ``text`` is one JSON document of a known harness."""
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        return None
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    if isinstance(document.get("eval"), dict) and "samples" in document:
        return INSPECT, document
    results = document.get("results")
    if isinstance(results, dict) and isinstance(results.get("results"), list):
        return PROMPTFOO, document
    return None


def _problem(message: str, column: str = "") -> dict[str, Any]:
    return {"_error": (column, message)}


def inspect_records(document: Mapping[str, Any], filename: str) -> HarnessRecords:
    header = document["eval"]
    task = str(header.get("task", ""))
    default_model = str(header.get("model", ""))
    out = HarnessRecords(
        INSPECT,
        source={
            "harness": "inspect_ai",
            "log": filename,
            "task": task,
            "task_id": header.get("task_id"),
            "run_id": header.get("run_id"),
            "created": header.get("created"),
            "model": default_model,
            "status": document.get("status"),
        },
    )
    samples = document.get("samples")
    if not isinstance(samples, list):
        out.records.append(_problem("the log has no samples (was it written with them?)"))
        return out
    for sample in samples:
        if not isinstance(sample, dict):
            out.records.append(_problem("is not a sample object"))
            continue
        epoch = sample.get("epoch", 1)
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            out.records.append(_problem(f"{str(epoch)[:20]!r} is not an epoch", "epoch"))
            continue
        attachments = sample.get("attachments")
        if not isinstance(attachments, dict):
            attachments = {}
        output = sample.get("output")
        if not isinstance(output, dict):
            output = {}
        reply = _text(output.get("completion"), attachments)
        if not isinstance(reply, str) or not reply:
            choices = output.get("choices")
            first = choices[0] if isinstance(choices, list) and choices else {}
            message = first.get("message") if isinstance(first, dict) else None
            content = message.get("content") if isinstance(message, dict) else None
            reply = _content(content, attachments)
        failed = sample.get("error")
        if failed and not reply:
            message = failed.get("message") if isinstance(failed, dict) else failed
            out.records.append(_problem(f"the sample failed in inspect_ai: {str(message)[:200]}"))
            continue
        prompt = _prompt(sample.get("input"), attachments)
        if prompt is None:
            out.records.append(_problem("is not text or a list of messages", "input"))
            continue
        described = _describe(sample.get("metadata"))
        described.setdefault("statement_id", sample.get("id"))
        if described.get("variant_kind") == "pushback":
            described |= _pushback_turns(sample.get("messages"), attachments)
        model = output.get("model") or default_model
        out.records.append(
            described
            | {
                "prompt": prompt,
                "model": model,
                "reply": reply if isinstance(reply, str) else None,
                "sample_index": epoch - 1,
                "_source": {
                    "sample_id": sample.get("id"),
                    "epoch": epoch,
                    "model": model,
                    "scores": _scores(sample.get("scores")),
                },
            }
        )
    return out


def promptfoo_records(document: Mapping[str, Any], filename: str) -> HarnessRecords:
    results = document["results"]
    out = HarnessRecords(
        PROMPTFOO,
        source={
            "harness": "promptfoo",
            "log": filename,
            "eval_id": document.get("evalId"),
            "version": results.get("version"),
            "timestamp": results.get("timestamp"),
        },
    )
    for result in results["results"]:
        if not isinstance(result, dict):
            out.records.append(_problem("is not a result object"))
            continue
        provider = result.get("provider")
        if isinstance(provider, dict):
            model = provider.get("label") or provider.get("id")
        else:
            model = provider
        prompt = result.get("prompt")
        raw_prompt = prompt.get("raw") if isinstance(prompt, dict) else prompt
        response = result.get("response")
        reply = response.get("output") if isinstance(response, dict) else None
        if reply is None and result.get("error"):
            out.records.append(_problem(f"the call failed: {str(result['error'])[:200]}", "reply"))
            continue
        out.records.append(
            _describe(result.get("vars"))
            | {
                "prompt": raw_prompt,
                "model": model,
                "reply": reply,
                "_source": {
                    "test": result.get("testIdx"),
                    "prompt": result.get("promptIdx"),
                    "provider": provider.get("id") if isinstance(provider, dict) else provider,
                    "score": result.get("score"),
                    "success": result.get("success"),
                },
            }
        )
    return out


def records(kind: str, document: Mapping[str, Any], filename: str) -> HarnessRecords:
    if kind == INSPECT:
        return inspect_records(document, filename)
    return promptfoo_records(document, filename)
