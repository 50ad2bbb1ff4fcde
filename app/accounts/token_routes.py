"""The account page (an admin's or a rater's own API tokens) and the tokens' JSON API."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session

from app.accounts import tokens
from app.accounts.deps import CurrentUser
from app.accounts.service import AccountError
from app.db import SessionDep
from app.models import ApiToken, Role, TokenScope, User
from app.web import INVALID, ApiError, DbId, DbInt, api_router, redirect, render

router = APIRouter(tags=["accounts"])


class TokenPublic(BaseModel):
    """A token as the API shows it: never the token itself, which is shown once at creation."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "name": "notebook",
                    "scope": "read",
                    "created_at": "2026-12-01T09:00:00",
                    "expires_at": "2027-03-01T09:00:00",
                    "revoked_at": None,
                    "last_used_at": "2026-12-07T15:12:40",
                    "last_used_from": "10.0.0.12",
                    "live": True,
                }
            ]
        }
    )

    id: int
    name: str
    scope: TokenScope
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_from: str | None
    live: bool


def _public(token: ApiToken) -> TokenPublic:
    assert token.id is not None
    return TokenPublic(
        id=token.id,
        name=token.name,
        scope=TokenScope(token.scope),
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        last_used_at=token.last_used_at,
        last_used_from=token.last_used_from,
        live=tokens.is_live(token),
    )


def _account_page(
    request: Request,
    session: Session,
    user: User,
    *,
    error: str = "",
    new_token: str = "",
    status_code: int = 200,
) -> Response:
    scopes = list(TokenScope) if user.role == Role.admin.value else [TokenScope.read]
    response = render(
        request,
        "accounts/account.html",
        {
            "tokens": [_public(t) for t in tokens.list_tokens(session, user.id)],
            "scopes": scopes,
            "error": error,
            "new_token": new_token,
            "default_days": tokens.DEFAULT_DAYS,
            "max_days": tokens.MAX_DAYS,
        },
        status_code=status_code,
    )
    # The page that shows a new token must not stay in any cache.
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/account", name="accounts.account")
def account(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    return _account_page(request, session, user)


@router.post("/account/tokens", name="accounts.token_create")
def token_create(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    name: Annotated[str, Form(max_length=100)],
    scope: Annotated[str, Form(max_length=16)] = TokenScope.read.value,
    days: Annotated[DbInt, Form()] = tokens.DEFAULT_DAYS,
) -> Response:
    try:
        if scope not in {s.value for s in TokenScope}:
            raise AccountError("The scope is read or admin.")
        _token, raw = tokens.create_token(session, user, name, TokenScope(scope), days)
    except AccountError as exc:
        session.rollback()
        return _account_page(request, session, user, error=str(exc), status_code=422)
    # Answered with the page itself, not a redirect: the token is in no URL and shown once.
    return _account_page(request, session, user, new_token=raw)


@router.post("/account/tokens/{token_id}/revoke", name="accounts.token_revoke")
def token_revoke(
    token_id: DbId, request: Request, user: CurrentUser, session: SessionDep
) -> Response:
    before = session.get(ApiToken, token_id)
    already = before is not None and before.revoked_at is not None
    try:
        tokens.revoke_token(session, token_id, user.id)
    except AccountError as exc:
        raise HTTPException(404, str(exc)) from exc
    if already:  # revoked meanwhile (another tab, the API): say so instead of a silent reload
        return _account_page(
            request, session, user, error="That token was already revoked.", status_code=409
        )
    return redirect(request, "/account")


@router.get("/api/account/tokens", name="accounts.api_tokens", summary="Your API tokens")
def api_tokens(user: CurrentUser, session: SessionDep) -> list[TokenPublic]:
    return [_public(t) for t in tokens.list_tokens(session, user.id)]


@router.post(
    "/api/account/tokens/{token_id}/revoke",
    name="accounts.api_token_revoke",
    summary="Revoke one of your API tokens (an admin-scope token is needed to write)",
    responses={404: {"description": "No such token of yours"}},
)
def api_token_revoke(token_id: DbId, user: CurrentUser, session: SessionDep) -> TokenPublic:
    try:
        return _public(tokens.revoke_token(session, token_id, user.id))
    except AccountError as exc:
        raise HTTPException(404, str(exc)) from exc


# -- /api/v1 -----------------------------------------------------------------------------------
# A rater's token reaches these two and nothing else of the API (the others are admins').

api = api_router("account")


@api.get(
    "/account/tokens",
    name="accounts.v1_tokens",
    summary="Your API tokens (never the tokens themselves)",
)
def v1_tokens(user: CurrentUser, session: SessionDep) -> list[TokenPublic]:
    return api_tokens(user, session)


@api.post(
    "/account/tokens/{token_id}/revoke",
    name="accounts.v1_token_revoke",
    summary="Revoke one of your API tokens (a read token cannot: it may only GET)",
    responses={
        404: {"model": ApiError, "description": "No such token of yours"},
        **INVALID,
    },
)
def v1_token_revoke(
    token_id: Annotated[DbId, Path(description="The token's id, as listed by GET tokens")],
    user: CurrentUser,
    session: SessionDep,
) -> TokenPublic:
    return api_token_revoke(token_id, user, session)
