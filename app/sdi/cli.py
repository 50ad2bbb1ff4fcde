"""`sdilab sdi ...`: build, list and export SDI datasets; make SDI models from them."""

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from sqlmodel import Session

    from app.models import ModelConfig

console = Console()
sdi_cli = typer.Typer(
    help="Synthetic data intervention: build and export SDI data.", no_args_is_help=True
)


def register(cli: typer.Typer) -> None:
    cli.add_typer(sdi_cli, name="sdi")


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{message}[/red]")
    return typer.Exit(1)


def _set_id(session: "Session", name: str) -> int:
    from sqlmodel import select

    from app.models import QuestionSet

    found = session.exec(select(QuestionSet).where(QuestionSet.name == name)).first()
    if found is None or found.id is None:
        raise _fail(f"no question set named {name!r}")
    return found.id


def _model(session: "Session", name: str) -> "ModelConfig":
    from sqlmodel import select

    from app.models import ModelConfig

    found = session.exec(select(ModelConfig).where(ModelConfig.name == name)).first()
    if found is None:
        raise _fail(f"no model config named {name!r}")
    return found


def _kinds(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [k.strip() for value in values for k in value.split(",") if k.strip()]


@sdi_cli.command("build")
def build(
    set_name: Annotated[str, typer.Option("--set", help="Training question set")],
    name: Annotated[str, typer.Option("--name", help="Name of the new dataset")],
    seed: Annotated[int, typer.Option(help="Seed: same inputs and seed, same data")] = 0,
    test_set: Annotated[
        str | None, typer.Option("--test-set", help="Set to check leakage against")
    ] = None,
    kinds: Annotated[
        list[str] | None, typer.Option("--kinds", help="Variant kinds (repeat or comma-separate)")
    ] = None,
    size: Annotated[int | None, typer.Option(help="Examples wanted after balancing")] = None,
    leakage: Annotated[str, typer.Option(help="refuse | remove")] = "refuse",
    validation: Annotated[float, typer.Option(help="Validation fraction")] = 0.1,
    paraphrase_rate: float = 0.3,
    context_rate: float = 0.3,
    noise_rate: float = 0.2,
    templates: Annotated[str, typer.Option(help="bank | templates | both")] = "both",
    teacher: Annotated[
        str | None, typer.Option(help="Model config that writes the replies")
    ] = None,
    general: Annotated[Path | None, typer.Option(help="JSONL of general examples to merge")] = None,
    filtration_run: Annotated[
        int | None, typer.Option(help="Finished run id for filtration")
    ] = None,
) -> None:
    """Build an SDI dataset from a question set (the four stages, seeded)."""
    from pydantic import ValidationError

    from app.db import session_scope
    from app.sdi import service
    from app.sdi.integration import GeneralDataError
    from app.sdi.pipeline import LeakageError
    from app.sdi.schemas import BuildConfig

    try:
        with session_scope() as session:
            values = {
                "name": name,
                "question_set_id": _set_id(session, set_name),
                "test_set_id": _set_id(session, test_set) if test_set else None,
                "size": size,
                "seed": seed,
                "leakage": leakage,
                "validation_fraction": validation,
                "rates": {
                    "paraphrase": paraphrase_rate,
                    "context": context_rate,
                    "noise": noise_rate,
                },
                "template_source": templates,
                "teacher_model_id": _model(session, teacher).id if teacher else None,
                "filtration_run_id": filtration_run,
            }
            if _kinds(kinds):
                values["kinds"] = _kinds(kinds)
            cfg = BuildConfig.model_validate(values)
            general_text = general.read_text(encoding="utf-8-sig") if general else None
            dataset = service.build_dataset(session, cfg, general_jsonl=general_text)
            stats = dataset.stats
            console.print(
                f"Built [bold]{dataset.name}[/bold]: {stats['examples']} examples "
                f"({stats['splits'].get('train', 0)} train, "
                f"{stats['splits'].get('validation', 0)} validation), "
                f"{stats['tokens'].get('total', 0)} tokens ({stats['tokens'].get('tokenizer')})"
            )
            table = Table("stage", "step", "in", "out", "dropped")
            for stage in stats["stages"]:
                dropped = ", ".join(f"{n} {reason}" for reason, n in stage["dropped"].items())
                table.add_row(
                    stage["stage"], stage["name"], str(stage["in"]), str(stage["out"]), dropped
                )
            console.print(table)
    except ValidationError as exc:
        raise _fail(str(exc)) from None
    except GeneralDataError as exc:
        raise _fail("general data: " + "; ".join(exc.errors[:20])) from None
    except (service.SdiError, LeakageError) as exc:
        raise _fail(str(exc)) from None


@sdi_cli.command("list")
def list_datasets() -> None:
    """List SDI datasets."""
    from app.db import session_scope
    from app.sdi import service

    with session_scope() as session:
        table = Table("id", "name", "status", "seed", "examples")
        for d in service.list_datasets(session):
            table.add_row(
                str(d.id), d.name, d.status, str(d.seed), str(d.stats.get("examples", ""))
            )
        console.print(table)


@sdi_cli.command("export")
def export(
    dataset_name: Annotated[str, typer.Argument(help="Dataset name")],
    fmt: Annotated[str, typer.Option("--format", help="openai | hf")] = "openai",
    out: Annotated[Path, typer.Option("--out", help="File to write")] = Path("sdi.jsonl"),
    split: Annotated[str, typer.Option(help="train | validation | all")] = "train",
) -> None:
    """Export a dataset as JSONL (OpenAI fine-tuning format, or Hugging Face messages)."""
    from app.db import session_scope
    from app.sdi import service

    if fmt not in ("openai", "hf"):
        raise _fail("--format must be openai or hf")
    with session_scope() as session:
        dataset = service.get_by_name(session, dataset_name)
        if dataset is None or dataset.id is None:
            raise _fail(f"no SDI dataset named {dataset_name!r}")
        try:
            lines = service.export_lines(
                session,
                dataset.id,
                "openai" if fmt == "openai" else "hf",
                None if split == "all" else split,
            )
            count = 0
            with out.open("w", encoding="utf-8", newline="\n") as handle:
                for line in lines:
                    handle.write(line)
                    count += 1
        except service.SdiError as exc:
            raise _fail(str(exc)) from None
    console.print(f"Wrote {count} examples to {out}")


@sdi_cli.command("in-context")
def in_context(
    dataset_name: Annotated[str, typer.Argument(help="Dataset name")],
    base: Annotated[str, typer.Option(help="Base model config")],
    name: Annotated[str, typer.Option(help="Name of the new model config")],
    shots: int = 8,
    seed: int = 0,
) -> None:
    """Make an in-context SDI model: the base model + system prompt + k synthetic turns."""
    from app.db import session_scope
    from app.sdi import service

    with session_scope() as session:
        dataset = service.get_by_name(session, dataset_name)
        if dataset is None:
            raise _fail(f"no SDI dataset named {dataset_name!r}")
        try:
            config = service.create_in_context_model(
                session,
                base=_model(session, base),
                dataset=dataset,
                shots=shots,
                seed=seed,
                name=name,
            )
        except service.SdiError as exc:
            raise _fail(str(exc)) from None
        console.print(f"Created model {config.name!r} (in-context SDI, {shots} shots)")


@sdi_cli.command("finetune")
def fine_tune(
    dataset_name: Annotated[str, typer.Argument(help="Dataset name")],
    account: Annotated[str, typer.Option("--base", help="OpenAI-compatible model config")],
    model: Annotated[
        str, typer.Option(help="Provider model id to fine-tune (default: the config's)")
    ] = "",
    epochs: int | None = None,
    suffix: str = "sdi",
    name: str = "",
    wait: Annotated[
        bool, typer.Option(help="Follow the job here instead of in the worker")
    ] = False,
    poll: float = 20.0,
) -> None:
    """Start an OpenAI fine-tuning job on the dataset's training split."""
    from app.db import session_scope
    from app.models import SdiFineTune
    from app.sdi import finetuning, service
    from app.sdi.schemas import FineTuneCreate

    with session_scope() as session:
        dataset = service.get_by_name(session, dataset_name)
        if dataset is None:
            raise _fail(f"no SDI dataset named {dataset_name!r}")
        data = FineTuneCreate(
            base_model_id=_model(session, account).id,
            base_model=model,
            epochs=epochs,
            suffix=suffix,
            name=name,
        )
        try:
            ft = finetuning.start_fine_tune(session, dataset, data, background=not wait)
        except service.SdiError as exc:
            raise _fail(str(exc)) from None
        ft_id = ft.id
    console.print(f"Fine-tune #{ft_id} queued" + ("" if wait else "; `sdilab worker` follows it"))
    if not wait or ft_id is None:
        return
    while True:
        with session_scope() as session:
            ended = finetuning.advance(session, ft_id)
            row = session.get(SdiFineTune, ft_id)
            assert row is not None
            console.print(f"  {row.status} {row.events[-1]['message'] if row.events else ''}")
            if ended:
                if row.status != "succeeded":
                    raise _fail(f"fine-tuning {row.status}: {row.error}")
                console.print(f"[green]Fine-tuned model {row.fine_tuned_model_id}[/green]")
                return
        time.sleep(poll)
