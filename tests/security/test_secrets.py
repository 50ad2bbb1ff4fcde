"""A canary API key in the environment never leaves it: calls made with it fail (the server
even echoes it back in its 401 message, as careless servers do), and the test then greps every
page, API answer, CSV export, log line, CLI output and every row of the database for it."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select
from typer.testing import CliRunner

from app.cli import cli
from app.main import create_app
from app.models import ModelConfig, Reply
from tests import factories
from tests.loopback.server import LoopbackServer
from tests.runs.helpers import start_run
from tests.security.world import build_world

CANARY = "sk-canary-5e1f0c2b9a8d7e6f-DO-NOT-LEAK"
KEY_ENV = "SDILAB_SECURITY_CANARY_KEY"
ROOT = Path(__file__).resolve().parents[2]
SAME_SITE = {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}
# Parts of it too: a page that printed a truncated key would still leak it.
PIECES = (CANARY, CANARY[:16], CANARY[-16:])


def leaks(blob: str) -> list[str]:
    return [p for p in PIECES if p in blob]


def _worker(extra: list[str] | None = None) -> str:
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "worker",
            "--burst",
            "--concurrency",
            "8",
            "--poll",
            "0.05",
            "--backoff-base",
            "0.01",
            "--backoff-cap",
            "0.05",
            *(extra or []),
        ],
        cwd=ROOT,
        env={**os.environ, "SDILAB_LOG_LEVEL": "DEBUG"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    return finished.stdout + finished.stderr


def _dump_database(engine: Engine) -> str:
    parts = []
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(text(f"SELECT * FROM {table.name}")):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


@pytest.mark.slow
def test_canary_key_never_leaks(
    committed_db: Engine,
    loopback_server: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(KEY_ENV, CANARY)
    loopback_server.configure(api_key="sk-the-right-key-is-something-else")
    base_url = loopback_server.base_url
    with Session(committed_db, expire_on_commit=False) as s:
        world = build_world(
            s, lambda slot: f"ordinary {slot}", api_key_env=KEY_ENV, base_url=base_url
        )
        s.commit()
    run_id = start_run(committed_db, base_url, questions=3, model_fields={"api_key_env": KEY_ENV})
    logs = _worker()
    with Session(committed_db) as s:
        failed = s.exec(select(Reply).where(Reply.run_id == run_id)).all()
        configs = s.exec(select(ModelConfig).where(ModelConfig.api_key_env == KEY_ENV)).all()
    # The calls really were made with the canary, and really failed.
    assert failed and all(r.status == "failed" and r.error for r in failed)
    assert loopback_server.stats()["calls"]["chat"] >= len(failed)
    assert any("401" in r.error or "key" in r.error.lower() for r in failed)

    bodies: dict[str, str] = {}
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        factories.login(client, world.admin)
        for config in configs[:2]:
            tested = client.post(f"/models/{config.id}/test", headers=SAME_SITE)
            assert tested.status_code < 500
            bodies[f"POST /models/{config.id}/test"] = tested.text + str(tested.headers)
        judged = client.post(
            f"/results/runs/{run_id}/judge", data={"judge_id": configs[0].id}, headers=SAME_SITE
        )
        bodies["POST judge"] = judged.text
        logs += _worker()
        urls = [
            *world.get_urls(),
            f"/runs/{run_id}",
            f"/runs/{run_id}/replies",
            f"/runs/{run_id}/progress",
            f"/api/runs/{run_id}",
            f"/results/runs/{run_id}",
            f"/results/runs/{run_id}/judge",
            f"/api/runs/{run_id}/metrics",
            f"/api/runs/{run_id}/replies",
            f"/api/v1/runs/{run_id}",
            f"/api/v1/runs/{run_id}/metrics",
            f"/api/v1/runs/{run_id}/replies?format=jsonl",
            f"/api/v1/runs/{run_id}/ratings",
            *(f"/results/runs/{run_id}/{w}.csv" for w in ("metrics", "replies", "ratings")),
        ]
        for url in urls:
            for headers in ({}, {"HX-Request": "true"}):
                response = client.get(url, headers=headers)
                assert response.status_code < 500, (url, response.status_code)
                bodies[url] = response.text + str(response.headers)
        retried = client.post(f"/runs/{run_id}/retry", headers=SAME_SITE)
        bodies["POST retry"] = retried.text
    logs += _worker()
    runner = CliRunner()
    for args in (["models", "list"], ["models", "test", configs[0].name]):
        result = runner.invoke(cli, args)
        bodies["cli " + " ".join(args)] = result.output + repr(result.exception)

    assert "/models" in bodies and f"/runs/{run_id}" in bodies
    found = {where: leaks(blob) for where, blob in bodies.items() if leaks(blob)}
    assert not found, found
    assert not leaks(logs), "the worker logged the key"
    assert not leaks(caplog.text), "a log line carries the key"
    assert not leaks(_dump_database(committed_db)), "the key was stored in the database"
