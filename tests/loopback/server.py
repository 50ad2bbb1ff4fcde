"""The app and a real HTTP server for it (uvicorn in a thread, or in a subprocess)."""

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from importlib import import_module
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from tests.loopback.state import LoopbackState

# Each module here exposes `router`. Extensions add one name (e.g. "tests.loopback.finetune").
ROUTER_MODULES = [
    "tests.loopback.chat",
    "tests.loopback.batches",
    "tests.loopback.control",
    "tests.loopback.finetune",
]


def create_app(state: LoopbackState | None = None) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.loopback = state or LoopbackState()
    for name in ROUTER_MODULES:
        app.include_router(import_module(name).router)
    return app


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    return sock


def free_port() -> int:
    with contextlib.closing(_bound_socket()) as sock:
        return int(sock.getsockname()[1])


def _uvicorn_config(app: Any, port: int = 0) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        backlog=2048,
    )


class LoopbackServer:
    """A running loopback server. ``url`` is the root, ``base_url`` what the openai client wants.

    Configure it with ``configure(...)``, ``script([...])``, ``reset()``; read ``stats()``.
    These go over HTTP, so they work the same for a server in a thread or in a subprocess;
    in-thread servers also expose the live ``state`` object.
    """

    def __init__(self, port: int, state: LoopbackState | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.url}/v1"
        self.state = state
        self._http = httpx.Client(base_url=self.url, timeout=10)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    @classmethod
    def in_thread(cls, state: LoopbackState | None = None) -> "LoopbackServer":
        state = state or LoopbackState()
        sock = _bound_socket()
        server = uvicorn.Server(_uvicorn_config(create_app(state)))
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name="loopback-server",
            daemon=True,
        )
        thread.start()
        instance = cls(int(sock.getsockname()[1]), state)
        instance._server, instance._thread = server, thread
        instance._sock = sock
        instance.wait_ready()
        return instance

    @classmethod
    def in_subprocess(cls, **settings: Any) -> "LoopbackServer":
        """A server in its own process (its CPU time is not the caller's)."""
        port = free_port()
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.loopback", "--port", str(port)],
            cwd=root,
        )
        instance = cls(port)
        instance._process = process
        instance.wait_ready()
        if settings:
            instance.configure(**settings)
        return instance

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError("loopback server process exited")
            try:
                if self._http.get("/_control/stats", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"loopback server did not start on {self.url}")

    def configure(self, **settings: Any) -> dict[str, Any]:
        response = self._http.post("/_control", json=settings)
        if response.status_code != 200:
            raise ValueError(response.json()["detail"])
        return dict(response.json())

    def script(self, faults: list[str]) -> None:
        response = self._http.post("/_control/script", json={"faults": faults})
        if response.status_code != 200:
            raise ValueError(response.json()["detail"])

    def reset(self) -> None:
        self._http.post("/_control/reset").raise_for_status()

    def stats(self) -> dict[str, Any]:
        return dict(self._http.get("/_control/stats").json())

    def requests(self) -> list[dict[str, Any]]:
        return list(self._http.get("/_control/requests").json())

    def stop(self) -> None:
        self._http.close()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def serve(port: int) -> None:
    """Serve in the foreground (``python -m tests.loopback --port N``)."""
    config = _uvicorn_config(create_app(), port=port)
    uvicorn.Server(config).run()
