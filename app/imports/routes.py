"""Importing replies produced elsewhere: upload, preview, confirm (admins only)."""

from collections.abc import Iterator
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUploadFile

from app.accounts.deps import AdminUser
from app.config import get_settings
from app.db import SessionDep, get_session
from app.imports import harness_export, service
from app.imports.schemas import FIELDS, KNOWN_COLUMNS, NO_PROMPT, ParsedReplies
from app.models import QuestionSet
from app.uploads import mapping, staging
from app.uploads.reading import UploadTooLarge, read_limited
from app.web import DbId, DbInt, redirect, render

router = APIRouter(tags=["imports"])

PREVIEW_ERRORS = 500
PREVIEW_ROWS = 100
# The multipart envelope around the file.
ENVELOPE_BYTES = 64 * 1024


def _sets(session: Session) -> list[QuestionSet]:
    return list(session.exec(select(QuestionSet).order_by(col(QuestionSet.name))).all())


def _form(session: Session, *, status_code: int = 200, **extra: Any) -> Response:
    request = extra.pop("request")
    settings = get_settings()
    ctx = {
        "sets": _sets(session),
        "set_id": None,
        "name": "",
        "error": "",
        "max_mb": settings.max_upload_bytes / (1024 * 1024),
        "columns": KNOWN_COLUMNS,
        "no_prompt": NO_PROMPT,
    } | extra
    return render(request, "imports/upload.html", ctx, status_code=status_code)


@router.get("/imports/replies", name="imports.upload_form")
def upload_form(request: Request, session: SessionDep, _admin: AdminUser) -> Response:
    return _form(session, request=request)


def _int(value: Any) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


@router.post("/imports/replies", name="imports.upload")
async def upload(request: Request, session: SessionDep, _admin: AdminUser) -> Response:
    limit = get_settings().max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + ENVELOPE_BYTES:
        error = f"The file is larger than the upload limit of {limit / (1024 * 1024):.1f} MB."
        refuse = partial(_form, session, request=request, error=error, status_code=413)
        return await run_in_threadpool(refuse)
    form = await request.form()
    name = str(form.get("name") or "")
    set_id = _int(form.get("set_id"))
    file = form.get("file")
    fields: dict[str, Any] = {"request": request, "name": name, "set_id": set_id}
    if not isinstance(file, StarletteUploadFile) or not file.filename:
        file = None
    # The rest is database, file and CPU work: off the event loop.
    return await run_in_threadpool(_upload, session, file, limit, **fields)


def _upload(
    session: Session, file: StarletteUploadFile | None, limit: int, **fields: Any
) -> Response:
    set_id = fields["set_id"]
    if set_id is None or session.get(QuestionSet, set_id) is None:
        return _form(session, error="Choose a question set.", status_code=400, **fields)
    if file is None or not file.filename:
        return _form(session, error="Choose a file to upload.", status_code=400, **fields)
    try:
        raw = read_limited(file.file, limit)
    except UploadTooLarge as exc:
        return _form(session, error=str(exc), status_code=413, **fields)
    parsed = service.parse_upload(session, raw, file.filename, set_id)
    # Kept whenever its header was read, so that the user can choose other columns (or when
    # it is a harness log, which has no header).
    kept = parsed.columns or parsed.detected
    token = staging.store_pending(raw, file.filename) if kept else ""
    return _preview(fields["request"], session, parsed, token, fields["name"])


@router.post("/imports/replies/{token}/columns", name="imports.choose_columns")
async def choose_columns(
    request: Request, token: str, session: SessionDep, _admin: AdminUser
) -> Response:
    """Read the staged file again with the columns the user chose in the preview."""
    form = await request.form()
    chosen = mapping.from_form(form, FIELDS) or {}
    name = str(form.get("name") or "")
    set_id = _int(form.get("set_id")) or 0
    return await run_in_threadpool(_choose_columns, request, session, token, chosen, name, set_id)


def _choose_columns(
    request: Request,
    session: Session,
    token: str,
    chosen: dict[str, str],
    name: str,
    set_id: DbId,
) -> Response:
    try:
        raw, filename = staging.load_pending(token)
    except ValueError as exc:
        return _form(
            session, request=request, name=name, set_id=set_id, error=str(exc), status_code=404
        )
    parsed = service.parse_upload(session, raw, filename, set_id, columns=chosen)
    return _preview(request, session, parsed, token, name)


