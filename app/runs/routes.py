"""Run pages (admin) and the runs JSON API."""

import math
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from app.accounts.deps import AdminUser
from app.db import SessionDep, StreamSession
from app.jobs import queue
from app.model_configs import service as model_configs
from app.models import QuestionSet, Reply, ReplyStatus, Run, RunStatus, VariantTemplate
from app.runs import estimate as run_estimate
from app.runs import progress as runs_progress
from app.runs import reply_view, service
from app.runs.schemas import ArmPublic, RunCreate, RunDetail, RunProgress, RunPublic
from app.web import (
    DEFAULT_LIMIT,
    INVALID,
    NOT_FOUND,
    DbId,
    Format,
    FormatQuery,
    Limit,
    Offset,
    Page,
    PageNumber,
    api_router,
    get_or_404,
    jsonl_doc,
    jsonl_response,
    page_limit,
    redirect,
    render,
    render_partial,
)

router = APIRouter(tags=["runs"])
PER_PAGE = 50
DEFAULT_LABELS = ("baseline", "sdi", "")


def _run_or_404(session: Session, run_id: DbId) -> Run:
    return get_or_404(session, Run, run_id, "No such run.")


def _form_context(session: Session) -> dict[str, Any]:
    return {
        "sets": list(session.exec(select(QuestionSet).order_by(col(QuestionSet.name))).all()),
        "templates": list(
            session.exec(
                select(VariantTemplate).order_by(col(VariantTemplate.kind), col(VariantTemplate.id))
            ).all()
        ),
        # Imported placeholders have no model to call: not offered (create_run refuses them).
        "models": model_configs.callable_model_configs(session),
        "arm_slots": DEFAULT_LABELS,
    }


def _ints(values: list[str] | None) -> list[int]:
    return [int(v) for v in values or [] if v.strip().isdigit() and len(v.strip()) < 10]


@router.get("/runs/new/size", name="runs.size_partial")
def size_partial(
    request: Request,
    session: SessionDep,
    _admin: AdminUser,
    question_set_id: Annotated[str, Query()] = "",
    template_ids: Annotated[list[str] | None, Query()] = None,
    arm_model: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[str, Query()] = "",
    samples: Annotated[str, Query()] = "1",
) -> Response:
    """The run's size, time and cost as the form stands (the form asks for it on each change)."""
    set_ids, limits, sample_counts = _ints([question_set_id]), _ints([limit]), _ints([samples])
    size = run_estimate.estimate(
        session,
        set_ids[0] if set_ids else None,
        limits[0] if limits else None,
        _ints(template_ids),
        _ints(arm_model),
        min(sample_counts[0], 100) if sample_counts else 1,
    )
    return render_partial(request, "runs/_size.html", {"size": size})


@router.get("/runs", name="runs.runs_page")
def runs_page(request: Request, session: SessionDep, _admin: AdminUser) -> Response:
    runs = runs_progress.list_runs(session)
    counts = runs_progress.status_counts(session, [r.id for r in runs if r.id is not None])
    sets = {s.id: s.name for s in session.exec(select(QuestionSet)).all()}
    return render(request, "runs/list.html", {"runs": runs, "counts": counts, "set_names": sets})


@router.get("/results", name="runs.results_index")
def results_index(request: Request, session: SessionDep, _admin: AdminUser) -> Response:
    """Every run with a link to its results: the nav's way to the results pages."""
    runs = runs_progress.list_runs(session)
    counts = runs_progress.status_counts(session, [r.id for r in runs if r.id is not None])
    sets = {s.id: s.name for s in session.exec(select(QuestionSet)).all()}
    return render(request, "runs/results.html", {"runs": runs, "counts": counts, "set_names": sets})


@router.get("/runs/new", name="runs.new_page")
def new_page(request: Request, session: SessionDep, _admin: AdminUser) -> Response:
    ctx = {**_form_context(session), "form": {}, "error": "", "field_errors": {}}
    return render(request, "runs/new.html", ctx)


# Field errors in the researcher's words, keyed by the form field they sit beside.
_FIELD_MESSAGES = {
    "question_set_id": "choose a question set",
    "template_ids": "choose at least one template",
    "arms": "choose a model for at least one arm",
    "limit": "a whole number of statements, 1 or more (empty: all)",
    "samples": "a whole number of samples from 1 to 100",
    "seed": "a whole number",
    "cache_policy": "auto, use, refresh or off",
}


def _int_field(value: str, field: str, errors: dict[str, str], default: int | None) -> int | None:
    value = value.strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        errors[field] = _FIELD_MESSAGES[field]
        return default


def _validation_errors(exc: ValidationError, errors: dict[str, str]) -> None:
    for err in exc.errors():
        loc = err.get("loc") or ()
        if not loc:  # the model-level checks are about the arms
            errors.setdefault("arms", str(err.get("msg", "")).removeprefix("Value error, "))
        elif loc[0] == "arms" and len(loc) > 2 and loc[2] == "label":
            errors.setdefault("arms", "every arm with a model needs a label")
        else:
            field = str(loc[0])
            errors.setdefault(field, _FIELD_MESSAGES.get(field, str(err.get("msg"))))


