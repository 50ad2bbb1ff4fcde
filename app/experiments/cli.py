"""`sdilab experiment paper`: the paper's experiment in one action."""

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from sqlmodel import Session

    from app.experiments.paper import ExperimentConfig, PaperExperiment, Prepared
    from app.models import ModelConfig

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
    human_sample: Annotated[
        int | None,
        typer.Option(
            help="With --wait: humans rate a stratified random sample of N replies, drawn once"
            " the replies are done (for judge + humans by PPI), instead of every reply"
        ),
    ] = None,
    templates: Annotated[
        str, typer.Option(help="Variant template names, comma-separated (default: all active)")
    ] = "",
    train: Annotated[
        bool,
        typer.Option(
            "--train",
            help="Also fine-tune the base (LoRA, local) on the SDI data: a third arm 'trained'",
        ),
    ] = False,
    epochs: Annotated[int, typer.Option(help="Training epochs (with --train)")] = 2,
    max_len: Annotated[int, typer.Option(help="Training max sequence length (with --train)")] = 256,
    lr: Annotated[float, typer.Option(help="Training learning rate (with --train)")] = 5e-4,
    train_steps: Annotated[
        int, typer.Option(help="Stop training after N optimiser steps (0: every epoch)")
    ] = 0,
    wait: Annotated[
        bool, typer.Option(help="Run the replies here (a worker in this process)")
    ] = False,
    concurrency: int = 4,
    score: Annotated[
        bool, typer.Option(help="With --wait: print the parser-judged scores at the end")
    ] = True,
) -> None:
    """Split a set, build SDI data, make the SDI model(s), run them against the baseline, open
    rating."""
    from sqlmodel import select

    from app.db import session_scope
    from app.experiments.paper import ExperimentConfig, prepare, start_run
    from app.models import ModelConfig, QuestionSet
    from app.rating.service import RatingError
    from app.runs.service import RunError
    from app.sdi import service
    from app.sdi.pipeline import LeakageError

    if human_sample is not None and not wait:
        console.print("[red]--human-sample needs --wait: it is drawn from done replies[/red]")
        raise typer.Exit(1)
    try:
        with session_scope() as session:
            base = session.exec(select(ModelConfig).where(ModelConfig.name == model)).first()
            if base is None:
                raise service.SdiError(f"no model config named {model!r}")
            source = session.exec(select(QuestionSet).where(QuestionSet.name == set_name)).first()
            if source is None:
                raise service.SdiError(f"no question set named {set_name!r}")
            cfg = ExperimentConfig(
                model_id=base.id or 0,
                set_id=source.id or 0,
                test_fraction=test_fraction,
                seed=seed,
                limit=limit,
                shots=shots,
                size=size,
                raters_per_reply=raters,
                human_sample=human_sample,
                template_names=[t.strip() for t in templates.split(",") if t.strip()] or None,
            )
            prepared = prepare(session, cfg)
            if not train:
                result = start_run(session, cfg, prepared)
                _show(result)
                run_id = result.run.id
            else:
                training_id = _record_training(
                    session,
                    prepared,
                    TrainingSettings(epochs, max_len, lr, seed, train_steps),
                )
                ids = _ids(prepared)
        if train:
            trained_config_id = _train(training_id)
            with session_scope() as session:
                prepared = _reload(session, ids)
                trained = session.get(ModelConfig, trained_config_id)
                assert trained is not None
                _match_decoding(trained, prepared.base)
                session.add(trained)
                result = start_run(session, cfg, prepared, extra_arms=[(trained, "trained")])
                _show(result)
                run_id = result.run.id
    except (service.SdiError, LeakageError, RunError, RatingError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if wait:
        from app.jobs.worker import run_worker

        stats = run_worker(concurrency=concurrency, burst=True)
        console.print(f"Replies done: {stats.succeeded} jobs succeeded, {stats.failed} failed")
        if human_sample is not None and run_id is not None:
            _open_human_sample(run_id, cfg)
        if score and run_id is not None:
            _print_scores(run_id)
    else:
        console.print("Start `sdilab worker` (or use --wait) to collect the replies.")


@experiment_cli.command("score")
def score_command(
    run_id: Annotated[int, typer.Argument(help="Run id")],
    baseline: Annotated[str, typer.Option(help="Label of the baseline arm")] = "baseline",
) -> None:
    """Score a run from its replies' parsed verdicts (an automatic judge, not human ratings)."""
    _print_scores(run_id, baseline)


@experiment_cli.command("plan")
def plan_command(
    baseline_rate: Annotated[
        float, typer.Option(help="Assumed rate in the baseline arm, a fraction (e.g. 0.3)")
    ],
    arm_rate: Annotated[
        float | None, typer.Option(help="Assumed rate in the other arm (or give --difference)")
    ] = None,
    difference: Annotated[
        float | None,
        typer.Option(help="Arm rate minus baseline rate to detect, a fraction (e.g. -0.05)"),
    ] = None,
    prompts_per_statement: Annotated[
        float, typer.Option(help="Prompts (variants x samples) per statement and arm")
    ] = 1.0,
    icc: Annotated[float, typer.Option(help="Intra-statement correlation of replies")] = 0.0,
    power: Annotated[float, typer.Option(help="Power to reach")] = 0.8,
    alpha: Annotated[float, typer.Option(help="Two-sided significance level")] = 0.05,
    statements: Annotated[
        int | None, typer.Option(help="Also: what this many statements can detect")
    ] = None,
) -> None:
    """Before a run: the statements needed to detect a difference in a rate between two arms,
    prompts clustered by statement."""
    from app.metrics import power as pw

    if (arm_rate is None) == (difference is None):
        console.print("[red]give either --arm-rate or --difference[/red]")
        raise typer.Exit(1)
    diff = difference if difference is not None else (arm_rate or 0.0) - baseline_rate
    try:
        if statements is not None and statements < 1:
            raise pw.PowerError(f"--statements must be at least 1, not {statements}")
        result = pw.plan(baseline_rate, diff, prompts_per_statement, icc, power=power, alpha=alpha)
    except pw.PowerError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    m = f"{prompts_per_statement:g}"
    print(
        f"Baseline {100 * result.baseline_rate:.1f} %, arm {100 * result.arm_rate:.1f} % "
        f"(difference {100 * result.difference:+.1f} points), two-sided alpha {alpha:g}."
    )
    print(
        f"Design effect: {result.design_effect:.2f} "
        f"(1 + ({m} - 1) x {icc:g}: {m} prompt{'' if prompts_per_statement == 1 else 's'} per "
        f"statement, intra-statement correlation {icc:g})"
    )
    print(
        f"To detect a difference of {100 * result.difference:+.1f} points at {100 * power:g} % "
        f"power you need about {result.statements} statements: {result.replies_per_arm} "
        f"replies per arm, {result.replies} in all."
    )
    if statements is not None:
        reached = pw.power_at(baseline_rate, diff, statements, prompts_per_statement, icc, alpha)
        print(f"With {statements} statements: power {100 * reached:.1f} %.")
        for direction, word in ((-1, "decrease"), (1, "increase")):
            mdd = pw.minimal_detectable_difference(
                baseline_rate,
                statements,
                prompts_per_statement,
                icc,
                direction=direction,
                power=power,
                alpha=alpha,
            )
            bound = "0 %" if direction < 0 else "100 %"
            shown = f"none, not even to {bound}" if mdd is None else f"{100 * mdd:.1f} points"
            print(f"  smallest {word} detected at {100 * power:g} % power: {shown}")
    print(f"Method: {result.method}.")


def _open_human_sample(run_id: int, cfg: "ExperimentConfig") -> None:
    from app.db import session_scope
    from app.experiments.paper import open_human_sample
    from app.models import Run
    from app.rating.service import RatingError

    try:
        with session_scope() as session:
            run = session.get(Run, run_id)
            assert run is not None
            round_ = open_human_sample(session, run, cfg)
            n = round_.item_count
            console.print(f"Rating:       round #{round_.id} opened on a sample of {n} replies")
    except RatingError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def _print_scores(run_id: int, baseline: str = "baseline") -> None:
    from app.db import session_scope
    from app.experiments.scoring import score_run, to_markdown

    try:
        with session_scope() as session:
            text = to_markdown(score_run(session, run_id, baseline), baseline)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    # Markdown as it is (tables), not rendered: it is meant to be pasted into reports.
    print(text)


def _show(result: "PaperExperiment") -> None:
    console.print(f"Training set: {result.train_set.name}")
    console.print(f"Test set:     {result.test_set.name}")
    console.print(
        f"SDI data:     {result.dataset.name} ({result.dataset.stats['examples']} examples)"
    )
    console.print(f"SDI model:    {result.sdi_model.name}")
    console.print(f"Run:          #{result.run.id} {result.run.name}")
    if result.rating_round is not None:
        console.print(f"Rating:       round #{result.rating_round.id} opened")


def _ids(prepared: "Prepared") -> dict[str, int]:
    return {
        "base": prepared.base.id or 0,
        "source": prepared.source.id or 0,
        "train_set": prepared.train_set.id or 0,
        "test_set": prepared.test_set.id or 0,
        "dataset": prepared.dataset.id or 0,
        "sdi_model": prepared.sdi_model.id or 0,
    }


def _reload(session: "Session", ids: dict[str, int]) -> "Prepared":
    from app.experiments.paper import Prepared
    from app.models import ModelConfig, QuestionSet, SdiDataset

    def get(model: Any, key: str) -> Any:
        row = session.get(model, ids[key])
        assert row is not None, key
        return row

    return Prepared(
        base=get(ModelConfig, "base"),
        source=get(QuestionSet, "source"),
        train_set=get(QuestionSet, "train_set"),
        test_set=get(QuestionSet, "test_set"),
        dataset=get(SdiDataset, "dataset"),
        sdi_model=get(ModelConfig, "sdi_model"),
    )


@dataclass(frozen=True)
class TrainingSettings:
    epochs: int
    max_length: int
    learning_rate: float
    seed: int
    max_steps: int


def _record_training(session: "Session", prepared: "Prepared", settings: TrainingSettings) -> int:
    """The training run of the trained arm: a LoRA of the base's own local weights."""
    from app.experiments.paper import unique_name as _unique_name
    from app.llm.local import resolve_model_path
    from app.models import ModelConfig
    from app.sdi.service import SdiError
    from app.training import loading
    from app.training import service as training_service
    from app.training.schemas import TrainingCreate, TrainingParams

    if not loading.available():
        raise SdiError(f"--train needs the train extra: {loading.INSTALL_HINT}")
    if prepared.base.provider != "local":
        raise SdiError("--train fine-tunes local weights: the base model must be provider local")
    try:
        run = training_service.create_training(
            session,
            TrainingCreate(
                dataset_id=prepared.dataset.id or 0,
                name=_unique_name(session, ModelConfig, f"{prepared.base.name} + SDI LoRA"),
                base_model=resolve_model_path(prepared.base.model_id),
                params=TrainingParams(**asdict(settings)),
            ),
            enqueue=False,
        )
    except training_service.TrainingServiceError as exc:
        raise SdiError(str(exc)) from None
    assert run.id is not None
    return run.id


def _train(training_id: int) -> int:
    from app.db import session_scope
    from app.sdi.service import SdiError
    from app.training import service as training_service
    from app.training.cli import train_with_progress

    outcome = train_with_progress(training_id, console)
    if outcome["status"] != "succeeded":
        raise SdiError(f"training #{training_id} {outcome['status']}")
    with session_scope() as session:
        done = training_service.get(session, training_id)
        assert done is not None and done.model_config_id is not None
        console.print(
            f"Trained:      {done.name} (train loss {done.train_loss:.3f}"
            + (f", validation loss {done.val_loss:.3f})" if done.val_loss else ")")
        )
        return done.model_config_id


def _match_decoding(model: "ModelConfig", base: "ModelConfig") -> None:
    """The trained arm decodes exactly as the baseline (same prompt, same settings)."""
    for name in ("temperature", "max_tokens", "top_p", "seed", "system_prompt", "max_concurrency"):
        setattr(model, name, getattr(base, name))
