"""`sdilab judge RUN --judge NAME [--wait | --cancel | --resume]` and `sdilab judges RUN`."""

import time
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()


def _run_id(session: Any, ref: str) -> int:
    from sqlmodel import col, select

    from app.models import Run

    run = session.get(Run, int(ref)) if ref.isdigit() else None
    if run is None:
        run = session.exec(select(Run).where(Run.name == ref).order_by(col(Run.id).desc())).first()
    if run is None:
        console.print(f"[red]No run {ref!r}[/red]")
        raise typer.Exit(1)
    return int(run.id)


def _counts(run_id: int) -> dict[str, int]:
    from app.db import session_scope
    from app.jobs import queue
    from app.judging.service import group_key

    with session_scope() as session:
        return queue.group_counts(session, group_key(run_id))


def _wait(run_id: int, concurrency: int) -> dict[str, int]:
    """Label with a worker in this process until no judge job of the run is left."""
    import asyncio
    import threading

    from app.jobs.worker import Worker

    worker = Worker(concurrency=concurrency)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(worker.run()), daemon=True)
    thread.start()
    try:
        while True:
            counts = _counts(run_id)
            left = counts.get("todo", 0) + counts.get("doing", 0)
            console.print(
                f"judge jobs: {counts.get('succeeded', 0)} done, {left} left, "
                f"{counts.get('failed', 0)} failed",
                end="\r",
            )
            if not left:
                console.print()
                return counts
            time.sleep(0.5)
    finally:
        loop.call_soon_threadsafe(worker.stop)
        thread.join(timeout=30)


def _print_usage(run_id: int, judge_id: int) -> None:
    """This judge's labels of the run so far: calls, tokens and cost."""
    from app.db import session_scope
    from app.judging import service
    from app.judging.rubric import RUBRIC_VERSION

    with session_scope() as session:
        used = service.usage(session, run_id).get((judge_id, RUBRIC_VERSION), service.Usage())
    console.print(
        f"Labels so far ({RUBRIC_VERSION}): {used.calls} calls ({used.from_cache} from the cache, "
        f"{used.via_batch} through the Batch API), {used.tokens_in} tokens in, "
        f"{used.tokens_out} out, cost ${used.cost_usd:.4f}"
    )


def register(cli: typer.Typer) -> None:
    @cli.command("judge")
    def judge(
        run: Annotated[str, typer.Argument(help="Run id or name")],
        judge_name: Annotated[
            str, typer.Option("--judge", help="The judge's model config name")
        ] = "",
        wait: Annotated[bool, typer.Option("--wait", help="Label here until done")] = False,
        cancel: Annotated[bool, typer.Option("--cancel", help="Cancel its judge jobs")] = False,
        resume: Annotated[bool, typer.Option("--resume", help="Resume cancelled jobs")] = False,
        concurrency: Annotated[int, typer.Option(help="In-process worker concurrency")] = 16,
        batch: Annotated[
            bool, typer.Option("--batch", help="One OpenAI Batch API job (for large runs)")
        ] = False,
    ) -> None:
        """Label a run's done replies with an LLM judge (under the current rubric), in the
        background like a run: `sdilab worker` or --wait does the calls. The rule-based
        parser needs no job: its labels are the stored verdicts (see `sdilab judges`)."""
        from app.db import session_scope
        from app.judging import service
        from app.model_configs.service import get_by_name

        with session_scope() as session:
            run_id = _run_id(session, run)
            if cancel or resume:
                n = (service.cancel_judging if cancel else service.resume_judging)(session, run_id)
                console.print(f"{'Cancelled' if cancel else 'Resumed'} {n} judge jobs")
                return
            if not judge_name:
                raise typer.BadParameter("name the judge: --judge MODEL_CONFIG_NAME")
            config = get_by_name(session, judge_name)
            if config is None or config.id is None:
                console.print(
                    f"[red]No model named {judge_name!r} (see `sdilab models list`)[/red]"
                )
                raise typer.Exit(1)
            try:
                result = service.start_judging(session, run_id, config.id, batch=batch)
            except service.JudgeError as exc:
                console.print(f"[red]{exc}[/red]")
                raise typer.Exit(1) from None
            judge_id = config.id
        via = " in one Batch API job" if result.batch and result.queued else ""
        console.print(
            f"Queued {result.queued} replies{via} ({result.retried} failed jobs retried, "
            f"{result.already_labelled} already labelled, {result.already_queued} already queued)"
        )
        counts = _wait(run_id, concurrency) if wait else {}
        _print_usage(run_id, judge_id)
        if counts.get("failed"):
            raise typer.Exit(1)

    @cli.command("judges")
    def judges(
        run: Annotated[str, typer.Argument(help="Run id or name")],
        min_compared: Annotated[int, typer.Option(help="Replies a judge must be compared on")] = 50,
        csv_out: Annotated[bool, typer.Option("--csv", help="Print the CSV")] = False,
    ) -> None:
        """Every judge of a run against humans, and its rates by PPI, the judge alone and
        humans alone (unvalidated judges marked "not validated")."""
        from app.db import session_scope
        from app.judging import report
        from app.models import Run

        with session_scope() as session:
            found = session.get(Run, _run_id(session, run))
            assert found is not None
            figures = report.judges_report(session, found, min_compared=min_compared)
        if csv_out:
            typer.echo(report.to_csv(figures), nl=False)
            return
        for j in figures.judges:
            kappa = j.label.kappa.value
            console.print(
                f"[bold]{j.name}[/bold] {j.version}: {j.status} — {j.reason}; "
                f"kappa {'—' if kappa is None else f'{kappa:.2f}'} on {j.label.compared} replies"
            )
            for e in j.estimates:
                p = e.ppi
                if p.value is None or p.low is None or p.high is None:
                    continue
                console.print(
                    f"  {e.arm} {e.rate}: PPI {100 * p.value:.1f} % "
                    f"({100 * p.low:.1f} to {100 * p.high:.1f}), judge only "
                    f"{100 * (e.judge_only.value or 0):.1f} % [{j.status}], humans only "
                    f"{100 * (e.human_only.value or 0):.1f} %, {e.human_labelled} human ratings "
                    f"worth {e.effective_n or 0:.0f}"
                )
