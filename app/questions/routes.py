"""Question sets: list, upload (preview, then confirm), a set's page, delete, JSON API."""

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUploadFile

from app.accounts.deps import AdminUser
from app.config import get_settings
from app.db import SessionDep
from app.models import QuestionSet
from app.questions import service
from app.questions.schemas import (
    FIELDS,
    ParsedUpload,
    QuestionPage,
    QuestionPublic,
    QuestionSetPublic,
)
from app.uploads import mapping, staging
from app.uploads.reading import UploadTooLarge, read_limited
from app.web import (
    DEFAULT_LIMIT,
    INVALID,
    NOT_FOUND,
    DbId,
    DbInt,
    Limit,
    Offset,
    Page,
    PageNumber,
    api_router,
    get_or_404,
    redirect,
    render,
)

router = APIRouter(tags=["questions"])

PAGE_SIZE = 50
PREVIEW_ERRORS = 500  # problems listed in the preview; the count says how many more
PREVIEW_ROWS = 200


@router.get("/sets", name="questions.list_sets")
def list_sets(request: Request, session: SessionDep, _admin: AdminUser) -> Response:
    return render(request, "questions/list.html", {"sets": service.list_sets(session)})


@router.get("/sets/upload", name="questions.upload_form")
def upload_form(request: Request, _admin: AdminUser) -> Response:
    return render(request, "questions/upload.html", _upload_context())


def _upload_context(**extra: Any) -> dict[str, Any]:
    settings = get_settings()
    return {
        "max_mb": settings.max_upload_bytes / (1024 * 1024),
        "threshold": settings.near_duplicate_threshold,
        "name": "",
        "description": "",
        "error": "",
    } | extra


@router.post("/sets/upload", name="questions.upload")
async def upload(request: Request, session: SessionDep, _admin: AdminUser) -> Response:
    limit = get_settings().max_upload_bytes
    declared = request.headers.get("content-length", "")
    # Refuse an oversized body before reading it; the multipart envelope adds a little.
    if declared.isdigit() and int(declared) > limit + 64 * 1024:
        return _too_large(
            request,
            UploadTooLarge(
                f"The file is larger than the upload limit of {limit / (1024 * 1024):.1f} MB."
            ),
        )
    form = await request.form()
    name = str(form.get("name") or "")
    description = str(form.get("description") or "")
    file = form.get("file")
    if not isinstance(file, StarletteUploadFile) or not file.filename:
        return render(
            request,
            "questions/upload.html",
            _upload_context(name=name, description=description, error="Choose a file to upload."),
            status_code=400,
        )
    try:
        raw = await run_in_threadpool(read_limited, file.file, limit)
    except UploadTooLarge as exc:
        return _too_large(request, exc, name=name, description=description)
    return await run_in_threadpool(
        _parse_and_preview, request, session, raw, file.filename, name, description
    )


def _parse_and_preview(
    request: Request,
    session: SessionDep,
    raw: bytes,
    filename: str,
    name: str,
    description: str,
    columns: dict[str, str] | None = None,
    token: str = "",
) -> Response:
    parsed = service.parse_upload(raw, filename, columns=columns)
    # Kept whenever its header was read, so that the user can choose other columns.
    if not token and parsed.columns:
        token = staging.store_pending(raw, filename)
    return _preview(request, session, parsed, token, name, description)


@router.post("/sets/upload/{token}/columns", name="questions.choose_columns")
async def choose_columns(
    request: Request, token: str, session: SessionDep, _admin: AdminUser
) -> Response:
    """Read the staged file again with the columns the user chose in the preview."""
    form = await request.form()
    name = str(form.get("name") or "")
    description = str(form.get("description") or "")
    try:
        raw, filename = staging.load_pending(token)
    except staging.UploadExpired as exc:
        return render(
            request,
            "questions/upload.html",
            _upload_context(name=name, description=description, error=str(exc)),
            status_code=404,
        )
    chosen = mapping.from_form(form, FIELDS) or {}
    return await run_in_threadpool(
        _parse_and_preview, request, session, raw, filename, name, description, chosen, token
    )


def _too_large(request: Request, exc: UploadTooLarge, **fields: str) -> Response:
    return render(
        request,
        "questions/upload.html",
        _upload_context(error=str(exc), **fields),
        status_code=413,
    )


def _preview(
    request: Request,
    session: SessionDep,
    parsed: ParsedUpload,
    token: str,
    name: str,
    description: str,
    *,
    error: str = "",
    status_code: int | None = None,
) -> Response:
    name_error = ""
    if parsed.ok and not error:
        try:
            service.validate_name(session, name)
        except service.QuestionSetError as exc:
            name_error = str(exc)
    flagged = {r.position for r in parsed.duplicates + parsed.contrasts}
    shown = [r for r in parsed.rows if r.position in flagged][:PREVIEW_ROWS]
    if len(shown) < PREVIEW_ROWS:
        shown += [r for r in parsed.rows if r.position not in flagged][: PREVIEW_ROWS - len(shown)]
        shown.sort(key=lambda r: r.position)
    code = status_code or (200 if parsed.ok else 400)
    return render(
        request,
        "questions/preview.html",
        {
            "parsed": parsed,
            "token": token,
            "name": name,
            "description": description,
            "errors": parsed.errors[:PREVIEW_ERRORS],
            "more_errors": max(0, len(parsed.errors) - PREVIEW_ERRORS),
            "rows": shown,
            "error": error,
            "name_error": name_error,
            "fields": FIELDS,
            "columns_json": mapping.to_hidden(parsed.mapping, FIELDS),
        },
        status_code=code,
    )


