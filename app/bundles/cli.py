"""`sdilab bundle export FILE [--run ID ...]` and `sdilab bundle import FILE`."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False)
bundle_cli = typer.Typer(
    help="A study in one file: question sets, templates, models, SDI data, runs, ratings.",
    no_args_is_help=True,
)


def register(cli: typer.Typer) -> None:
    cli.add_typer(bundle_cli, name="bundle")


@bundle_cli.command("export")
def export(
    out: Annotated[Path, typer.Argument(dir_okay=False, help="The bundle (.zip) to write")],
    runs: Annotated[
        list[int] | None, typer.Option("--run", help="A run to include (repeat; default: all)")
    ] = None,
) -> None:
    """Write runs and everything their results come from into one zip with a manifest."""
    from app.bundles import service
    from app.db import session_scope

    partial = out.with_name(out.name + ".part")
    try:
        with session_scope() as session, partial.open("wb") as handle:
            manifest = service.export_bundle(session, handle, runs or None)
    except service.BundleError as exc:
        partial.unlink(missing_ok=True)
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    partial.replace(out)
    rows = {name.removesuffix(".jsonl"): m["rows"] for name, m in manifest["members"].items()}
    console.print(
        f"Wrote {out} ({out.stat().st_size:,} bytes): {len(manifest['runs'])} run(s), "
        f"{rows['replies']} replies, {rows['ratings']} ratings ({rows['raters']} raters, "
        f"pseudonymous), {rows['judge_labels']} judge labels; sdilab {manifest['app_version']}."
    )


@bundle_cli.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Add a bundle's study to this database (new ids; all or nothing)."""
    from app.bundles import service
    from app.db import session_scope

    try:
        with session_scope() as session, file.open("rb") as handle:
            imported = service.import_bundle(session, handle)
    except service.BundleError as exc:
        console.print(f"[red]{exc}; nothing imported.[/red]")
        raise typer.Exit(1) from exc
    console.print(
        f"Imported {file.name} (made by sdilab {imported.manifest.get('app_version')}): "
        f"{len(imported.runs)} run(s), {imported.rows['replies']} replies, "
        f"{imported.rows['ratings']} ratings."
    )
    for old, new in sorted(imported.runs.items()):
        console.print(f"  run {old} is now run {new}: /results/runs/{new}")
    for note in imported.renamed:
        console.print(f"  [yellow]{note}[/yellow]")
