"""Study bundles from the browser: download one of some runs, import one (admins only)."""

import tempfile
from collections.abc import Iterator
from typing import IO, Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUploadFile

from app.accounts.deps import AdminUser
from app.bundles import service
from app.config import get_settings
from app.db import SessionDep
from app.models import Run
from app.web import render

router = APIRouter(tags=["bundles"])
ENVELOPE_BYTES = 64 * 1024
_CHUNK = 1 << 20


def _page(session: Session, request: Request, status_code: int = 200, **extra: Any) -> Response:
    runs = session.exec(select(Run).order_by(col(Run.id).desc())).all()
    limit = get_settings().max_upload_bytes
    ctx = {"runs": runs, "error": "", "imported": None, "max_mb": limit / (1024 * 1024)} | extra
    return render(request, "bundles/page.html", ctx, status_code=status_code)


@router.get("/bundles", name="bundles.page")
def page(request: Request, session: SessionDep, _admin: AdminUser) -> Response:
    return _page(session, request)


def _parse_runs(runs: str) -> list[int] | None:
    try:
        ids = [int(part) for part in runs.replace(" ", "").split(",") if part]
    except ValueError as exc:
        raise HTTPException(422, "runs must be comma-separated run ids, e.g. 1,2") from exc
    return ids or None


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        handle.seek(0)
        while chunk := handle.read(_CHUNK):
            yield chunk


@router.get("/bundles/study.zip", name="bundles.download")
def download(
    session: SessionDep,
    _admin: AdminUser,
    runs: Annotated[str, Query(description="Run ids, comma-separated (default: every run)")] = "",
) -> Response:
    """The runs and everything their results come from, as one zip with a manifest."""
    chosen = _parse_runs(runs)
    # Written before the response starts (an error is a clear 404, not a broken download),
    # to a temporary file that spills to disk past a few MB.
    handle = tempfile.SpooledTemporaryFile(max_size=16 * _CHUNK)  # noqa: SIM115 (closed by _chunks)
    try:
        manifest = service.export_bundle(session, handle, chosen)
    except service.BundleError as exc:
        handle.close()
        raise HTTPException(404, str(exc)) from exc
    ids = "-".join(str(r["id"]) for r in manifest["runs"][:5])
    name = f"sdilab-study-runs-{ids}{'-etc' if len(manifest['runs']) > 5 else ''}.zip"
    return StreamingResponse(
        _chunks(handle),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/bundles/import", name="bundles.upload")
async def upload(request: Request, session: SessionDep, _admin: AdminUser) -> Response:
    limit = get_settings().max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + ENVELOPE_BYTES:
        error = (
            f"The file is larger than the upload limit of {limit / (1024 * 1024):.1f} MB; "
            "import it with `sdilab bundle import FILE`."
        )
        return await run_in_threadpool(_page, session, request, 413, error=error)
    form = await request.form()
    file = form.get("file")
    if not isinstance(file, StarletteUploadFile) or not file.filename:
        return await run_in_threadpool(
            _page, session, request, 400, error="Choose a bundle (.zip) to import."
        )
    return await run_in_threadpool(_import, session, request, file.file)


def _import(session: Session, request: Request, handle: IO[bytes]) -> Response:
    try:
        imported = service.import_bundle(session, handle)
    except service.BundleError as exc:
        session.rollback()
        return _page(session, request, 400, error=f"{exc}; nothing was imported.")
    return _page(session, request, imported=imported)