@router.post("/sets/upload/{token}/confirm", name="questions.confirm_upload")
def confirm_upload(
    request: Request,
    token: str,
    session: SessionDep,
    admin: AdminUser,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    columns: Annotated[str, Form()] = "",
) -> Response:
    try:
        raw, filename = staging.load_pending(token)
    except staging.UploadExpired as exc:
        return render(
            request,
            "questions/upload.html",
            _upload_context(name=name, description=description, error=str(exc)),
            status_code=404,
        )
    parsed = service.parse_upload(raw, filename, columns=mapping.from_hidden(columns))
    try:
        qs = service.import_question_set(
            session, name, parsed, description=description, created_by=admin.id
        )
    except service.QuestionSetError as exc:
        return _preview(
            request, session, parsed, token, name, description, error=str(exc), status_code=400
        )
    staging.discard_pending(token)
    return redirect(request, f"/sets/{qs.id}")


def _get_set(session: SessionDep, set_id: DbId) -> QuestionSet:
    return get_or_404(session, QuestionSet, set_id, "No such question set")


@router.get("/sets/{set_id}", name="questions.show_set")
def show_set(
    request: Request,
    set_id: DbId,
    session: SessionDep,
    _admin: AdminUser,
    page: Annotated[PageNumber, Query()] = 1,
    flagged: bool = False,
) -> Response:
    _get_set(session, set_id)
    summary = service.get_summary(session, set_id)
    assert summary is not None
    total, questions = service.question_page(
        session, set_id, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE, flagged=flagged
    )
    originals = service.positions_by_id(
        session, {q.duplicate_of_id for q in questions if q.duplicate_of_id is not None}
    )
    pages = max(1, -(-total // PAGE_SIZE))
    return render(
        request,
        "questions/detail.html",
        {
            "summary": summary,
            "qs": summary.set,
            "questions": questions,
            "originals": originals,
            "balance": service.category_balance(session, set_id),
            "page": page,
            "pages": pages,
            "total": total,
            "flagged": flagged,
        },
    )


@router.post("/sets/{set_id}/delete", name="questions.delete_set")
def delete_set(request: Request, set_id: DbId, session: SessionDep, _admin: AdminUser) -> Response:
    _get_set(session, set_id)
    try:
        service.delete_set(session, set_id)
    except service.QuestionSetError as exc:
        return render(
            request,
            "error.html",
            {"title": "Cannot delete", "message": str(exc)},
            status_code=409,
        )
    return redirect(request, "/sets")


@router.get("/api/sets", name="questions.api_sets")
def api_sets(session: SessionDep, _admin: AdminUser) -> list[QuestionSetPublic]:
    return [QuestionSetPublic(**s.public()) for s in service.list_sets(session)]


@router.get("/api/sets/{set_id}/questions", name="questions.api_questions")
def api_questions(
    set_id: DbId,
    session: SessionDep,
    _admin: AdminUser,
    offset: Annotated[DbInt, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> QuestionPage:
    _get_set(session, set_id)
    total, questions = service.question_page(session, set_id, offset=offset, limit=limit)
    return QuestionPage(
        set_id=set_id,
        total=total,
        offset=offset,
        limit=limit,
        questions=[QuestionPublic.model_validate(q, from_attributes=True) for q in questions],
    )


# -- /api/v1 -----------------------------------------------------------------------------------

api = api_router("questions")


@api.get(
    "/sets",
    name="questions.v1_sets",
    summary="Question sets, with their counts of questions, duplicates and runs",
)
def v1_sets(session: SessionDep, _admin: AdminUser) -> list[QuestionSetPublic]:
    return api_sets(session, _admin)


@api.get(
    "/sets/{set_id}/questions",
    name="questions.v1_questions",
    responses={**NOT_FOUND, **INVALID},
    summary="A set's questions in their order (paged)",
)
def v1_questions(
    set_id: DbId,
    session: SessionDep,
    _admin: AdminUser,
    offset: Offset = 0,
    limit: Limit = None,
) -> Page[QuestionPublic]:
    _get_set(session, set_id)
    size = limit or DEFAULT_LIMIT
    total, questions = service.question_page(session, set_id, offset=offset, limit=size)
    return Page[QuestionPublic](
        total=total,
        offset=offset,
        limit=size,
        items=[QuestionPublic.model_validate(q, from_attributes=True) for q in questions],
    )
