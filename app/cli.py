"""The `sdilab` command line."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

cli = typer.Typer(help="sdilab: measure and reduce sycophancy in LLMs.", no_args_is_help=True)
users_cli = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
cli.add_typer(users_cli, name="users")
console = Console()


@cli.command()
def migrate(revision: str = "head") -> None:
    """Apply database migrations (creates the SQLite file if needed)."""
    from app import migrate as migrations

    migrations.upgrade(revision=revision)
    console.print(f"[green]Database at {revision}[/green]")


@cli.command()
def backup(
    target: Annotated[Path, typer.Argument(help="The backup file to write")],
) -> None:
    """Back up the database, safely while the app runs (SQLite online backup, or pg_dump)."""
    from app.config import get_settings
    from app.db import backup as backups

    try:
        backups.backup(get_settings().database_url, target)
    except backups.BackupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"Backed up to {target} ({target.stat().st_size:,} bytes)")


@cli.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A file written by `sdilab backup`")],
    yes: Annotated[bool, typer.Option("--yes", help="Replace the database's contents")] = False,
) -> None:
    """Replace the database's contents with a backup. Stop the app and workers first."""
    from app.config import get_settings
    from app.db import backup as backups

    if not yes:
        console.print("[red]This replaces every row of the database; add --yes.[/red]")
        raise typer.Exit(2)
    try:
        backups.restore(get_settings().database_url, source)
    except backups.BackupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"Restored from {source}")


@cli.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="Web server processes")] = 1,
    reload: bool = False,
) -> None:
    """Serve the web app with uvicorn."""
    import uvicorn

    uvicorn.run("app.main:app", host=host, port=port, workers=workers, reload=reload)


@users_cli.command("create")
def users_create(
    email: Annotated[str, typer.Option(prompt=True)],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, envvar="SDILAB_NEW_PASSWORD")
    ],
    admin: Annotated[bool, typer.Option("--admin", help="Create an admin")] = False,
    rater: Annotated[bool, typer.Option("--rater", help="Create a rater (default)")] = False,
    name: str = "",
) -> None:
    """Create a user with a password."""
    from pydantic import ValidationError

    from app.accounts import service
    from app.accounts.schemas import UserCreate
    from app.db import session_scope
    from app.models import Role

    if admin and rater:
        raise typer.BadParameter("choose --admin or --rater, not both")
    try:
        data = UserCreate(
            email=email,
            password=password,
            role=Role.admin if admin else Role.rater,
            display_name=name,
        )
        with session_scope() as session:
            user = service.create_user(session, data)
            console.print(f"Created {user.role} {user.email}")
    except (ValidationError, service.AccountError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


def _register_domain_commands() -> None:
    """Domains add their own commands from app/<domain>/cli.py (a `register(cli)` function)."""
    from importlib import import_module

    for domain in (
        "accounts",
        "questions",
        "model_configs",
        "runs",
        "imports",
        "jobs",
        "rating",
        "judging",
        "metrics",
        "sdi",
        "training",
        "experiments",
        "demo",
        "bundles",
    ):
        try:
            module = import_module(f"app.{domain}.cli")
        except ModuleNotFoundError as exc:
            if exc.name not in (f"app.{domain}", f"app.{domain}.cli"):
                raise
            continue
        module.register(cli)


_register_domain_commands()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
