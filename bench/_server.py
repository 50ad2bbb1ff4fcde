"""The web app served by uvicorn in a subprocess on a free loopback port, for bench scripts."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def web_server(url: str, processes: int = 1) -> Iterator[tuple[str, "subprocess.Popen[bytes]"]]:
    """``sdilab serve`` against ``url``: its base URL and process, once /healthz answers."""
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "SDILAB_DATABASE_URL": url,
        "SDILAB_ENVIRONMENT": "test",
        "SDILAB_SECRET_KEY": SECRET,
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    if processes > 1:
        command += ["--workers", str(processes)]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        # Start-up loads the statistics libraries: up to a minute on a busy machine.
        for _ in range(1200):
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if server.poll() is not None:
                    raise RuntimeError("uvicorn exited during start-up") from None
                time.sleep(0.05)
        else:
            raise RuntimeError("uvicorn did not start")
        yield base, server
    finally:
        server.terminate()
        server.wait(timeout=30)
