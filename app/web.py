"""Templates and the HTMX conventions every page follows.

A page template starts with ``{% extends layout %}``: a full page for a plain request, only the
content block for an HTMX request (the ``layout`` variable picks which). Writes redirect with
``HX-Redirect`` for HTMX and 303 for plain browsers.
"""

import json
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

from annotated_types import Interval
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session
from starlette.datastructures import FormData

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATE_DIR))


def plural(count: int, noun: str, plural_form: str = "") -> str:
    """``{{ n | plural("template") }}``: "1 template", "2 templates" (or ``plural_form``)."""
    return f"{count} {noun if count == 1 else plural_form or noun + 's'}"


templates.env.filters["plural"] = plural


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def layout_for(request: Request) -> str:
    return "_fragment.html" if is_htmx(request) else "base.html"


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    ctx: dict[str, Any] = {
        "layout": layout_for(request),
        "current_user": getattr(request.state, "user", None),
    }
    ctx.update(context or {})
    return templates.TemplateResponse(request, name, ctx, status_code=status_code, headers=headers)


def render_partial(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """A ``_name.html`` fragment on its own, for hx-swap targets."""
    ctx: dict[str, Any] = {"current_user": getattr(request.state, "user", None)}
    ctx.update(context or {})
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)


T = TypeVar("T")
# What an integer column holds on both databases: the tables' ``sa.Integer`` is 32-bit on
# Postgres (a larger value is a DataError there) and 64-bit on SQLite (which raises
# OverflowError past that). A larger id cannot name a row.
MAX_DB_INT = 2**31 - 1
_MAX_ID = MAX_DB_INT
# Every integer a route takes (path, query or form) is one of these, so a value beyond what the
# database holds is a 422 before the route runs. FastAPI reads a path parameter from the route's
# path, so ``run_id: DbId`` needs no ``Path()``; a form field is ``Annotated[DbInt, Form()]``.
DbId = Annotated[int, Interval(ge=1, le=MAX_DB_INT)]
DbInt = Annotated[int, Interval(ge=-MAX_DB_INT, le=MAX_DB_INT)]
# A page number times a page size (up to 1,000) is an OFFSET the database must hold too.
MAX_PAGE = 1_000_000
PageNumber = Annotated[int, Interval(ge=1, le=MAX_PAGE)]


def get_or_404(session: Session, model: type[T], ident: int, message: str) -> T:
    """The row with this primary key, or a 404 with ``message``."""
    row = session.get(model, ident) if 0 < ident <= _MAX_ID else None
    if row is None:
        raise HTTPException(404, message)
    return row


async def _read_form(request: Request) -> FormData:
    return await request.form()


# The raw form, for the few forms whose fields are not a fixed list (SDI rates, model extras)
# or that must tell an emptied field from a missing one (FastAPI's Form() reads "" as missing).
# The route itself stays a plain ``def``: its database and CPU work run off the event loop.
FormFields = Annotated[FormData, Depends(_read_form)]


def redirect(request: Request, url: str) -> Response:
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


# -- The JSON API (/api/v1) ---------------------------------------------------------------------
# Each domain's routes.py has ``api = api_router(tag)`` beside its HTML ``router``: the schema at
# /api/openapi.json lists only these (app.main hides the pages and the unversioned /api/ paths).

API_V1 = "/api/v1"
# The largest page of a JSON answer; ``format=jsonl`` streams past it.
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
JSONL = "application/x-ndjson"

# Declares the token in the schema (Swagger UI's Authorize button); app.accounts.deps reads it.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="A personal API token (your account page, or `sdilab tokens create`). "
    "A read token may only GET; the session cookie of a logged-in browser works too.",
)


class ApiError(BaseModel):
    """What every refusal answers: a sentence, or for invalid input one line per problem."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": "No run 7"}, {"detail": ["limit: ..."]}]}
    )

    detail: str | list[str]


Responses = dict[int | str, dict[str, Any]]
# Every /api/v1 route can refuse the caller; routes with an id add NOT_FOUND, routes with
# parameters INVALID (FastAPI's own 422 entry describes another body than app.main's).
API_ERRORS: Responses = {
    401: {
        "model": ApiError,
        "description": "No token (or session), or the token is unknown, revoked or expired",
    },
    403: {
        "model": ApiError,
        "description": "Your role does not allow this, or a read token tried to write",
    },
    429: {"model": ApiError, "description": "Too many wrong tokens from this address"},
}
NOT_FOUND: Responses = {404: {"model": ApiError, "description": "No such id"}}
INVALID: Responses = {
    422: {
        "model": ApiError,
        "description": "A parameter is invalid (out of bounds, an unknown choice): one line "
        "per problem",
    }
}


def api_router(tag: str) -> APIRouter:
    """A domain's routes under /api/v1, each documenting the errors every route can give."""
    return APIRouter(
        prefix=API_V1,
        tags=[tag],
        responses=API_ERRORS,
        dependencies=[Depends(_bearer)],
    )


