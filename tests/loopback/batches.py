"""Emulation of /v1/files and /v1/batches (chat completions only), enough for the openai client.

A batch completes ``batch_delay_s`` after creation. Each line is answered like a chat request
(same deterministic reply); ``batch_line_error_rate`` fails lines with a 500 in the output.
"""

import asyncio
import itertools
import json
import random
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from tests.loopback.chat import chat_completion, check_auth, error_response, state_of
from tests.loopback.state import LoopbackState

router = APIRouter()
_ids = itertools.count(1)


def _file_object(file_id: str, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": len(record["content"]),
        "created_at": record["created_at"],
        "filename": record["filename"],
        "purpose": record["purpose"],
        "status": "processed",
    }


def store_file(state: LoopbackState, content: bytes, filename: str, purpose: str) -> str:
    file_id = f"file-loop{next(_ids)}"
    state.files[file_id] = {
        "content": content,
        "filename": filename,
        "purpose": purpose,
        "created_at": int(time.time()),
    }
    return file_id


@router.post("/v1/files")
async def upload_file(request: Request) -> Any:
    state = state_of(request)
    state.calls["files.create"] += 1
    denied = check_auth(state, request)
    if denied is not None:
        return denied
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        return error_response(400, "missing file")
    content = await upload.read()
    file_id = store_file(state, content, upload.filename or "upload", str(form.get("purpose")))
    return _file_object(file_id, state.files[file_id])


@router.get("/v1/files/{file_id}")
async def get_file(file_id: str, request: Request) -> Any:
    state = state_of(request)
    record = state.files.get(file_id)
    if record is None:
        return error_response(404, f"no file {file_id}")
    return _file_object(file_id, record)


@router.get("/v1/files/{file_id}/content")
async def file_content(file_id: str, request: Request) -> Response:
    state = state_of(request)
    state.calls["files.content"] += 1
    record = state.files.get(file_id)
    if record is None:
        return error_response(404, f"no file {file_id}")
    return PlainTextResponse(record["content"].decode("utf-8"))


def _batch_object(batch: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in batch.items() if not key.startswith("_")}


def _answer_lines(state: LoopbackState, content: bytes, seed: int) -> tuple[str, str, int]:
    rng = random.Random(seed)
    out, errors, failed = [], [], 0
    for raw in content.decode("utf-8").splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)
        custom_id = line["custom_id"]
        if rng.random() < state.batch_line_error_rate:
            failed += 1
            errors.append(
                {
                    "id": f"batch_req_{next(_ids)}",
                    "custom_id": custom_id,
                    "response": {
                        "status_code": 500,
                        "body": {"error": {"message": "loopback injected 500"}},
                    },
                    "error": None,
                }
            )
            continue
        out.append(
            {
                "id": f"batch_req_{next(_ids)}",
                "custom_id": custom_id,
                "response": {
                    "status_code": 200,
                    "request_id": f"req_{next(_ids)}",
                    "body": chat_completion(line["body"], state.reply_mode),
                },
                "error": None,
            }
        )
    return (
        "".join(json.dumps(o) + "\n" for o in out),
        "".join(json.dumps(e) + "\n" for e in errors),
        failed,
    )


async def _process(state: LoopbackState, batch_id: str) -> None:
    batch = state.batches[batch_id]
    batch["status"] = "in_progress"
    batch["in_progress_at"] = int(time.time())
    await asyncio.sleep(state.batch_delay_s)
    if batch["status"] != "in_progress":
        return
    content = state.files[batch["input_file_id"]]["content"]
    output, errors, failed = _answer_lines(state, content, seed=len(state.batches))
    total = sum(1 for raw in content.decode("utf-8").splitlines() if raw.strip())
    batch["output_file_id"] = store_file(state, output.encode(), "output.jsonl", "batch_output")
    if errors:
        batch["error_file_id"] = store_file(state, errors.encode(), "errors.jsonl", "batch_output")
    batch["request_counts"] = {"total": total, "completed": total - failed, "failed": failed}
    batch["status"] = "completed"
    batch["completed_at"] = int(time.time())


@router.post("/v1/batches")
async def create_batch(request: Request) -> Any:
    state = state_of(request)
    state.calls["batches.create"] += 1
    denied = check_auth(state, request)
    if denied is not None:
        return denied
    body = await request.json()
    input_file_id = body.get("input_file_id")
    if input_file_id not in state.files:
        return error_response(400, f"no input file {input_file_id}")
    batch_id = f"batch_loop{next(_ids)}"
    state.batches[batch_id] = {
        "id": batch_id,
        "object": "batch",
        "endpoint": body.get("endpoint", "/v1/chat/completions"),
        "input_file_id": input_file_id,
        "completion_window": body.get("completion_window", "24h"),
        "status": "validating",
        "created_at": int(time.time()),
        "output_file_id": None,
        "error_file_id": None,
        "metadata": body.get("metadata"),
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
    }
    task = asyncio.create_task(_process(state, batch_id))
    state.batches[batch_id]["_task"] = task
    return _batch_object(state.batches[batch_id])


@router.get("/v1/batches/{batch_id}")
async def get_batch(batch_id: str, request: Request) -> Any:
    state = state_of(request)
    state.calls["batches.retrieve"] += 1
    batch = state.batches.get(batch_id)
    if batch is None:
        return error_response(404, f"no batch {batch_id}")
    return _batch_object(batch)


@router.post("/v1/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, request: Request) -> Any:
    state = state_of(request)
    batch = state.batches.get(batch_id)
    if batch is None:
        return error_response(404, f"no batch {batch_id}")
    if batch["status"] not in ("completed", "failed", "expired"):
        batch["status"] = "cancelled"
        batch["cancelled_at"] = int(time.time())
    return _batch_object(batch)
