"""`sdilab experiment paper`: the paper's experiment in one action."""

from typing import Annotated

import typer
from rich.console import Console
from sqlmodel import select

console = Console()
experiment_cli = typer.Typer(help="Whole experiments in one action.", no_args_is_help=True)


def register(cli: typer.Typer) -> None:
    cli.add_typer(experiment_cli, name="experiment")


@experiment_cli.command("paper")
def paper(
    model: Annotated[str, typer.Option(help="Base model config (the baseline arm)")],
    set_name: Annotated[str, typer.Option("--set", help="Question set to split")] = "seed",
    test_fraction: Annotated[float, typer.Option(help="Share of statements held out")] = 0.3,
    seed: int = 0,
    limit: Annotated[int | None, typer.Option(help="Test statements sent to the models")] = None,
    shots: Annotated[int, typer.Option(help="Synthetic turns in the SDI model's context")] = 8,
    size: Annotated[int | None, typer.Option(help="SDI examples after balancing")] = None,
    raters: Annotated[int, typer.Option(help="Raters per reply")] = 2,
    wait: Annotated[
        bool, typer.Option(help="Run the replies here (a worker in this process)")
    ] = False,
    concurrency: int = 4,
) -> None:
    """Split a set, build SDI data, make the SDI model, run baseline vs SDI, open rating."""
    from app.db import session_scope
    from app.models import ModelConfig, QuestionSet
    from app.rating.service import RatingError
    from app.runs.service import RunError
    from app.sdi import service
    from app.sdi.experiment import ExperimentConfig, run_paper_experiment
    from app.sdi.pipeline import LeakageError

    try:
        with session_scope() as session:
            base = session.exec(select(ModelConfig).where(ModelConfig.name == model)).first()
            if base is None:
                raise service.SdiError(f"no model config named {model!r}")
            source = session.exec(select(QuestionSet).where(QuestionSet.name == set_name)).first()
            if source is None:
                raise service.SdiError(f"no question set named {set_name!r}")
            result = run_paper_experiment(
                session,
                ExperimentConfig(
                    model_id=base.id or 0,
                    set_id=source.id or 0,
                    test_fraction=test_fraction,
                    seed=seed,
                    limit=limit,
                    shots=shots,
                    size=size,
                    raters_per_reply=raters,
                ),
            )
            run_id = result.run.id
            console.print(f"Training set: {result.train_set.name}")
            console.print(f"Test set:     {result.test_set.name}")
            console.print(
                f"SDI data:     {result.dataset.name} ({result.dataset.stats['examples']} examples)"
            )
            console.print(f"SDI model:    {result.sdi_model.name}")
            console.print(f"Run:          #{run_id} {result.run.name}")
            if result.rating_round is not None:
                console.print(f"Rating:       round #{result.rating_round.id} opened")
    except (service.SdiError, LeakageError, RunError, RatingError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if wait:
        from app.jobs.worker import run_worker

        stats = run_worker(concurrency=concurrency, burst=True)
        console.print(f"Replies done: {stats.succeeded} jobs succeeded, {stats.failed} failed")
    else:
        console.print("Start `sdilab worker` (or use --wait) to collect the replies.")
