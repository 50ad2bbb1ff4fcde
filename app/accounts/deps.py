"""Who is asking: dependencies every route uses to enforce its role."""

from typing import Annotated

from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeSerializer
from sqlmodel import Session

from app.accounts import service
from app.config import get_settings
from app.db import SessionDep
from app.models import Role, User

SESSION_COOKIE = "sdilab_session"


class LoginRequired(Exception):
    """No valid session: pages redirect to the login form, the API answers 401."""


class Forbidden(Exception):
    """Logged in, but the role does not allow this."""


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(get_settings().secret_key, salt="sdilab-session")


def sign_token(token: str) -> str:
    return _serializer().dumps(token)


def unsign_token(value: str) -> str | None:
    try:
        token = _serializer().loads(value)
    except BadSignature:
        return None
    return token if isinstance(token, str) else None


def session_token(request: Request) -> str | None:
    raw = request.cookies.get(SESSION_COOKIE)
    return unsign_token(raw) if raw else None


def load_user(request: Request, session: Session) -> User | None:
    token = session_token(request)
    user = service.user_for_token(session, token) if token else None
    request.state.user = user
    return user


def optional_user(request: Request, session: SessionDep) -> User | None:
    return load_user(request, session)


def current_user(request: Request, session: SessionDep) -> User:
    user = load_user(request, session)
    if user is None:
        raise LoginRequired()
    return user


def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if user.role != Role.admin.value:
        raise Forbidden()
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]