# A run's id in an /api/v1 path, described for the schema (bounded like every DbId).
RunId = Annotated[DbId, PathParam(description="A run's id, as in the run page's address (/runs/7)")]


class Format(StrEnum):
    json = "json"
    jsonl = "jsonl"


Offset = Annotated[
    int, Query(ge=0, le=MAX_DB_INT, description="Rows to skip (in the order the route lists them)")
]
Limit = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"Rows per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}); with "
        "format=jsonl, leave it out to stream every row from the offset on",
    ),
]
FormatQuery = Annotated[
    Format,
    Query(
        alias="format",
        description="json: one page, with the total; jsonl: the rows themselves, one JSON "
        f"object a line ({JSONL}), streamed",
    ),
]


class Page(BaseModel, Generic[T]):
    """A window of rows: ``items`` are rows offset .. offset + limit - 1 of ``total``."""

    total: int = Field(description="Rows in all")
    offset: int
    limit: int
    items: list[T]


def page_limit(limit: int | None, format: Format) -> int | None:
    """The number of rows to read: the page size for json, None (all) for a jsonl stream."""
    if limit is None:
        return None if format == Format.jsonl else DEFAULT_LIMIT
    return limit


def jsonl_lines(rows: Iterable[BaseModel]) -> Iterator[str]:
    for row in rows:
        yield row.model_dump_json() + "\n"


def jsonl_response(rows: Iterable[BaseModel]) -> StreamingResponse:
    """Rows as JSON Lines, each serialised as in a JSON page, written as they are read (the
    rows may come from a server-side cursor: the route's session must stay open while the
    body is sent)."""
    return StreamingResponse(jsonl_lines(rows), media_type=JSONL)


def jsonl_doc(example: Mapping[str, Any]) -> Responses:
    """The 200 response of a paged route: the page as JSON, or its rows as JSON Lines."""
    return {
        **INVALID,
        200: {
            "description": "A page of rows (format=json), or the rows as JSON Lines (format=jsonl)",
            "content": {
                JSONL: {
                    "schema": {"type": "string"},
                    "example": json.dumps(example) + "\n",
                }
            },
        },
    }


# -- form errors in the user's words, beside the field that caused them ------------------------


def plain_message(err: Mapping[str, Any]) -> str:
    """One pydantic error as a form shows it: "a whole number", "at least 1", "required"
    instead of "Input should be greater than or equal to 1"."""
    kind = str(err.get("type", ""))
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    simple = {
        "int_parsing": "a whole number",
        "int_type": "a whole number",
        "int_from_float": "a whole number",
        "float_parsing": "a number",
        "float_type": "a number",
        "finite_number": "a number",
        "missing": "required",
        "bool_parsing": "yes or no",
    }
    if kind in simple:
        return simple[kind]
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds and bounds[kind][1] in ctx:
        words, key = bounds[kind]
        return f"{words} {ctx[key]}"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "required" if n == 1 else f"at least {n} characters"
    if kind == "string_too_long":
        return f"at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"choose at least {ctx.get('min_length', 1)}"
    if kind == "too_long":
        return f"at most {ctx.get('max_length')}"
    if kind in ("literal_error", "enum") and "expected" in ctx:
        return f"one of {ctx['expected']}"
    return str(err.get("msg", "invalid")).removeprefix("Value error, ")


def field_errors(exc: ValidationError, messages: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each invalid field of ``exc`` (the last name in its location, so ``params.rank`` is
    ``rank``) with the message to show beside it: ``messages[field]`` where given, else
    :func:`plain_message`. Errors of the whole model are under ``""``; the first error of a
    field wins."""
    errors: dict[str, str] = {}
    for err in exc.errors():
        names = [str(part) for part in err.get("loc", ()) if isinstance(part, str)]
        field = names[-1] if names else ""
        text = (messages or {}).get(field) or plain_message(err)
        errors.setdefault(field, text)
    return errors