@router.post("/runs", name="runs.create")
def create(
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    question_set_id: Annotated[str, Form()] = "",
    arm_model: Annotated[list[str] | None, Form()] = None,
    arm_label: Annotated[list[str] | None, Form()] = None,
    name: Annotated[str, Form()] = "",
    template_ids: Annotated[list[str] | None, Form()] = None,
    limit: Annotated[str, Form()] = "",
    samples: Annotated[str, Form()] = "1",
    seed: Annotated[str, Form()] = "0",
    use_batch_api: Annotated[bool, Form()] = False,
    cache_policy: Annotated[str, Form()] = "auto",
    accept_contamination: Annotated[bool, Form()] = False,
) -> Response:
    errors: dict[str, str] = {}
    set_id = _int_field(question_set_id, "question_set_id", errors, None)
    if set_id is None:
        errors["question_set_id"] = _FIELD_MESSAGES["question_set_id"]
    chosen = [t for t in template_ids or [] if t.strip().isdigit()]
    if not chosen:
        errors["template_ids"] = _FIELD_MESSAGES["template_ids"]
    models, labels = arm_model or [], arm_label or []
    arms_in = [
        {"model_config_id": m, "label": label}
        for m, label in zip(models, labels + [""] * len(models), strict=False)
        if m.strip()
    ]
    if not arms_in:
        errors["arms"] = _FIELD_MESSAGES["arms"]
    form = {
        "name": name,
        "question_set_id": set_id,
        "template_ids": [int(t) for t in chosen],
        "limit": limit,
        "samples": samples,
        "seed": seed,
        "arm_model": models,
        "arm_label": labels,
        "use_batch_api": use_batch_api,
        "cache_policy": cache_policy,
        "accept_contamination": accept_contamination,
    }
    values = {
        "limit": _int_field(limit, "limit", errors, None),
        "samples": _int_field(samples, "samples", errors, 1),
        "seed": _int_field(seed, "seed", errors, 0),
    }
    message = ""
    if not errors:
        try:
            data = RunCreate.model_validate(
                {
                    "name": name,
                    "question_set_id": set_id,
                    "template_ids": form["template_ids"],
                    "arms": arms_in,
                    "use_batch_api": use_batch_api,
                    "cache_policy": cache_policy,
                    "accept_contamination": accept_contamination,
                    **values,
                }
            )
            run = service.create_run(session, data, created_by=admin.id)
            return redirect(request, f"/runs/{run.id}")
        except ValidationError as exc:
            _validation_errors(exc, errors)
        except service.RunError as exc:
            message = str(exc)
        session.rollback()
    if errors and not message:
        message = "The run was not started: see the marked fields below."
    ctx = {**_form_context(session), "form": form, "error": message, "field_errors": errors}
    return render(request, "runs/new.html", ctx, status_code=422)


def _detail_context(session: Session, run: Run, page: int, status: str | None) -> dict[str, Any]:
    assert run.id is not None
    rows, total = runs_progress.replies(
        session, run.id, status=status, page=page, per_page=PER_PAGE
    )
    failed, _ = runs_progress.replies(
        session, run.id, status=ReplyStatus.failed.value, page=1, per_page=50
    )
    return {
        "run": run,
        "progress": runs_progress.progress_of(session, run),
        "arms": runs_progress.arms_of(session, run.id),
        "question_set": session.get(QuestionSet, run.question_set_id),
        "replies": rows,
        "replies_total": total,
        "page": page,
        "pages": max(1, math.ceil(total / PER_PAGE)),
        "status_filter": status or "",
        "failed": failed,
        "job_counts": queue.group_counts(session, service.group_key(run.id)),
        "cache": service.cache_share(session, run.id),
    }


@router.get("/runs/{run_id}", name="runs.run_page")
def run_page(
    request: Request,
    session: SessionDep,
    _admin: AdminUser,
    run_id: DbId,
    page: Annotated[PageNumber, Query()] = 1,
    status: Annotated[str | None, Query(pattern="^(pending|done|failed|cancelled)?$")] = None,
) -> Response:
    run = _run_or_404(session, run_id)
    return render(request, "runs/detail.html", _detail_context(session, run, page, status or None))


@router.get("/runs/{run_id}/progress", name="runs.progress_partial")
def progress_partial(
    request: Request, session: SessionDep, _admin: AdminUser, run_id: DbId
) -> Response:
    run = _run_or_404(session, run_id)
    response = render_partial(
        request,
        "runs/_progress.html",
        {"run": run, "progress": runs_progress.progress_of(session, run)},
    )
    if run.status != RunStatus.running.value:
        # Polling stops here; reload once so the failed list and replies show the end state.
        response.headers["HX-Refresh"] = "true"
    return response


