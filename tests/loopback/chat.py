"""POST /v1/chat/completions with deterministic replies, latency and injected faults."""

import asyncio
import itertools
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tests.loopback.state import LoopbackState, reply_for

router = APIRouter()
_ids = itertools.count(1)


def state_of(request: Request) -> LoopbackState:
    return request.app.state.loopback


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"message": message, "type": "loopback_error", "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def check_auth(state: LoopbackState, request: Request) -> Response | None:
    """401 for a wrong key; the message repeats the header, as careless servers do, so that
    tests can check the client scrubs the key from its errors."""
    if not state.api_key:
        return None
    auth = request.headers.get("authorization", "")
    if auth != f"Bearer {state.api_key}":
        return error_response(401, f"Incorrect API key provided: {auth}")
    return None


def words(text: str) -> int:
    return len(text.split())


def chat_completion(body: dict[str, Any], mode: str) -> dict[str, Any]:
    messages = body.get("messages") or []
    text = reply_for(messages, mode)
    max_tokens = body.get("max_tokens")
    finish = "stop"
    if isinstance(max_tokens, int) and words(text) > max_tokens:
        text = " ".join(text.split()[:max_tokens])
        finish = "length"
    prompt_tokens = sum(words(str(m.get("content", ""))) for m in messages)
    return {
        "id": f"chatcmpl-loop{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "system_fingerprint": f"seed-{body.get('seed')}",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": words(text),
            "total_tokens": prompt_tokens + words(text),
        },
    }


async def fault_response(state: LoopbackState, fault: str, request: Request) -> Response | None:
    if fault == "ok":
        return None
    headers = {"Retry-After": f"{state.retry_after:g}"}
    if fault == "429":
        return error_response(429, "Rate limit reached, slow down", headers)
    if fault == "503":
        return error_response(503, "The server is overloaded", headers)
    if fault in ("500", "400", "404"):
        return error_response(int(fault), f"loopback injected {fault}")
    if fault == "401":
        auth = request.headers.get("authorization", "")
        return error_response(401, f"Incorrect API key provided: {auth}")
    if fault == "timeout":
        await asyncio.sleep(state.timeout_sleep_s)
        return None
    if fault == "malformed":
        return Response('{"choices": [{"message": ', media_type="application/json")
    if fault == "bad_shape":
        return JSONResponse({"object": "chat.completion", "result": "what?"})
    if fault == "html":
        return Response("<html><body>502 Bad Gateway</body></html>", media_type="text/html")
    raise ValueError(fault)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    state = state_of(request)
    state.calls["chat"] += 1
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    try:
        denied = check_auth(state, request)
        if denied is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return error_response(400, "request body is not JSON")
        state.requests.append(body)
        fault = state.next_fault()
        state.faults_served[fault] += 1
        delay = state.latency_s
        if state.jitter_s:
            delay += state.jitter_s * (hash(id(body)) % 1000) / 1000.0
        if delay > 0:
            await asyncio.sleep(delay)
        faulty = await fault_response(state, fault, request)
        if faulty is not None:
            return faulty
        return JSONResponse(chat_completion(body, state.reply_mode))
    finally:
        state.in_flight -= 1


@router.get("/v1/models")
async def models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": "loopback", "object": "model", "owned_by": "test"}]}
