"""`sdilab run start|status|retry|cancel|reparse|list`."""

import threading
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()
# --wait: seconds between progress reads (the end of a run completed here is seen at once).
PROGRESS_EVERY_S = 1.0
# A job heartbeat this recent means a worker runs (it beats every 5 s by default).
BUSY_HEARTBEAT_S = 15.0
# With a busy worker, how long --wait waits for it to take a job of the run.
WORKER_GRACE_S = 2.0


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _find_run(session: Any, ref: str) -> Any:
    from sqlmodel import select

    from app.models import Run

    run = session.get(Run, int(ref)) if ref.isdigit() else None
    if run is None:
        run = session.exec(select(Run).where(Run.name == ref).order_by(Run.id.desc())).first()  # type: ignore[union-attr]
    if run is None:
        console.print(f"[red]No run {ref!r}[/red]")
        raise typer.Exit(1)
    return run


def _create(
    set_name: str,
    models: list[str],
    labels: list[str],
    templates: list[str],
    limit: int | None,
    samples: int,
    seed: int,
    name: str,
    batch_api: bool,
    accept_contamination: bool = False,
    cache_policy: str = "auto",
) -> int:
    from sqlmodel import select

    from app.db import session_scope
    from app.model_configs.service import get_by_name
    from app.models import QuestionSet, VariantTemplate
    from app.runs import service
    from app.runs.schemas import ArmCreate, RunCreate

    with session_scope() as session:
        question_set = session.exec(select(QuestionSet).where(QuestionSet.name == set_name)).first()
        if question_set is None:
            raise service.RunError(f"no question set named {set_name!r}")
        arms = []
        for i, model_name in enumerate(models):
            config = get_by_name(session, model_name)
            if config is None:
                raise service.RunError(f"no model named {model_name!r} (see `sdilab models list`)")
            label = (
                labels[i] if i < len(labels) else ("baseline", "sdi")[i] if i < 2 else model_name
            )
            arms.append(ArmCreate(model_config_id=config.id or 0, label=label))
        template_ids = None
        if templates:
            found = session.exec(
                select(VariantTemplate).where(VariantTemplate.name.in_(templates))  # type: ignore[attr-defined]
            ).all()
            unknown = set(templates) - {t.name for t in found}
            if unknown:
                raise service.RunError(f"no template named {sorted(unknown)}")
            template_ids = [t.id or 0 for t in found]
        run = service.create_run(
            session,
            RunCreate(
                question_set_id=question_set.id or 0,
                arms=arms,
                name=name,
                template_ids=template_ids,
                limit=limit,
                samples=samples,
                seed=seed,
                use_batch_api=batch_api,
                accept_contamination=accept_contamination,
                cache_policy=cache_policy,
            ),
        )
        console.print(f"Run #{run.id} {run.name}")
        if run.config.get("contaminated"):
            console.print(
                "[yellow]Marked contaminated: an SDI arm has seen some statements.[/yellow]"
            )
        return run.id or 0


def _worker_busy() -> bool:
    """True when some worker is running a job of the default queue now (a fresh heartbeat):
    it will take the run's jobs too. An idle worker leaves no trace; it shares the jobs with
    the one started here."""
    from datetime import timedelta

    from sqlalchemy import select

    from app.db import session_scope
    from app.jobs.queue import DOING, JOBS
    from app.models import utcnow

    since = utcnow() - timedelta(seconds=BUSY_HEARTBEAT_S)
    with session_scope() as session:
        found = session.execute(
            select(JOBS.c.id)
            .where(JOBS.c.status == DOING, JOBS.c.heartbeat_at >= since, JOBS.c.queue == "default")
            .limit(1)
        ).first()
    return found is not None


def _taken(run_id: int) -> bool:
    """True when some job of the run has left the queue (a worker took it)."""
    from sqlalchemy import select

    from app.db import session_scope
    from app.jobs.queue import JOBS, TODO
    from app.runs.service import group_key

    with session_scope() as session:
        found = session.execute(
            select(JOBS.c.id)
            .where(JOBS.c.group_key == group_key(run_id), JOBS.c.status != TODO)
            .limit(1)
        ).first()
    return found is not None


class _InProcessWorker:
    """A worker on its own event loop in a thread, stopped when the run is over."""

    def __init__(self, concurrency: int) -> None:
        import asyncio

        from app.jobs import registry
        from app.jobs.worker import Worker, tune_gc

        # As `sdilab worker` does: every task imported, then what the process holds is frozen
        # out of the collector's sight and the young generation collected less often.
        registry.discover()
        tune_gc()
        self.worker = Worker(concurrency=concurrency)
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
            self.loop = asyncio.new_event_loop()
        else:
            self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self._main, name="sdilab-worker", daemon=True)

    def _main(self) -> None:
        try:
            self.loop.run_until_complete(self.worker.run())
        finally:  # closes the loop's HTTP sessions (app.llm) before the loop
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.worker.stop)
        self.thread.join(timeout=60)
        stats = self.worker.stats
        console.print(
            f"Worker in this process: {stats.succeeded} jobs done, {stats.retried} retried, "
            f"{stats.failed} failed; {stats.cpu_s:.2f} s CPU in {stats.wall_s:.1f} s"
        )


