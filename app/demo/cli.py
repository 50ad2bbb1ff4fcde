"""`sdilab demo`: the README's run command — a seeded lab on SQLite with the offline model;
`sdilab seed`: the shipped question set and variant templates alone."""

import os
import signal
import subprocess
import sys
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False)


def register(cli: typer.Typer) -> None:
    cli.command()(demo)
    cli.command("seed")(seed)


def demo(
    host: str = "127.0.0.1",
    port: int = 8000,
    run: Annotated[bool, typer.Option(help="Start the demo experiment if there is no run")] = True,
    limit: Annotated[int, typer.Option(help="Test statements in the demo run")] = 2,
    worker: Annotated[bool, typer.Option(help="Start a worker beside the web server")] = True,
) -> None:
    """Migrate, seed, create demo accounts and the local model, start a small offline
    experiment (baseline vs in-context SDI), then serve the app with a worker beside it."""
    import uvicorn

    from app import migrate
    from app.db import session_scope
    from app.demo import service

    migrate.upgrade()
    with session_scope() as session:
        state = service.prepare(session, start_run=run, limit=limit)
        run_id = state.run.id if state.run else None
    console.print("[bold]sdilab demo[/bold]")
    console.print(f"  open      http://{host}:{port}/")
    console.print(f"  admin     {service.ADMIN_EMAIL}  password: {state.password}")
    console.print(f"  raters    {', '.join(service.RATER_EMAILS)}  (same password)")
    if run_id is not None:
        verb = "started" if state.created_run else "exists"
        console.print(f"  run       {verb}: http://{host}:{port}/runs/{run_id}")

    worker_proc = None
    if worker:
        worker_proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--concurrency", "4"],
            env=dict(os.environ),
        )
    try:
        uvicorn.run("app.main:app", host=host, port=port, log_level="info")
    finally:
        if worker_proc is not None and worker_proc.poll() is None:
            worker_proc.send_signal(signal.SIGTERM)
            try:
                worker_proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker_proc.kill()


def seed() -> None:
    """Load the shipped seed set and variant templates, skipping what is already there."""
    from app.db import session_scope
    from app.questions import service
    from app.variants import service as variants

    with session_scope() as session:
        qs = service.seed_question_set(session)
        added = variants.seed_templates(session)
    if qs is None:
        console.print("Question set 'seed' already present; left unchanged.")
    else:
        console.print(f"Loaded question set 'seed' (id {qs.id}).")
    console.print(f"Variant templates added: {added}.")
