"""The LLM judge's page (start a judge on a run, follow its progress) and the Judges page of
a run (every judge against humans, and its rates by PPI), with its JSON and CSV (admins)."""

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session

from app.accounts.deps import AdminUser
from app.db import SessionDep
from app.judging import report, service
from app.judging.rubric import RUBRIC_VERSION, RUBRICS
from app.judging.schemas import JudgesOut
from app.judging.validation import MIN_COMPARED
from app.models import Run
from app.web import INVALID, NOT_FOUND, DbId, DbInt, RunId, api_router, get_or_404, redirect, render

MinCompared = Annotated[
    int, Query(ge=1, le=1_000_000, description="Human-labelled replies a judge needs")
]

router = APIRouter(tags=["judging"])


def _judge_page(
    request: Request, session: Session, run_id: DbId, *, error: str = "", status_code: int = 200
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
            "via_batch": request.query_params.get("batch", "") == "1",
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/results/runs/{run_id}/judge", name="judging.judge_page")
def judge_page(request: Request, run_id: DbId, user: AdminUser, session: SessionDep) -> Response:
    return _judge_page(request, session, run_id)


@router.post("/results/runs/{run_id}/judge", name="judging.judge_start")
def judge_start(
    request: Request,
    run_id: DbId,
    user: AdminUser,
    session: SessionDep,
    judge_id: Annotated[DbInt, Form()] = 0,
    batch: Annotated[bool, Form()] = False,
) -> Response:
    try:
        result = service.start_judging(session, run_id, judge_id, batch=batch)
    except service.JudgeError as exc:
        return _judge_page(request, session, run_id, error=str(exc), status_code=422)
    queued = result.queued + result.retried
    via = "&batch=1" if result.batch and result.queued else ""
    return redirect(request, f"/results/runs/{run_id}/judge?queued={queued}{via}")


@router.post("/results/runs/{run_id}/judge/cancel", name="judging.judge_cancel")
def judge_cancel(request: Request, run_id: DbId, user: AdminUser, session: SessionDep) -> Response:
    get_or_404(session, Run, run_id, f"No run {run_id}")
    if not service.cancel_judging(session, run_id):  # they finished (or were cancelled) meanwhile
        return _judge_page(
            request, session, run_id, error="No judge jobs were left to cancel.", status_code=409
        )
    return redirect(request, f"/results/runs/{run_id}/judge")


@router.post("/results/runs/{run_id}/judge/resume", name="judging.judge_resume")
def judge_resume(request: Request, run_id: DbId, user: AdminUser, session: SessionDep) -> Response:
    get_or_404(session, Run, run_id, f"No run {run_id}")
    if not service.resume_judging(session, run_id):  # resumed meanwhile (another tab)
        return _judge_page(
            request,
            session,
            run_id,
            error="No cancelled judge jobs were left to resume.",
            status_code=409,
        )
    return redirect(request, f"/results/runs/{run_id}/judge")


def _report(session: Session, run_id: DbId, min_compared: int) -> report.JudgesOut:
    run = get_or_404(session, Run, run_id, f"No run {run_id}")
    return report.judges_report(session, run, min_compared=min_compared)


@router.get("/results/runs/{run_id}/judges", name="judging.judges_page")
def judges_page(
    request: Request,
    run_id: DbId,
    user: AdminUser,
    session: SessionDep,
    min_compared: MinCompared = MIN_COMPARED,
) -> Response:
    figures = _report(session, run_id, min_compared)
    return render(
        request,
        "judging/judges.html",
        {"figures": figures, "min_compared": min_compared, "half_width": report.HALF_WIDTH},
    )


@router.get("/api/runs/{run_id}/judges/figures", name="judging.api_judges")
def api_judges(
    run_id: DbId, user: AdminUser, session: SessionDep, min_compared: MinCompared = MIN_COMPARED
) -> JSONResponse:
    return JSONResponse(_report(session, run_id, min_compared).model_dump(mode="json"))


@router.get("/results/runs/{run_id}/judges/figures.csv", name="judging.judges_csv")
def judges_csv(
    run_id: DbId, user: AdminUser, session: SessionDep, min_compared: MinCompared = MIN_COMPARED
) -> Response:
    body = report.to_csv(_report(session, run_id, min_compared))
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="run-{run_id}-judges.csv"'},
    )


# -- /api/v1 -----------------------------------------------------------------------------------

api = api_router("judges")


@api.get(
    "/runs/{run_id}/judges",
    name="judging.v1_judges",
    responses={**NOT_FOUND, **INVALID},
    summary="A run's judges against the humans, and each rate by PPI with its CI",
    description="Every judge of the run (the rule-based parser first, then each LLM judge x "
    "rubric version): its agreement with the human labels (Cohen's kappa with its CI, "
    "beside the humans' own Krippendorff's alpha), whether it is validated, and per arm the "
    "prediction-powered estimate (PPI++) of each rate beside the humans-only one. The "
    "figures of the Judges page.",
)
def v1_judges(
    run_id: RunId, _user: AdminUser, session: SessionDep, min_compared: MinCompared = MIN_COMPARED
) -> JudgesOut:
    return _report(session, run_id, min_compared)
