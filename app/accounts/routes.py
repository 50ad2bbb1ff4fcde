from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session

from app.accounts import service, token_routes
from app.accounts.deps import (
    SESSION_COOKIE,
    AdminUser,
    OptionalUser,
    session_token,
    sign_token,
)
from app.accounts.schemas import UserCreate
from app.accounts.security import MIN_PASSWORD_LENGTH
from app.config import get_settings
from app.db import SessionDep, begin_write
from app.models import Role, User
from app.web import DbId, get_or_404, redirect, render

router = APIRouter(tags=["accounts"])
router.include_router(token_routes.router)
api = token_routes.api


def _safe_next(next_url: str) -> str:
    """Only same-site paths: never redirect to another host after login."""
    parts = urlsplit(next_url)
    if parts.scheme or parts.netloc or not next_url.startswith("/") or next_url.startswith("//"):
        return "/"
    return next_url


@router.get("/login", name="accounts.login_form")
def login_form(request: Request, user: OptionalUser, next: str = "/", email: str = "") -> Response:
    if user is not None:
        return redirect(request, _safe_next(next))
    return render(
        request,
        "accounts/login.html",
        {"next": _safe_next(next), "error": "", "email": email[:254]},
    )


@router.post("/login", name="accounts.login")
def login(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    settings = get_settings()
    client = request.client.host if request.client else "unknown"
    keys = [f"email:{service.normalise_email(email)}", f"ip:{client}"]
    limit = settings.login_attempts_per_15min
    if any(service.is_throttled(session, key, limit) for key in keys):
        return render(
            request,
            "accounts/login.html",
            {"next": _safe_next(next), "error": "Too many failed attempts. Wait 15 minutes."},
            status_code=429,
        )
    user = service.authenticate(session, email, password)
    begin_write(session)
    if user is None:
        for key in keys:
            service.record_failed_login(session, key)
        session.commit()
        return render(
            request,
            "accounts/login.html",
            {"next": _safe_next(next), "error": "Wrong email or password.", "email": email},
            status_code=401,
        )
    old = session_token(request)
    if old:
        service.end_session(session, old)
    token = service.start_session(session, user, settings.session_hours)
    response = redirect(request, _safe_next(next))
    response.set_cookie(
        SESSION_COOKIE,
        sign_token(token),
        max_age=settings.session_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.https,
        path="/",
    )
    return response


@router.post("/logout", name="accounts.logout")
def logout(request: Request, session: SessionDep) -> Response:
    token = session_token(request)
    if token:
        service.end_session(session, token)
    response = redirect(request, "/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- user administration (admins) -----------------------------------------------------------


def _users_page(
    request: Request,
    session: Session,
    *,
    error: str = "",
    invite_link: str = "",
    invited: str = "",
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "accounts/users.html",
        {
            "users": service.list_users(session),
            "roles": list(Role),
            "error": error,
            "invite_link": invite_link,
            "invited": invited,
            "invite_hours": service.INVITE_HOURS,
            "min_password": MIN_PASSWORD_LENGTH,
        },
        status_code=status_code,
    )


@router.get("/users", name="accounts.users")
def users(request: Request, user: AdminUser, session: SessionDep) -> Response:
    return _users_page(request, session)


@router.post("/users", name="accounts.user_create")
def user_create(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=256)],
    role: Annotated[str, Form()] = Role.rater.value,
    display_name: Annotated[str, Form(max_length=120)] = "",
) -> Response:
    try:
        data = UserCreate(email=email, password=password, role=role, display_name=display_name)
        service.create_user(session, data)
    except (ValidationError, service.AccountError) as exc:
        session.rollback()
        message = _validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
        return _users_page(request, session, error=message, status_code=422)
    return redirect(request, "/users")


@router.post("/users/invite", name="accounts.user_invite")
def user_invite(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    email: Annotated[str, Form(max_length=254)],
    role: Annotated[str, Form()] = Role.rater.value,
    display_name: Annotated[str, Form(max_length=120)] = "",
) -> Response:
    if "@" not in email or role not in {r.value for r in Role}:
        return _users_page(request, session, error="Give an email and a role.", status_code=422)
    try:
        invitee, token = service.create_invite(
            session, email, role=Role(role), display_name=display_name, created_by=user.id
        )
    except service.AccountError as exc:
        session.rollback()
        return _users_page(request, session, error=str(exc), status_code=422)
    link = str(request.base_url).rstrip("/") + f"/invite/{token}"
    # Shown once: only the token's hash is stored.
    return _users_page(request, session, invite_link=link, invited=invitee.email)


def _user_or_404(session: Session, user_id: DbId) -> User:
    target = get_or_404(session, User, user_id, "No such user.")
    return target


@router.post("/users/{user_id}/deactivate", name="accounts.user_deactivate")
def user_deactivate(
    user_id: DbId, request: Request, user: AdminUser, session: SessionDep
) -> Response:
    target = _user_or_404(session, user_id)
    if target.id == user.id:
        return _users_page(
            request, session, error="You cannot deactivate yourself.", status_code=422
        )
    if not target.is_active:  # deactivated meanwhile (another admin, another tab)
        return _users_page(
            request, session, error=f"{target.email} was already deactivated.", status_code=409
        )
    service.set_active(session, target, False)
    return redirect(request, "/users")


@router.post("/users/{user_id}/reactivate", name="accounts.user_reactivate")
def user_reactivate(
    user_id: DbId, request: Request, user: AdminUser, session: SessionDep
) -> Response:
    target = _user_or_404(session, user_id)
    if target.is_active:  # reactivated meanwhile
        return _users_page(
            request, session, error=f"{target.email} is already active.", status_code=409
        )
    service.set_active(session, target, True)
    return redirect(request, "/users")


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


# --- accepting an invite (public: the token is the credential) ------------------------------


@router.get("/invite/{token}", name="accounts.invite_form")
def invite_form(token: str, request: Request, session: SessionDep) -> Response:
    invite = service.valid_invite(session, token)
    if invite is None:
        return render(
            request,
            "accounts/invite.html",
            {"invalid": True, "token": "", "error": "", "email": ""},
            status_code=410,
        )
    invitee = session.get(User, invite.user_id)
    return render(
        request,
        "accounts/invite.html",
        {
            "invalid": False,
            "token": token,
            "error": "",
            "email": invitee.email if invitee else "",
            "min_password": MIN_PASSWORD_LENGTH,
        },
    )


@router.post("/invite/{token}", name="accounts.invite_accept")
def invite_accept(
    token: str,
    request: Request,
    session: SessionDep,
    password: Annotated[str, Form(max_length=256)],
    password2: Annotated[str, Form(max_length=256)],
) -> Response:
    if password != password2:
        invite = service.valid_invite(session, token)
        return render(
            request,
            "accounts/invite.html",
            {
                "invalid": invite is None,
                "token": token,
                "error": "The two passwords differ.",
                "email": "",
                "min_password": MIN_PASSWORD_LENGTH,
            },
            status_code=422,
        )
    try:
        invitee = service.accept_invite(session, token, password)
    except service.AccountError as exc:
        session.rollback()
        invalid = service.valid_invite(session, token) is None
        return render(
            request,
            "accounts/invite.html",
            {
                "invalid": invalid,
                "token": token,
                "error": str(exc),
                "email": "",
                "min_password": MIN_PASSWORD_LENGTH,
            },
            status_code=410 if invalid else 422,
        )
    return redirect(request, f"/login?next=/rate&email={quote(invitee.email)}")