def _preview(
    request: Request,
    session: Session,
    parsed: ParsedReplies,
    token: str,
    name: str,
    *,
    baseline: str | None = None,
    error: str = "",
    status_code: int | None = None,
) -> Response:
    models = parsed.models
    if baseline is None:
        baseline = service.BASELINE if service.BASELINE in models else (models[0] if models else "")
    qs = session.get(QuestionSet, parsed.question_set_id)
    return render(
        request,
        "imports/preview.html",
        {
            "parsed": parsed,
            "question_set": qs,
            "token": token,
            "name": name,
            "baseline": baseline,
            "models": models,
            "model_counts": parsed.model_counts(),
            "kind_counts": parsed.kind_counts(),
            "errors": parsed.errors[:PREVIEW_ERRORS],
            "more_errors": max(0, len(parsed.errors) - PREVIEW_ERRORS),
            "rows": parsed.rows[:PREVIEW_ROWS],
            "error": error,
            "no_prompt": NO_PROMPT,
            "fields": FIELDS,
            "columns_json": mapping.to_hidden(parsed.mapping, FIELDS),
        },
        status_code=status_code or (200 if parsed.ok else 400),
    )


@router.post("/imports/replies/{token}/confirm", name="imports.confirm")
def confirm(
    request: Request,
    token: str,
    session: SessionDep,
    admin: AdminUser,
    set_id: Annotated[DbInt, Form()] = 0,
    name: Annotated[str, Form()] = "",
    baseline: Annotated[str, Form()] = "",
    columns: Annotated[str, Form()] = "",
) -> Response:
    try:
        raw, filename = staging.load_pending(token)
    except ValueError as exc:
        return _form(
            session, request=request, name=name, set_id=set_id, error=str(exc), status_code=404
        )
    parsed = service.parse_upload(
        session, raw, filename, set_id, columns=mapping.from_hidden(columns)
    )
    try:
        run = service.import_replies(
            session, parsed, name=name, baseline=baseline or None, created_by=admin.id
        )
    except service.ReplyImportError as exc:
        return _preview(
            request,
            session,
            parsed,
            token if parsed.columns or parsed.detected else "",
            name,
            baseline=baseline,
            error=str(exc),
            status_code=400,
        )
    staging.discard_pending(token)
    return redirect(request, f"/imports/runs/{run.id}")


@router.get("/imports/runs/{run_id}", name="imports.imported")
def imported(request: Request, run_id: DbId, session: SessionDep, _admin: AdminUser) -> Response:
    run = service.imported_run(session, run_id)
    if run is None:
        raise HTTPException(404, "No imported run with this id.")
    return render(
        request,
        "imports/done.html",
        {"run": run, "arms": service.run_summary(session, run)},
    )


# A session that stays open while a streamed body is sent (default dependency scope).
StreamSession = Annotated[Session, Depends(get_session)]
_HARNESS_MEDIA = {
    "inspect.jsonl": "application/jsonl; charset=utf-8",
    "inspect_task.py": "text/x-python; charset=utf-8",
    "promptfooconfig.yaml": "application/yaml; charset=utf-8",
}


@router.get("/runs/{run_id}/harness/{name}", name="imports.harness_file")
def harness_file(run_id: DbId, name: str, session: StreamSession, _admin: AdminUser) -> Response:
    """A run's prompts for inspect_ai (dataset, task file) or promptfoo (config with tests)."""
    if name not in _HARNESS_MEDIA:
        raise HTTPException(404, f"No harness file {name!r}; choose {', '.join(_HARNESS_MEDIA)}")
    try:
        chunks = harness_export.stream(session, run_id, name)
        first = next(chunks, "")  # a missing run is a 404 before the download starts
    except harness_export.HarnessExportError as exc:
        raise HTTPException(404, str(exc)) from exc
    filename = harness_export.file_name(run_id, name)

    def body() -> Iterator[str]:
        yield first
        yield from chunks

    return StreamingResponse(
        body(),
        media_type=_HARNESS_MEDIA[name],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
