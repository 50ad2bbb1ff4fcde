"""Templates and the HTMX conventions every page follows.

A page template starts with ``{% extends layout %}``: a full page for a plain request, only the
content block for an HTMX request (the ``layout`` variable picks which). Writes redirect with
``HX-Redirect`` for HTMX and 303 for plain browsers.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from annotated_types import Interval
from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
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
