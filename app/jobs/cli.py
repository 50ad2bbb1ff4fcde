"""`sdilab worker`: run background jobs."""

from typing import Annotated

import typer


def register(cli: typer.Typer) -> None:
    @cli.command()
    def worker(
        concurrency: Annotated[
            int | None, typer.Option(help="Jobs run at once (default: SDILAB_WORKER_CONCURRENCY)")
        ] = None,
        queue: Annotated[str, typer.Option(help="Queue to take jobs from")] = "default",
        burst: Annotated[
            bool, typer.Option("--burst", help="Exit when the queue has nothing left to do")
        ] = False,
        stale_after: Annotated[
            float, typer.Option(help="Seconds without a heartbeat before a job is recovered")
        ] = 60.0,
        heartbeat: Annotated[float, typer.Option(help="Seconds between heartbeats")] = 5.0,
        poll: Annotated[float, typer.Option(help="Seconds between polls of an idle queue")] = 0.5,
        backoff_base: Annotated[float, typer.Option(help="First retry backoff, seconds")] = 2.0,
        backoff_cap: Annotated[float, typer.Option(help="Largest retry backoff, seconds")] = 300.0,
    ) -> None:
        """Run the background job worker (SIGTERM: finish running jobs, then exit)."""
        import logging

        from rich.console import Console

        from app.config import get_settings
        from app.jobs.worker import run_worker

        # Our own messages at INFO; libraries (httpx logs every request) at WARNING.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("sdilab").setLevel(logging.INFO)
        stats = run_worker(
            concurrency=concurrency or get_settings().worker_concurrency,
            queue_name=queue,
            burst=burst,
            stale_after_s=stale_after,
            heartbeat_s=heartbeat,
            poll_interval_s=poll,
            backoff_base_s=backoff_base,
            backoff_cap_s=backoff_cap,
        )
        Console(stderr=True).print(
            f"worker done: {stats.succeeded} succeeded, {stats.retried} retried, "
            f"{stats.failed} failed, {stats.recovered} recovered; "
            f"{stats.cpu_s:.2f} s CPU in {stats.wall_s:.1f} s"
        )
