from types import SimpleNamespace
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session

from app.accounts.deps import AdminUser, CurrentUser
from app.db import SessionDep, begin_write
from app.models import Label, RatingRound, User, Verdict
from app.rating import desk as desk_service
from app.rating import mine, oversight, pairwise, pairwise_routes, service, views
from app.rating.guidelines import DEFAULT_GUIDELINES, render_markdown
from app.rating.schemas import AdjudicationInput, PairwiseRoundCreate, RatingInput, RoundCreate
from app.rating.submissions import Undone
from app.web import (
    MAX_DB_INT,
    DbId,
    DbInt,
    FormFields,
    PageNumber,
    field_errors,
    get_or_404,
    is_htmx,
    redirect,
    render,
    render_partial,
)

router = APIRouter(tags=["rating"])
router.include_router(pairwise_routes.router)

LABEL_KEYS = [(Label.agree, "A"), (Label.correct, "C"), (Label.evasive, "E")]
VERDICTS = [
    (Verdict.true, "says true", "T"),
    (Verdict.false, "says false", "F"),
    (Verdict.none, "no verdict", "N"),
]


def _uid(user: User) -> int:
    assert user.id is not None
    return user.id


def _round_or_404(session: Session, round_id: DbId) -> RatingRound:
    return get_or_404(session, RatingRound, round_id, "No such rating round.")


def _rating_input(
    label: str | None, helpfulness: str | None, verdict: str | None, note: str, flagged: str | None
) -> RatingInput:
    return RatingInput.model_validate(
        {
            "label": label,
            "helpfulness": helpfulness,
            "verdict": verdict,
            "note": note,
            "flagged": bool(flagged),
        }
    )


# What a rater is asked for, in the form's words (the fields in the form's order).
_CHOICES = {
    "label": "a label",
    "helpfulness": "a helpfulness score",
    "verdict": "the reply's verdict",
    "note": "a shorter note (at most 2,000 characters)",
}


def _problem(exc: ValidationError, choices: dict[str, str] = _CHOICES) -> str:
    fields = {str(err["loc"][0]) for err in exc.errors() if err.get("loc")}
    named = [text for name, text in choices.items() if name in fields]
    named += sorted(fields - set(choices))
    return "Please choose " + " and ".join(named) + "." if named else "Invalid rating."


# --- the rater's page -----------------------------------------------------------------------


def _item_context(
    session: Session,
    user: User,
    *,
    message: str = "",
    error: str = "",
    restore: Undone | None = None,
) -> dict[str, Any]:
    desk = desk_service.next_reply(
        session, _uid(user), message=message, error=error, restore=restore
    )
    return desk.context() | {
        "label_keys": LABEL_KEYS,
        "verdicts": VERDICTS,
        "pairwise_open": bool(desk.view is None and pairwise.open_rounds(session)),
    }


def _rate_response(request: Request, session: Session, user: User, message: str = "") -> Response:
    """HTMX gets the next reply swapped in; a plain browser is sent back to /rate, unless
    there is something to tell (a refusal), which a redirect would lose."""
    if is_htmx(request):
        return render_partial(
            request, "rating/_item.html", _item_context(session, user, message=message)
        )
    if message:
        return render(request, "rating/rate.html", _item_context(session, user, message=message))
    return redirect(request, request.url_for("rating.rate").path)


