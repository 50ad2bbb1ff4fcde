"""An upload over the size limit is refused before it is read whole: a client streaming a
body with no Content-Length gets its 413 after a bounded number of bytes, not after all."""

import select
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.accounts import service
from app.accounts.deps import SESSION_COOKIE, sign_token
from app.config import get_settings
from app.models import User
from tests.reliability.live import LiveApp

LIMIT = 1024 * 1024
HUGE = 400 * 1024 * 1024


@pytest.fixture
def live(committed_db: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    monkeypatch.setattr(get_settings(), "max_upload_bytes", LIMIT)
    with Session(committed_db, expire_on_commit=False) as s:
        admin = User(email="upload-admin@example.org", role="admin")
        s.add(admin)
        s.flush()
        cookie = sign_token(service.start_session(s, admin, 1))
        s.commit()
    app = LiveApp().start()
    yield app.base_url, cookie
    app.stop()


def _stream(base: str, path: str, cookie: str, *, chunked: bool) -> tuple[int, bytes]:
    """POST a multipart body of HUGE bytes; stop when the server answers. Returns bytes sent."""
    parts = urlsplit(base)
    boundary = "fuzzboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nbig\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="question_set_id"\r\n\r\n1\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\nstatement,truth\r\n"
    ).encode()
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {HUGE}"
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Cookie: {SESSION_COOKIE}={cookie}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n{length}\r\n\r\n"
    ).encode()
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    sock.sendall(request)
    sent = 0
    chunk = b"a statement that goes on,true\r\n" * 2048
    answer = b""
    try:
        first = True
        while sent < HUGE:
            body = (head + chunk) if first else chunk
            first = False
            data = f"{len(body):x}\r\n".encode() + body + b"\r\n" if chunked else body
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            sock.sendall(data)
            sent += len(body)
        sock.settimeout(30)
        answer = sock.recv(65536)
    except (BrokenPipeError, ConnectionResetError):
        answer = answer or sock.recv(65536)
    finally:
        sock.close()
    return sent, answer


@pytest.mark.parametrize("path", ["/sets/upload", "/imports/replies"])
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_oversized_upload_is_refused_early(live: tuple[str, str], path: str, chunked: bool) -> None:
    base, cookie = live
    sent, answer = _stream(base, path, cookie, chunked=chunked)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # Socket buffers hold a few MB; a server that read everything would have taken 400 MB.
    assert sent < 40 * LIMIT, sent
