"""`sdilab train`: fine-tune a LoRA on an SDI dataset in this process, with a progress bar."""

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console


def register(cli: typer.Typer) -> None:
    @cli.command()
    def train(
        dataset: Annotated[str, typer.Option(help="SDI dataset name")],
        name: Annotated[str, typer.Option(help="Name of the model config to create")] = "",
        base_model: Annotated[
            str, typer.Option(help="A .gguf file or transformers directory (default: bundled)")
        ] = "",
        epochs: Annotated[int | None, typer.Option(help="Epochs")] = None,
        lr: Annotated[float | None, typer.Option(help="Learning rate")] = None,
        rank: Annotated[int | None, typer.Option(help="LoRA rank")] = None,
        alpha: Annotated[int | None, typer.Option(help="LoRA alpha")] = None,
        dropout: Annotated[float | None, typer.Option(help="LoRA dropout")] = None,
        targets: Annotated[
            str | None, typer.Option(help="Target modules, comma-separated (e.g. q_proj,v_proj)")
        ] = None,
        batch_size: Annotated[int | None, typer.Option(help="Examples per step")] = None,
        max_len: Annotated[int | None, typer.Option(help="Max sequence length (tokens)")] = None,
        seed: Annotated[int | None, typer.Option(help="Seed")] = None,
        max_steps: Annotated[int | None, typer.Option(help="Stop after N steps")] = None,
        threads: Annotated[int | None, typer.Option(help="CPU threads (0: all)")] = None,
        background: Annotated[
            bool, typer.Option("--background", help="Queue it for the worker instead")
        ] = False,
    ) -> None:
        """Fine-tune the local model on an SDI dataset (LoRA, CPU, offline)."""
        from pydantic import ValidationError
        from rich.console import Console

        from app.db import session_scope
        from app.training import loading, service
        from app.training.schemas import TrainingCreate, TrainingParams

        console = Console()
        if not loading.available() and not background:
            console.print(f"[red]Training needs the train extra: {loading.INSTALL_HINT}[/red]")
            raise typer.Exit(1)
        overrides = {
            "epochs": epochs,
            "learning_rate": lr,
            "rank": rank,
            "alpha": alpha,
            "dropout": dropout,
            "target_modules": targets.split(",") if targets else None,
            "batch_size": batch_size,
            "max_length": max_len,
            "seed": seed,
            "max_steps": max_steps,
            "threads": threads,
        }
        try:
            params = TrainingParams(**{k: v for k, v in overrides.items() if v is not None})
            with session_scope() as session:
                found = service.dataset_by_name(session, dataset)
                if found is None:
                    raise service.TrainingServiceError(f"no SDI dataset named {dataset!r}")
                assert found.id is not None
                data = TrainingCreate(
                    dataset_id=found.id,
                    name=name or f"{dataset}-lora",
                    base_model=base_model,
                    params=params,
                )
                run = service.create_training(session, data, enqueue=background)
                run_id = run.id
        except (ValidationError, service.TrainingServiceError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        assert run_id is not None
        if background:
            console.print(f"Queued training #{run_id}; the worker will run it (/training/{run_id})")
            return

        outcome = train_with_progress(run_id, console)
        if outcome["status"] == "succeeded":
            with session_scope() as session:
                done = service.get(session, run_id)
                assert done is not None
                console.print(
                    f"[green]Done[/green]: model config #{done.model_config_id} "
                    f"{done.name!r} (provider trained), merged model {done.merged_path} "
                    f"(under the data directory); final train loss {done.train_loss:.3f}"
                    + (f", validation loss {done.val_loss:.3f}" if done.val_loss else "")
                )
        else:
            console.print(f"Training #{run_id}: {outcome['status']}")
            if outcome["status"] == "cancelled":
                raise typer.Exit(130)


def train_with_progress(run_id: int, console: "Console") -> dict[str, Any]:
    """Run a recorded training in this process with a rich progress bar; its outcome."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from app.training import service, trainer
    from app.training.schemas import TrainingError

    console.print(f"Training #{run_id}: loading the base model ...")
    with Progress(
        TextColumn("[bold]{task.fields[steps]}"),
        BarColumn(),
        TextColumn("{task.fields[losses]}"),
        TextColumn("{task.fields[speed]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task_id = bar.add_task("train", total=None, steps="loading", losses="", speed="")

        def show(p: trainer.Progress) -> None:
            losses = " ".join(
                f"{label} {value:.3f}"
                for label, value in (("train", p.train_loss), ("val", p.val_loss))
                if value is not None
            )
            speed = f"{p.tokens_per_s:.0f} tok/s" if p.tokens_per_s else ""
            bar.update(
                task_id,
                total=p.total_steps,
                completed=p.step,
                steps=f"step {p.step}/{p.total_steps}",
                losses=losses,
                speed=speed,
            )

        try:
            outcome = service.execute(run_id, on_progress=show)
        except KeyboardInterrupt:
            outcome = {"status": "cancelled"}
        except TrainingError as exc:
            console.print(f"[red]Training failed: {exc}[/red]")
            raise typer.Exit(1) from exc
    return outcome