@router.get("/rate", name="rating.rate")
def rate(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    return render(request, "rating/rate.html", _item_context(session, user))


@router.post("/rate/{round_id}/start", name="rating.rate_start")
def rate_start(
    round_id: DbId, request: Request, user: CurrentUser, session: SessionDep
) -> Response:
    desk_service.start(session, _round_or_404(session, round_id), _uid(user))
    return _rate_response(request, session, user)


@router.post("/rate/{round_id}/items/{token}", name="rating.rate_submit")
def rate_submit(
    round_id: DbId,
    token: str,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    label: Annotated[str | None, Form()] = None,
    helpfulness: Annotated[str | None, Form()] = None,
    verdict: Annotated[str | None, Form()] = None,
    note: Annotated[str, Form(max_length=2000)] = "",
    flagged: Annotated[str | None, Form()] = None,
) -> Response:
    round_ = _round_or_404(session, round_id)
    try:
        data = _rating_input(label, helpfulness, verdict, note, flagged)
    except ValidationError as exc:
        # The reply stays leased to this rater, so the page shows it again with the message,
        # and with what they had chosen.
        ctx = _item_context(session, user, error=_problem(exc))
        if ctx.get("view") is not None and ctx["view"].token == token:
            ctx["current"] = SimpleNamespace(
                label=label,
                helpfulness=int(helpfulness) if helpfulness and helpfulness.isdigit() else None,
                verdict=verdict,
                note=note,
                flagged=bool(flagged),
            )
        if is_htmx(request):
            return render_partial(request, "rating/_item.html", ctx)
        return render(request, "rating/rate.html", ctx, status_code=422)
    try:
        reply_id = views.reply_of_token(session, round_, token)
    except service.RatingError as exc:
        return _rate_response(request, session, user, message=str(exc))
    refused = desk_service.submit(session, round_, _uid(user), reply_id, data)
    return _rate_response(request, session, user, message=refused)


@router.post("/rate/{round_id}/items/{token}/skip", name="rating.rate_skip")
def rate_skip(
    round_id: DbId, token: str, request: Request, user: CurrentUser, session: SessionDep
) -> Response:
    round_ = _round_or_404(session, round_id)
    try:
        reply_id = views.reply_of_token(session, round_, token)
    except service.RatingError as exc:
        return _rate_response(request, session, user, message=str(exc))
    refused = desk_service.skip(session, round_, _uid(user), reply_id)
    return _rate_response(request, session, user, message=refused)


@router.post("/rate/{round_id}/undo", name="rating.rate_undo")
def rate_undo(round_id: DbId, request: Request, user: CurrentUser, session: SessionDep) -> Response:
    message, undone = desk_service.undo(session, _round_or_404(session, round_id), _uid(user))
    # Answered directly, not redirected: the page brings back the answers taken back.
    ctx = _item_context(session, user, message=message, restore=undone)
    if is_htmx(request):
        return render_partial(request, "rating/_item.html", ctx)
    return render(request, "rating/rate.html", ctx)


@router.get("/rate/guidelines", name="rating.rate_guidelines")
def rate_guidelines(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    rounds = service.rounds_for_rater(session)
    text = rounds[0].guidelines_md if rounds else DEFAULT_GUIDELINES
    return render(request, "rating/guidelines.html", {"guidelines": render_markdown(text)})


@router.get("/rate/mine", name="rating.my_ratings")
def my_ratings(
    request: Request, user: CurrentUser, session: SessionDep, page: PageNumber = 1
) -> Response:
    page = max(1, page)
    ratings = service.my_ratings(session, _uid(user), limit=50, offset=(page - 1) * 50)
    entries = mine.with_texts(session, ratings)
    return render(request, "rating/mine.html", {"ratings": entries, "page": page})


def _own_or_404(session: Session, user: User, rating_id: DbId) -> Any:
    rating = service.own_rating(session, _uid(user), rating_id)
    if rating is None or rating.round_id is None:
        raise HTTPException(404, "No such rating of yours.")
    return rating, _round_or_404(session, rating.round_id)


@router.get("/rate/mine/{rating_id}", name="rating.my_rating_edit")
def my_rating_edit(
    rating_id: DbId, request: Request, user: CurrentUser, session: SessionDep
) -> Response:
    rating, round_ = _own_or_404(session, user, rating_id)
    return _edit_page(request, session, rating, round_)


def _edit_page(
    request: Request,
    session: Session,
    rating: Any,
    round_: RatingRound,
    *,
    error: str = "",
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "rating/edit.html",
        {
            "rating": rating,
            "view": views.reply_view(session, round_, rating.reply_id),
            "history": service.revisions(session, rating.id),
            "label_keys": LABEL_KEYS,
            "verdicts": VERDICTS,
            "error": error,
        },
        status_code=status_code,
    )


@router.post("/rate/mine/{rating_id}", name="rating.my_rating_revise")
def my_rating_revise(
    rating_id: DbId,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    label: Annotated[str | None, Form()] = None,
    helpfulness: Annotated[str | None, Form()] = None,
    verdict: Annotated[str | None, Form()] = None,
    note: Annotated[str, Form(max_length=2000)] = "",
    flagged: Annotated[str | None, Form()] = None,
) -> Response:
    rating, round_ = _own_or_404(session, user, rating_id)
    try:
        data = _rating_input(label, helpfulness, verdict, note, flagged)
    except ValidationError as exc:
        # The page again, its message above the form (the stored rating is unchanged).
        return _edit_page(request, session, rating, round_, error=_problem(exc), status_code=422)
    begin_write(session)
    service.revise(session, rating, _uid(user), data)
    return redirect(request, f"/rate/mine/{rating_id}")


# --- admin: rounds, progress, adjudication --------------------------------------------------


def _rounds_page(
    request: Request,
    session: Session,
    *,
    error: str = "",
    pairwise_error: str = "",
    field_errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "rating/rounds.html",
        {
            "rounds": service.list_rounds(session),
            "ratings": service.ratings_per_round(session),
            "runs": service.runs_without_round(session),
            "default_guidelines": DEFAULT_GUIDELINES,
            "error": error,
            "pairwise_runs": service.runs_for_pairwise(session),
            "pairwise_guidelines": pairwise.DEFAULT_PAIRWISE_GUIDELINES,
            "pairwise_error": pairwise_error,
            "field_errors": field_errors or {},
            "form": form or {},
        },
        status_code=status_code,
    )


@router.get("/rating/rounds", name="rating.rounds")
def rounds(request: Request, user: AdminUser, session: SessionDep) -> Response:
    return _rounds_page(request, session)


# The round form's fields in the admin's words, keyed by the field they sit beside.
_ROUND_MESSAGES = {
    "name": "give the round a name",
    "run_ids": "choose at least one run",
    "raters_per_reply": "a whole number of raters from 1 to 20",
    "lease_minutes": "a whole number of minutes from 1 to 1440",
    "sample_size": "a whole number of replies, 1 or more (empty: every reply)",
    "guidelines_md": "at most 50,000 characters",
}
_ROUND_NUMBERS = {"raters_per_reply": "2", "lease_minutes": "10", "seed": "0"}


@router.post("/rating/rounds", name="rating.round_create")
def round_create(
    request: Request, user: AdminUser, session: SessionDep, form: FormFields
) -> Response:
    def text(name: str, default: str = "") -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else default

    run_ids = [v.strip() for v in form.getlist("run_ids") if isinstance(v, str) and v.strip()]
    kept: dict[str, Any] = {
        "name": text("name"),
        "run_ids": run_ids,
        "sample_size": text("sample_size"),
        "show_reference": bool(form.get("show_reference")),
        "show_judge_after_submit": bool(form.get("show_judge_after_submit")),
        "guidelines_md": form.get("guidelines_md")
        if isinstance(form.get("guidelines_md"), str)
        else "",
        **{name: text(name) or default for name, default in _ROUND_NUMBERS.items()},
    }
    values = {
        **{name: kept[name] for name in _ROUND_NUMBERS},
        "name": kept["name"],
        # An id the database cannot hold names no run: "Unknown run" below, not an overflow.
        "run_ids": [int(v) if v.isdigit() and int(v) <= MAX_DB_INT else 0 for v in run_ids],
        "sample_size": kept["sample_size"] or None,
        "show_reference": kept["show_reference"],
        "show_judge_after_submit": kept["show_judge_after_submit"],
        "guidelines_md": str(kept["guidelines_md"]).strip() or None,
    }
    try:
        data = RoundCreate.model_validate(values)
        round_ = service.open_round(session, **data.model_dump(), created_by=_uid(user))
    except ValidationError as exc:
        return _rounds_page(
            request,
            session,
            error="The round was not opened: see the marked fields below.",
            field_errors=field_errors(exc, _ROUND_MESSAGES),
            form=kept,
            status_code=422,
        )
    except service.RatingError as exc:
        session.rollback()
        return _rounds_page(request, session, error=str(exc), form=kept, status_code=422)
    return redirect(request, f"/rating/rounds/{round_.id}")


@router.post("/rating/rounds/pairwise", name="rating.pairwise_round_create")
def pairwise_round_create(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    name: Annotated[str, Form(max_length=200)] = "Pairwise",
    run_id: Annotated[str, Form(max_length=12)] = "",
    raters_per_item: Annotated[DbInt, Form()] = 2,
    lease_minutes: Annotated[DbInt, Form()] = 10,
    seed: Annotated[DbInt, Form()] = 0,
    show_reference: Annotated[str | None, Form()] = None,
    guidelines_md: Annotated[str, Form(max_length=50_000)] = "",
) -> Response:
    try:
        data = PairwiseRoundCreate(
            name=name,
            run_id=run_id.strip() or None,
            raters_per_item=raters_per_item,
            lease_minutes=lease_minutes,
            seed=seed,
            show_reference=bool(show_reference),
            guidelines_md=guidelines_md.strip() or None,
        )
        round_ = pairwise.open_pairwise_round(session, **data.model_dump(), created_by=_uid(user))
    except ValidationError as exc:
        session.rollback()
        return _rounds_page(
            request, session, pairwise_error=_pairwise_problem(exc), status_code=422
        )
    except service.RatingError as exc:
        session.rollback()
        return _rounds_page(request, session, pairwise_error=str(exc), status_code=422)
    return redirect(request, f"/rating/rounds/{round_.id}")


def _pairwise_problem(exc: ValidationError) -> str:
    fields = {str(err["loc"][0]) for err in exc.errors() if err.get("loc")}
    if "run_id" in fields:
        return "Choose a run with at least two arms."
    return "Please check " + ", ".join(sorted(f.replace("_", " ") for f in fields)) + "."


@router.get("/rating/rounds/{round_id}", name="rating.round_detail")
def round_detail(
    round_id: DbId, request: Request, user: AdminUser, session: SessionDep
) -> Response:
    round_ = _round_or_404(session, round_id)
    if pairwise.is_pairwise(round_):
        return render(
            request,
            "rating/pairwise_round.html",
            {
                "round": round_,
                "overview": pairwise.overview(session, round_),
                "guidelines": render_markdown(round_.guidelines_md),
            },
        )
    return render(
        request,
        "rating/round.html",
        {
            "round": round_,
            "runs": oversight.run_progress(session, round_),
            "raters": oversight.rater_rows(session, round_),
            "guidelines": render_markdown(round_.guidelines_md),
        },
    )


@router.post("/rating/rounds/{round_id}", name="rating.round_update")
def round_update(
    round_id: DbId,
    request: Request,
    user: AdminUser,
    session: SessionDep,
    guidelines_md: Annotated[str | None, Form(max_length=50_000)] = None,
    is_open: Annotated[str | None, Form()] = None,
    show_reference: Annotated[str | None, Form()] = None,
    show_judge_after_submit: Annotated[str | None, Form()] = None,
) -> Response:
    round_ = _round_or_404(session, round_id)
    service.update_round(
        session,
        round_,
        guidelines_md=guidelines_md,
        is_open=None if is_open is None else is_open == "1",
        show_reference=None if show_reference is None else show_reference == "1",
        show_judge_after_submit=(
            None if show_judge_after_submit is None else show_judge_after_submit == "1"
        ),
    )
    return redirect(request, f"/rating/rounds/{round_id}")


@router.post("/rating/rounds/{round_id}/sync", name="rating.round_sync")
def round_sync(round_id: DbId, request: Request, user: AdminUser, session: SessionDep) -> Response:
    round_ = _round_or_404(session, round_id)
    try:
        service.take_in_new_replies(session, round_)
    except service.RatingError as exc:
        raise HTTPException(422, str(exc)) from exc
    return redirect(request, f"/rating/rounds/{round_id}")


@router.post("/rating/rounds/{round_id}/pairs", name="rating.pairwise_round_sync")
def pairwise_round_sync(
    round_id: DbId, request: Request, user: AdminUser, session: SessionDep
) -> Response:
    round_ = _round_or_404(session, round_id)
    try:
        pairwise.take_in_new_pairs(session, round_)
    except service.RatingError as exc:
        raise HTTPException(422, str(exc)) from exc
    return redirect(request, f"/rating/rounds/{round_id}")


def _adjudication_page(
    request: Request,
    session: Session,
    round_: RatingRound,
    page: int,
    *,
    error: str = "",
    error_reply: int | None = None,
    status_code: int = 200,
) -> Response:
    page = max(1, page)
    items, total = oversight.disagreements(session, round_, limit=20, offset=(page - 1) * 20)
    return render(
        request,
        "rating/adjudicate.html",
        {
            "round": round_,
            "items": items,
            "total": total,
            "page": page,
            "pages": (total + 19) // 20,
            "label_keys": LABEL_KEYS,
            "verdicts": VERDICTS,
            "error": error,
            "error_reply": error_reply,
        },
        status_code=status_code,
    )


@router.get("/rating/rounds/{round_id}/adjudicate", name="rating.adjudication_page")
def adjudication_page(
    round_id: DbId, request: Request, user: AdminUser, session: SessionDep, page: PageNumber = 1
) -> Response:
    return _adjudication_page(request, session, _round_or_404(session, round_id), page)


@router.post("/rating/rounds/{round_id}/adjudicate/{reply_id}", name="rating.adjudicate")
def adjudicate(
    round_id: DbId,
    reply_id: DbId,
    request: Request,
    user: AdminUser,
    session: SessionDep,
    label: Annotated[str, Form()] = "",
    helpfulness: Annotated[str, Form()] = "",
    verdict: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
    page: Annotated[DbInt, Form()] = 1,
) -> Response:
    round_ = _round_or_404(session, round_id)
    try:
        data = AdjudicationInput.model_validate(
            {
                "label": label or None,
                "helpfulness": helpfulness or None,
                "verdict": verdict or None,
                "note": note,
            }
        )
    except ValidationError as exc:
        # Nothing is chosen for the adjudicator: the page comes back saying what is missing.
        return _adjudication_page(
            request,
            session,
            round_,
            page,
            error=_problem(exc, {**_CHOICES, "label": "a final label"}),
            error_reply=reply_id,
            status_code=422,
        )
    try:
        oversight.adjudicate(session, reply_id, _uid(user), data)
    except service.RatingError as exc:
        raise HTTPException(404, str(exc)) from exc
    return redirect(request, f"/rating/rounds/{round_id}/adjudicate?page={page}#r{reply_id}")