def _wait(run_id: int, worker: str, concurrency: int | None) -> str:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from app.config import get_settings
    from app.db import session_scope
    from app.models import Run
    from app.runs import completion
    from app.runs import progress as runs_progress

    finished = completion.watch(run_id)

    def start_worker(why: str) -> "_InProcessWorker":
        console.print(f"{why}: running a worker in this process.")
        started = _InProcessWorker(concurrency or get_settings().worker_concurrency)
        started.start()
        return started

    in_process = None
    # 'auto' with a busy worker: it should take the run's jobs; if none is taken within
    # WORKER_GRACE_S (the worker is stuck or full), this process runs its own after all.
    grace_until = None
    if worker == "yes" or (worker == "auto" and not _worker_busy()):
        in_process = start_worker("Collecting the replies")
    elif worker == "auto":
        console.print("A worker is running jobs: it collects the replies.")
        grace_until = time.monotonic() + WORKER_GRACE_S
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]} · {task.fields[rate]} · ETA {task.fields[eta]}"),
    )
    status = "running"
    try:
        # Drawn when the figures change (no refresh thread taking the worker's CPU).
        with Progress(*columns, console=console, auto_refresh=False) as bar:
            task = bar.add_task(f"run #{run_id}", total=None, failed=0, rate="-", eta="-")
            while True:
                with session_scope() as session:
                    run = session.get(Run, run_id)
                    assert run is not None
                    progress = runs_progress.progress_of(session, run)
                    status = run.status
                bar.update(
                    task,
                    total=progress.total,
                    completed=progress.finished,
                    failed=progress.failed,
                    rate=f"{progress.rate_per_s:.1f}/s" if progress.rate_per_s else "-",
                    eta=f"{progress.eta_s:.0f} s" if progress.eta_s is not None else "-",
                )
                bar.refresh()
                if status != "running" or not progress.pending:
                    break
                if grace_until is not None and time.monotonic() >= grace_until:
                    grace_until = None
                    if not _taken(run_id):
                        in_process = start_worker("No worker took the run's jobs")
                # Set when this process's worker completes the run; another worker's
                # completion (or a cancel) is read at the next poll.
                finished.wait(PROGRESS_EVERY_S)
    finally:
        completion.unwatch(run_id)
        if in_process is not None:
            in_process.stop()
    return status


def _print_status(run_id: int) -> None:
    from app.db import session_scope
    from app.models import ReplyStatus
    from app.runs import progress as runs_progress

    with session_scope() as session:
        run = _find_run(session, str(run_id))
        progress = runs_progress.progress_of(session, run)
        failed, _ = runs_progress.replies(
            session, run.id, status=ReplyStatus.failed.value, per_page=5
        )
    console.print(
        f"Run #{run.id} {run.name}: [bold]{run.status}[/bold] · {progress.done} done, "
        f"{progress.failed} failed, {progress.pending} pending"
        + (f", {progress.cancelled} cancelled" if progress.cancelled else "")
        + (f" · {progress.rate_per_s:.1f}/s" if progress.rate_per_s else "")
        + (f" · ETA {progress.eta_s:.0f} s" if progress.eta_s is not None else "")
    )
    table = Table("arm", "model", "done", "failed", "pending", "tokens in", "tokens out", "cost $")
    for arm in progress.arms:
        table.add_row(
            arm.label,
            arm.model,
            str(arm.done),
            str(arm.failed),
            str(arm.pending),
            str(arm.tokens_in),
            str(arm.tokens_out),
            f"{arm.cost_usd:.4f}",
        )
    console.print(table)
    for reply in failed:
        console.print(f"[red]reply {reply.id} ({reply.arm}): {reply.error}[/red]")


