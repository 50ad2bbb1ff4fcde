"""The LLM judge's page: start a judge on a run, follow its progress (admins only)."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlmodel import Session

from app.accounts.deps import AdminUser
from app.db import SessionDep
from app.judging import service
from app.judging.rubric import RUBRIC_VERSION, RUBRICS
from app.models import Run
from app.web import get_or_404, redirect, render

router = APIRouter(tags=["judging"])


def _judge_page(
    request: Request, session: Session, run_id: int, *, error: str = "", status_code: int = 200
) -> Response:
    run = get_or_404(session, Run, run_id, f"No run {run_id}")
    return render(
        request,
        "judging/judge.html",
        {
            "run": run,
            "judge_panel": service.panel(session, run_id),
            "rubric": RUBRICS[RUBRIC_VERSION],
            "rubric_version": RUBRIC_VERSION,
            "queued": request.query_params.get("queued", ""),
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/results/runs/{run_id}/judge", name="judging.judge_page")
def judge_page(request: Request, run_id: int, user: AdminUser, session: SessionDep) -> Response:
    return _judge_page(request, session, run_id)


@router.post("/results/runs/{run_id}/judge", name="judging.judge_start")
def judge_start(
    request: Request,
    run_id: int,
    user: AdminUser,
    session: SessionDep,
    judge_id: Annotated[int, Form()] = 0,
) -> Response:
    try:
        result = service.start_judging(session, run_id, judge_id)
    except service.JudgeError as exc:
        return _judge_page(request, session, run_id, error=str(exc), status_code=422)
    queued = result.queued + result.retried
    return redirect(request, f"/results/runs/{run_id}/judge?queued={queued}")
