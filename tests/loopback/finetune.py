"""Emulation of /v1/fine_tuning/jobs (+ events, cancel), enough for the openai client.

Files come from /v1/files (batches.py). A job moves one step each time it is retrieved:
validating_files -> queued -> running (``polls_to_finish`` retrievals) -> succeeded, so tests
follow it without waiting. It fails when the training file has fewer than 10 lines (as the
real service does) or when told to: POST /_control/finetune {"fail_with": "message"}.
"""

import itertools
import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tests.loopback.chat import check_auth, error_response, state_of
from tests.loopback.state import LoopbackState

router = APIRouter()
_ids = itertools.count(1)
DEFAULTS = {"fail_with": "", "polls_to_finish": 2}


def _settings(state: LoopbackState) -> dict[str, Any]:
    return state.ext.setdefault("finetune_settings", dict(DEFAULTS))


def _jobs(state: LoopbackState) -> dict[str, dict[str, Any]]:
    return state.ext.setdefault("finetune_jobs", {})


def _event(job: dict[str, Any], message: str, level: str = "info") -> None:
    job["_events"].append(
        {
            "id": f"ftevent-loop{next(_ids):06d}",
            "object": "fine_tuning.job.event",
            "created_at": int(time.time()),
            "level": level,
            "message": message,
            "type": "message",
            "data": {},
        }
    )


def _public(job: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in job.items() if not key.startswith("_")}


def _lines(state: LoopbackState, file_id: str) -> int:
    content = state.files[file_id]["content"].decode("utf-8")
    return sum(1 for line in content.splitlines() if line.strip())


def _advance(state: LoopbackState, job: dict[str, Any]) -> None:
    status = job["status"]
    if status in ("succeeded", "failed", "cancelled"):
        return
    if status == "validating_files":
        examples = _lines(state, job["training_file"])
        if examples < 10:
            _fail(job, "invalid_n_examples", "Training file has fewer than 10 examples.")
            return
        job["status"] = "queued"
        _event(job, "Files validated, job queued")
        return
    if status == "queued":
        job["status"] = "running"
        _event(job, "Fine-tuning job started")
        return
    job["_polls"] += 1
    _event(job, f"Step {job['_polls']}: training loss={1.0 / job['_polls']:.3f}")
    if job["_polls"] < job["_polls_to_finish"]:
        return
    if job["_fail_with"]:
        _fail(job, "server_error", job["_fail_with"])
        return
    suffix = job.get("_suffix") or "ft"
    job["status"] = "succeeded"
    job["fine_tuned_model"] = f"ft:{job['model']}:loopback:{suffix}:{job['id']}"
    job["trained_tokens"] = 1000 * _lines(state, job["training_file"])
    job["finished_at"] = int(time.time())
    _event(job, f"New fine-tuned model created: {job['fine_tuned_model']}")
    _event(job, "The job has successfully completed")


def _fail(job: dict[str, Any], code: str, message: str) -> None:
    job["status"] = "failed"
    job["error"] = {"code": code, "message": message, "param": None}
    job["finished_at"] = int(time.time())
    _event(job, f"Fine-tuning job failed: {message}", level="error")


@router.post("/v1/fine_tuning/jobs")
async def create_job(request: Request) -> Any:
    state = state_of(request)
    state.calls["fine_tuning.create"] += 1
    denied = check_auth(state, request)
    if denied is not None:
        return denied
    body = await request.json()
    state.requests.append({"path": "/v1/fine_tuning/jobs", "body": body})
    training = body.get("training_file")
    if training not in state.files:
        return error_response(400, f"invalid training_file: {training}")
    validation = body.get("validation_file")
    if validation and validation not in state.files:
        return error_response(400, f"invalid validation_file: {validation}")
    settings = _settings(state)
    job_id = f"ftjob-loop{next(_ids)}"
    hyper = body.get("hyperparameters") or {}
    job: dict[str, Any] = {
        "id": job_id,
        "object": "fine_tuning.job",
        "created_at": int(time.time()),
        "error": None,
        "fine_tuned_model": None,
        "finished_at": None,
        "hyperparameters": {
            "n_epochs": hyper.get("n_epochs", "auto"),
            "batch_size": "auto",
            "learning_rate_multiplier": "auto",
        },
        "model": body.get("model", ""),
        "organization_id": "org-loopback",
        "result_files": [],
        "seed": body.get("seed") or 0,
        "status": "validating_files",
        "trained_tokens": None,
        "training_file": training,
        "validation_file": validation,
        "_events": [],
        "_polls": 0,
        "_polls_to_finish": int(settings["polls_to_finish"]),
        "_fail_with": str(settings["fail_with"] or ""),
        "_suffix": body.get("suffix"),
    }
    _event(job, f"Created fine-tuning job: {job_id}")
    _jobs(state)[job_id] = job
    return _public(job)


@router.get("/v1/fine_tuning/jobs/{job_id}")
async def retrieve_job(job_id: str, request: Request) -> Any:
    state = state_of(request)
    state.calls["fine_tuning.retrieve"] += 1
    denied = check_auth(state, request)
    if denied is not None:
        return denied
    job = _jobs(state).get(job_id)
    if job is None:
        return error_response(404, f"no fine-tuning job {job_id}")
    _advance(state, job)
    return _public(job)


@router.get("/v1/fine_tuning/jobs/{job_id}/events")
async def list_events(job_id: str, request: Request) -> Any:
    state = state_of(request)
    state.calls["fine_tuning.events"] += 1
    job = _jobs(state).get(job_id)
    if job is None:
        return error_response(404, f"no fine-tuning job {job_id}")
    limit = int(request.query_params.get("limit", "20"))
    newest_first = job["_events"][::-1][:limit]
    return {"object": "list", "data": newest_first, "has_more": len(job["_events"]) > limit}


@router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, request: Request) -> Any:
    state = state_of(request)
    job = _jobs(state).get(job_id)
    if job is None:
        return error_response(404, f"no fine-tuning job {job_id}")
    if job["status"] not in ("succeeded", "failed", "cancelled"):
        job["status"] = "cancelled"
        job["finished_at"] = int(time.time())
        _event(job, "Fine-tuning job cancelled")
    return _public(job)


@router.post("/_control/finetune")
async def configure(request: Request) -> Any:
    """{"fail_with": "message" | "", "polls_to_finish": N} for jobs created from now on."""
    state = state_of(request)
    body = await request.json()
    unknown = set(body) - set(DEFAULTS)
    if unknown:
        return JSONResponse({"detail": f"unknown settings {sorted(unknown)}"}, status_code=400)
    _settings(state).update(body)
    return json.loads(json.dumps(_settings(state)))