def register(cli: typer.Typer) -> None:
    run_cli = typer.Typer(help="Start and follow runs.", no_args_is_help=True)
    cli.add_typer(run_cli, name="run")

    @run_cli.command("start")
    def start(
        set_name: Annotated[str, typer.Option("--set", help="Question set name")],
        models: Annotated[str, typer.Option(help="Model names, comma-separated: BASE,SDI")],
        labels: Annotated[str, typer.Option(help="Arm labels (default baseline,sdi)")] = "",
        templates: Annotated[str, typer.Option(help="Template names (default: all active)")] = "",
        limit: Annotated[int | None, typer.Option(help="A random subset of N statements")] = None,
        samples: Annotated[int, typer.Option(help="Samples per prompt")] = 1,
        seed: Annotated[int, typer.Option(help="Seed of the subset")] = 0,
        name: Annotated[str, typer.Option(help="Run name")] = "",
        batch_api: Annotated[bool, typer.Option("--batch-api", help="OpenAI Batch API")] = False,
        accept_contamination: Annotated[
            bool,
            typer.Option(
                "--accept-contamination",
                help="Run even if an SDI arm has seen some of the set's statements (marked)",
            ),
        ] = False,
        cache: Annotated[
            str,
            typer.Option(
                help="LLM cache: auto (replay only calls that repeat: temperature 0 or a seed), "
                "use (replay any identical call), refresh (call again, replace), off"
            ),
        ] = "auto",
        wait: Annotated[bool, typer.Option("--wait", help="Follow progress until done")] = False,
        worker: Annotated[
            str,
            typer.Option(
                help="With --wait: 'auto' runs a worker here unless a worker is running jobs "
                "(an idle `sdilab worker` shares them); 'yes' always; 'no' never"
            ),
        ] = "auto",
        concurrency: Annotated[
            int | None,
            typer.Option(help="In-process worker concurrency (default SDILAB_WORKER_CONCURRENCY)"),
        ] = None,
    ) -> None:
        """Create a run: render the prompts and queue one job per prompt x model x sample."""
        from pydantic import ValidationError

        from app.runs.service import RunError

        if worker not in ("auto", "yes", "no"):
            raise typer.BadParameter("--worker is auto, yes or no")
        try:
            run_id = _create(
                set_name,
                _split(models),
                _split(labels),
                _split(templates),
                limit,
                samples,
                seed,
                name,
                batch_api,
                accept_contamination,
                cache,
            )
        except (RunError, ValidationError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        if not wait:
            console.print(
                "Queued. `sdilab worker` collects the replies; follow with "
                f"`sdilab run status {run_id}`."
            )
            return
        status = _wait(run_id, worker, concurrency)
        _print_status(run_id)
        if status != "completed":
            raise typer.Exit(1)

    @run_cli.command("status")
    def status(run: Annotated[str, typer.Argument(help="Run id or name")]) -> None:
        """Progress, tokens and cost per arm, and the latest errors."""
        from app.db import session_scope

        with session_scope() as session:
            run_id = _find_run(session, run).id
        _print_status(run_id)

    @run_cli.command("retry")
    def retry(run: Annotated[str, typer.Argument(help="Run id or name")]) -> None:
        """Send a run's failed replies back to the queue."""
        from app.db import session_scope
        from app.runs import service

        try:
            with session_scope() as session:
                n = service.retry_failed(session, _find_run(session, run))
        except service.RunError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        console.print(f"{n} failed replies queued again")

    @run_cli.command("replicate")
    def replicate(
        run: Annotated[str, typer.Argument(help="Run id or name")],
        wait: Annotated[bool, typer.Option("--wait", help="Follow progress until done")] = False,
        concurrency: Annotated[
            int | None,
            typer.Option(help="In-process worker concurrency (default SDILAB_WORKER_CONCURRENCY)"),
        ] = None,
    ) -> None:
        """Run the same prompts and arms again with fresh model calls (no cache)."""
        from app.db import session_scope
        from app.runs import service

        try:
            with session_scope() as session:
                copy = service.replicate_run(session, _find_run(session, run))
                copy_id = copy.id or 0
                console.print(f"Run #{copy_id} {copy.name}: fresh calls (cache off)")
        except service.RunError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        if wait and _wait(copy_id, "auto", concurrency) != "completed":
            raise typer.Exit(1)

    @run_cli.command("cancel")
    def cancel(run: Annotated[str, typer.Argument(help="Run id or name")]) -> None:
        """Stop a run (resume it from its page)."""
        from app.db import session_scope
        from app.runs import service

        try:
            with session_scope() as session:
                n = service.cancel_run(session, _find_run(session, run))
        except service.RunError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        console.print(f"Cancelled; {n} pending replies will not be collected")

    @run_cli.command("reparse")
    def reparse(run: Annotated[str, typer.Argument(help="Run id or name")]) -> None:
        """Read a run's reply verdicts again with the current parser (after it improved);
        the results are recomputed. Raters' own readings are untouched."""
        from app.db import session_scope
        from app.runs import reparse

        with session_scope() as session:
            found = _find_run(session, run)
            result = reparse.reparse_verdicts(session, found.id)
        console.print(f"{result.replies} replies read, {result.changed} verdicts changed")

    @run_cli.command("list")
    def list_runs() -> None:
        """Recent runs with their progress."""
        from app.db import session_scope
        from app.runs import progress as runs_progress

        with session_scope() as session:
            runs = runs_progress.list_runs(session, limit=30)
            counts = runs_progress.status_counts(session, [r.id for r in runs if r.id is not None])
        table = Table("#", "name", "status", "done", "failed", "pending", "created")
        for r in runs:
            c = counts.get(r.id or 0, {})
            table.add_row(
                str(r.id),
                r.name,
                r.status,
                str(c.get("done", 0)),
                str(c.get("failed", 0)),
                str(c.get("pending", 0)),
                r.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        console.print(table)