@router.get("/runs/{run_id}/replies", name="runs.replies_partial")
def replies_partial(
    request: Request,
    session: SessionDep,
    _admin: AdminUser,
    run_id: DbId,
    page: Annotated[PageNumber, Query()] = 1,
    status: Annotated[str | None, Query(pattern="^(pending|done|failed|cancelled)?$")] = None,
) -> Response:
    run = _run_or_404(session, run_id)
    ctx = _detail_context(session, run, page, status or None)
    return render_partial(request, "runs/_replies.html", ctx)


@router.get("/runs/{run_id}/replies/{reply_id}", name="runs.reply_page")
def reply_page(
    request: Request, session: SessionDep, _admin: AdminUser, run_id: DbId, reply_id: DbId
) -> Response:
    """One reply in full: its conversation, fact, template, verdicts, ratings and judge labels."""
    run = _run_or_404(session, run_id)
    reply = get_or_404(session, Reply, reply_id, "No such reply.")
    if reply.run_id != run.id:
        raise HTTPException(404, "No such reply in this run.")
    view = reply_view.reply_view(session, reply)
    return render(request, "runs/reply.html", {"run": run, "view": view})


def _control(request: Request, session: Session, run_id: DbId, action: str) -> Response:
    run = _run_or_404(session, run_id)
    actions = {
        "cancel": service.cancel_run,
        "resume": service.resume_run,
        "retry": service.retry_failed,
    }
    try:
        actions[action](session, run)
    except service.RunError as exc:
        raise HTTPException(409, str(exc)) from None
    return redirect(request, f"/runs/{run_id}")


@router.post("/runs/{run_id}/cancel", name="runs.cancel")
def cancel(request: Request, session: SessionDep, _admin: AdminUser, run_id: DbId) -> Response:
    return _control(request, session, run_id, "cancel")


@router.post("/runs/{run_id}/resume", name="runs.resume")
def resume(request: Request, session: SessionDep, _admin: AdminUser, run_id: DbId) -> Response:
    return _control(request, session, run_id, "resume")


@router.post("/runs/{run_id}/replicate", name="runs.replicate")
def replicate(request: Request, session: SessionDep, admin: AdminUser, run_id: DbId) -> Response:
    """A new run of the same prompts and arms that makes fresh calls (cache off)."""
    run = _run_or_404(session, run_id)
    try:
        copy = service.replicate_run(session, run, created_by=admin.id)
    except service.RunError as exc:
        raise HTTPException(409, str(exc)) from None
    return redirect(request, f"/runs/{copy.id}")


@router.post("/runs/{run_id}/retry", name="runs.retry")
def retry(request: Request, session: SessionDep, _admin: AdminUser, run_id: DbId) -> Response:
    return _control(request, session, run_id, "retry")


# -- JSON --------------------------------------------------------------------------------------


def _public(run: Run, progress: RunProgress | None = None) -> RunPublic:
    return RunPublic.model_validate({**run.model_dump(), "progress": progress})


@router.get("/api/runs", name="runs.api_runs")
def api_runs(session: SessionDep, _admin: AdminUser) -> list[RunPublic]:
    return [_public(run) for run in runs_progress.list_runs(session)]


def _detail(session: Session, run_id: int) -> RunDetail:
    run = _run_or_404(session, run_id)
    public = _public(run, runs_progress.progress_of(session, run))
    return RunDetail(
        **public.model_dump(),
        config=run.config,
        arms=[
            ArmPublic(id=a.id or 0, label=a.label, model_config_id=a.model_config_id)
            for a in runs_progress.arms_of(session, run_id)
        ],
        running=run.status == RunStatus.running.value,
    )


@router.get("/api/runs/{run_id}", name="runs.api_run")
def api_run(session: SessionDep, _admin: AdminUser, run_id: DbId) -> dict[str, Any]:
    return _detail(session, run_id).model_dump(mode="json")


# -- /api/v1 -----------------------------------------------------------------------------------

api = api_router("runs")


@api.get(
    "/runs",
    name="runs.v1_runs",
    summary="Runs, newest first, each with its progress (paged)",
    description="Each run with its replies counted by status (done, failed, pending...), "
    "per arm, with tokens, cost, rate and time left.",
    response_model=Page[RunPublic],
    responses=jsonl_doc(RunPublic.model_json_schema()["examples"][0]),
)
def v1_runs(
    session: StreamSession,
    _admin: AdminUser,
    offset: Offset = 0,
    limit: Limit = None,
    fmt: FormatQuery = Format.json,
) -> Page[RunPublic] | Response:
    runs = runs_progress.list_runs(session, page_limit(limit, fmt), offset)
    rows = (_public(run, runs_progress.progress_of(session, run)) for run in runs)
    if fmt == Format.jsonl:
        return jsonl_response(rows)
    return Page[RunPublic](
        total=runs_progress.count_runs(session),
        offset=offset,
        limit=limit or DEFAULT_LIMIT,
        items=list(rows),
    )


@api.get(
    "/runs/{run_id}",
    name="runs.v1_run",
    responses={**NOT_FOUND, **INVALID},
    summary="One run: its progress, arms and settings",
)
def v1_run(session: SessionDep, _admin: AdminUser, run_id: DbId) -> RunDetail:
    return _detail(session, run_id)
