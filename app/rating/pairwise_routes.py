"""The rater's pairwise page: two replies side by side, choose left, right or tie."""

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response
from sqlmodel import Session

from app.accounts.deps import CurrentUser
from app.db import SessionDep
from app.models import RatingRound, Side, User
from app.rating import pairwise, pairwise_desk
from app.rating.leases import RatingError
from app.web import DbId, get_or_404, is_htmx, redirect, render, render_partial

router = APIRouter(tags=["rating"])

PAGE = "rating/pairwise.html"
PARTIAL = "rating/_pairwise_item.html"
QUESTION_NAMES = {"factual": "which reply is more factual", "helpful": "which is more helpful"}


def _uid(user: User) -> int:
    assert user.id is not None
    return user.id


def _pairwise_round(session: Session, round_id: int) -> RatingRound:
    round_ = get_or_404(session, RatingRound, round_id, "No such pairwise round.")
    if not pairwise.is_pairwise(round_):
        raise HTTPException(404, "No such pairwise round.")
    return round_


def _page(
    request: Request,
    session: Session,
    user: User,
    *,
    message: str = "",
    error: str = "",
    restore: pairwise.Undone | None = None,
    current: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    desk = pairwise_desk.next_item(
        session, _uid(user), message=message, error=error, restore=restore, current=current
    )
    if is_htmx(request):
        return render_partial(request, PARTIAL, desk.context(), status_code=status_code)
    return render(request, PAGE, desk.context(), status_code=status_code)


def _after_write(request: Request, session: Session, user: User, message: str) -> Response:
    """HTMX gets the next item swapped in; a plain browser is sent back to the page, unless
    there is something to tell (a refusal), which a redirect would lose."""
    if message or is_htmx(request):
        return _page(request, session, user, message=message)
    return redirect(request, request.url_for("rating.pairwise").path)


@router.get("/rate/pairwise", name="rating.pairwise")
def pairwise_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    return _page(request, session, user)


@router.post("/rate/pairwise/{round_id}/start", name="rating.pairwise_start")
def pairwise_start(
    round_id: DbId, request: Request, user: CurrentUser, session: SessionDep
) -> Response:
    pairwise_desk.start(session, _pairwise_round(session, round_id), _uid(user))
    return _after_write(request, session, user, "")


def _side(value: str | None) -> Side | None:
    try:
        return Side(value) if value else None
    except ValueError:
        return None


@router.post("/rate/pairwise/{round_id}/items/{token}", name="rating.pairwise_submit")
def pairwise_submit(
    round_id: DbId,
    token: str,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    factual: Annotated[str | None, Form(max_length=8)] = None,
    helpful: Annotated[str | None, Form(max_length=8)] = None,
) -> Response:
    round_ = _pairwise_round(session, round_id)
    sides = {"factual": _side(factual), "helpful": _side(helpful)}
    missing = [QUESTION_NAMES[name] for name, side in sides.items() if side is None]
    if missing:
        # The item stays leased to this rater: the page shows it again with the message and
        # with what they had chosen.
        chosen = {name: side.value for name, side in sides.items() if side is not None}
        error = "Please choose " + " and ".join(missing) + " (left, right or tie)."
        return _page(request, session, user, error=error, current=chosen, status_code=422)
    try:
        item_id = pairwise.item_of_token(session, round_, token)
    except RatingError as exc:
        return _page(request, session, user, message=str(exc))
    factual_side, helpful_side = sides["factual"], sides["helpful"]
    assert factual_side is not None and helpful_side is not None
    refused = pairwise_desk.submit(session, round_, _uid(user), item_id, factual_side, helpful_side)
    return _after_write(request, session, user, refused)


@router.post("/rate/pairwise/{round_id}/items/{token}/skip", name="rating.pairwise_skip")
def pairwise_skip(
    round_id: DbId, token: str, request: Request, user: CurrentUser, session: SessionDep
) -> Response:
    round_ = _pairwise_round(session, round_id)
    try:
        item_id = pairwise.item_of_token(session, round_, token)
    except RatingError as exc:
        return _page(request, session, user, message=str(exc))
    refused = pairwise_desk.skip(session, round_, _uid(user), item_id)
    return _after_write(request, session, user, refused)


@router.post("/rate/pairwise/{round_id}/undo", name="rating.pairwise_undo")
def pairwise_undo(
    round_id: DbId, request: Request, user: CurrentUser, session: SessionDep
) -> Response:
    message, undone = pairwise_desk.undo(session, _pairwise_round(session, round_id), _uid(user))
    # Answered directly, not redirected: the page brings back the answers taken back.
    return _page(request, session, user, message=message, restore=undone)


@router.get("/rate/pairwise/mine", name="rating.pairwise_mine")
def pairwise_mine(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """The rater's own choices, latest first (sides as they saw them; no reply named)."""
    rows = pairwise.my_choices(session, _uid(user))
    return render(request, "rating/pairwise_mine.html", {"rows": rows})
