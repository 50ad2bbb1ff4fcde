"""A file kept between its preview and the user's confirmation, under a random token; files
older than a day are removed when the next one is stored."""

import re
import secrets
import time
from pathlib import Path

from app.config import get_settings

PENDING_MAX_AGE_S = 24 * 3600
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


class UploadExpired(ValueError):
    """The staged file is gone (expired, confirmed already) or the token is not one of ours."""


def _pending_dir() -> Path:
    path = get_settings().data_dir / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_pending(raw: bytes, filename: str) -> str:
    directory = _pending_dir()
    now = time.time()
    for old in directory.glob("*"):
        if now - old.stat().st_mtime > PENDING_MAX_AGE_S:
            old.unlink(missing_ok=True)
    token = secrets.token_urlsafe(24)
    (directory / f"{token}.data").write_bytes(raw)
    (directory / f"{token}.name").write_text(Path(filename).name[:255], encoding="utf-8")
    return token


def load_pending(token: str) -> tuple[bytes, str]:
    if not _TOKEN.match(token):
        raise UploadExpired("This upload has expired or does not exist; upload the file again.")
    directory = _pending_dir()
    try:
        return (
            (directory / f"{token}.data").read_bytes(),
            (directory / f"{token}.name").read_text(encoding="utf-8"),
        )
    except FileNotFoundError as exc:
        raise UploadExpired(
            "This upload has expired or does not exist; upload the file again."
        ) from exc


def discard_pending(token: str) -> None:
    if _TOKEN.match(token):
        for suffix in (".data", ".name"):
            (_pending_dir() / f"{token}{suffix}").unlink(missing_ok=True)
