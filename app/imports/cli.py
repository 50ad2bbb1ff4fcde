"""`sdilab import-replies FILE --set NAME --name RUN_NAME [--baseline MODEL]` and
`sdilab harness-export RUN --to inspect|promptfoo [--out DIR]`."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False)
MAX_LISTED = 50


def register(cli: typer.Typer) -> None:
    cli.command("import-replies")(import_replies)
    cli.command("harness-export")(harness_export)


def harness_export(
    run: Annotated[int, typer.Argument(help="Run id")],
    to: Annotated[str, typer.Option("--to", help="inspect or promptfoo")],
    out: Annotated[
        Path, typer.Option(help="Directory to write the files to", file_okay=False)
    ] = Path("."),
) -> None:
    """Write a run's prompts for an evaluation harness: an inspect_ai dataset and task file,
    or a promptfoo config with one test per prompt variant."""
    from app.db import session_scope
    from app.imports import harness_export as export

    if to not in export.TARGETS:
        raise typer.BadParameter(f"--to must be one of {', '.join(export.TARGETS)}")
    out.mkdir(parents=True, exist_ok=True)
    with session_scope() as session:
        for name in export.FILES[to]:
            path = out / export.file_name(run, name)
            try:
                chunks = export.stream(session, run, name)
                with path.open("w", encoding="utf-8") as handle:
                    for chunk in chunks:
                        handle.write(chunk)
            except export.HarnessExportError as exc:
                path.unlink(missing_ok=True)
                console.print(f"[red]{exc}[/red]")
                raise typer.Exit(1) from exc
            console.print(f"Wrote {path}")


def import_replies(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    set_name: Annotated[str, typer.Option("--set", help="The question set the replies answer")],
    name: Annotated[str, typer.Option("--name", help="Name of the new imported run")],
    baseline: Annotated[
        str | None,
        typer.Option(
            help="The model the others are compared with (default: 'baseline' or the "
            "file's first model)"
        ),
    ] = None,
    columns: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="FIELD=COLUMN: which column holds a field (e.g. reply=response); repeat it. "
            "Fields: statement_id, statement, variant_kind, prompt, model, reply, stance, "
            "sample_index, first_reply, followup.",
        ),
    ] = None,
) -> None:
    """Import a CSV or JSONL file of replies as a new run: every row, or nothing."""
    from app.db import session_scope
    from app.imports import service
    from app.uploads import mapping

    try:
        chosen = mapping.parse_options(columns or [])
    except mapping.MappingError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc

    try:
        with session_scope() as session:
            qs = service.find_set(session, set_name)
            if qs is None or qs.id is None:
                console.print(f"[red]No question set named {set_name!r}.[/red]")
                raise typer.Exit(1)
            with file.open("rb") as handle:
                parsed = service.parse_upload(session, handle, file.name, qs.id, columns=chosen)
            if parsed.errors:
                console.print(
                    f"[red]{file.name}: {len(parsed.errors)} problem(s); nothing imported.[/red]"
                )
                for error in parsed.errors[:MAX_LISTED]:
                    console.print(f"  {error}")
                if len(parsed.errors) > MAX_LISTED:
                    console.print(f"  … and {len(parsed.errors) - MAX_LISTED} more")
                raise typer.Exit(1)
            if parsed.detected:
                task = parsed.source.get("task")
                console.print(
                    f"Detected format: {parsed.detected}{f' (task {task})' if task else ''}; "
                    "each reply keeps its sample id, epoch and model."
                )
            for warning in parsed.warnings:
                console.print(f"[yellow]{warning}[/yellow]")
            run = service.import_replies(session, parsed, name=name, baseline=baseline)
            run_id = run.id
            arms = service.run_summary(session, run)
    except service.ReplyImportError as exc:
        console.print(f"[red]{exc}; nothing imported.[/red]")
        raise typer.Exit(1) from exc
    console.print(
        f"Imported {len(parsed.rows)} replies into run {name.strip()!r} (id {run_id}) "
        f"of set {set_name!r}."
    )
    for label, model, n in arms:
        console.print(f"  {label}: {model}, {n} replies")
    console.print(f"Open rating on it at /rating/rounds; results at /results/runs/{run_id}.")
