from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.accounts import service
from app.accounts.deps import SESSION_COOKIE, OptionalUser, session_token, sign_token
from app.config import get_settings
from app.db import SessionDep
from app.web import redirect, render

router = APIRouter(tags=["accounts"])


def _safe_next(next_url: str) -> str:
    """Only same-site paths: never redirect to another host after login."""
    parts = urlsplit(next_url)
    if parts.scheme or parts.netloc or not next_url.startswith("/") or next_url.startswith("//"):
        return "/"
    return next_url


@router.get("/login")
def login_form(request: Request, user: OptionalUser, next: str = "/") -> Response:
    if user is not None:
        return redirect(request, _safe_next(next))
    return render(request, "accounts/login.html", {"next": _safe_next(next), "error": ""})


@router.post("/login")
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


@router.post("/logout")
def logout(request: Request, session: SessionDep) -> Response:
    token = session_token(request)
    if token:
        service.end_session(session, token)
    response = redirect(request, "/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
