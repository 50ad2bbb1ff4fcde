"""Starting `sdilab` commands as real processes for the scale tests, and telling which of a
multi-process server's workers holds a given client connection."""

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from tests.loopback.server import free_port

ROOT = Path(__file__).resolve().parents[2]
SDILAB = [sys.executable, "-m", "app.cli"]


def stop(process: "subprocess.Popen[Any]", timeout: float = 20.0) -> None:
    """SIGTERM (graceful), then SIGKILL if it does not exit."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class WebServer:
    """`sdilab serve --workers N` on a free port, against the test database."""

    def __init__(self, workers: int, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.workers = workers
        self.process = subprocess.Popen(
            [*SDILAB, "serve", "--port", str(self.port), "--workers", str(workers)],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def worker_pids(self) -> set[int]:
        children = psutil.Process(self.process.pid).children(recursive=True)
        return {c.pid for c in children if "resource_tracker" not in " ".join(c.cmdline())}

    def pid_serving(self, conn: http.client.HTTPConnection) -> int:
        """The worker process holding this (kept-alive) connection's server end."""
        assert conn.sock is not None
        local_port = conn.sock.getsockname()[1]
        for pid in self.worker_pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                for c in psutil.Process(pid).net_connections(kind="tcp"):
                    if c.raddr and c.raddr.port == local_port:
                        return pid
        raise AssertionError(f"no worker holds the connection from port {local_port}")

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, "the server exited"
            try:
                conn = self.connect()
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200 and len(self.worker_pids()) >= self.workers:
                    conn.close()
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)

    def one_connection_per_worker(
        self, attempts: int = 200
    ) -> dict[int, http.client.HTTPConnection]:
        """Open kept-alive connections until every worker process holds one."""
        found: dict[int, http.client.HTTPConnection] = {}
        spare: list[http.client.HTTPConnection] = []
        for _ in range(attempts):
            conn = self.connect()
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            pid = self.pid_serving(conn)
            if pid in found:
                spare.append(conn)  # kept open, so the next connection may go elsewhere
            else:
                found[pid] = conn
            if len(found) == self.workers:
                break
        for conn in spare:
            conn.close()
        assert len(found) == self.workers, f"only {len(found)} worker(s) ever answered"
        return found

    def stop(self) -> None:
        stop(self.process)


@contextlib.contextmanager
def web_server(workers: int, env: dict[str, str] | None = None) -> Iterator[WebServer]:
    server = WebServer(workers, env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
