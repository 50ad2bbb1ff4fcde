"""Run-time configuration over HTTP, for a server in another process.

POST /_control            {"latency_s": 0.2, "fault_rates": {"429": 0.05}, ...}  → settings
POST /_control/script     {"faults": ["429", "ok", "timeout"]}                  → queued
POST /_control/reset                                                            → defaults
GET  /_control/stats                                                            → counters
GET  /_control/requests                                                         → bodies seen
"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tests.loopback.chat import state_of

router = APIRouter(prefix="/_control")


@router.post("")
async def configure(request: Request) -> Any:
    state = state_of(request)
    try:
        state.configure(**(await request.json()))
    except (TypeError, ValueError) as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    return state.settings()


@router.post("/script")
async def script(request: Request) -> Any:
    state = state_of(request)
    try:
        state.add_script(list((await request.json())["faults"]))
    except (KeyError, TypeError, ValueError) as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    return {"script_left": len(state.script)}


@router.post("/reset")
async def reset(request: Request) -> Any:
    state_of(request).reset()
    return {"ok": True}


@router.get("/stats")
async def stats(request: Request) -> Any:
    return state_of(request).stats()


@router.get("/requests")
async def requests(request: Request) -> Any:
    return list(state_of(request).requests)
