"""`sdilab users invite EMAIL` and `sdilab users list` (beside `sdilab users create`)."""

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def _users_group(cli: typer.Typer) -> typer.Typer:
    for group in cli.registered_groups:
        if group.name == "users" and group.typer_instance is not None:
            return group.typer_instance
    users = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
    cli.add_typer(users, name="users")
    return users


def register(cli: typer.Typer) -> None:
    users = _users_group(cli)

    @users.command("invite")
    def users_invite(
        email: str,
        admin: Annotated[bool, typer.Option("--admin", help="Invite an admin")] = False,
        base_url: Annotated[
            str, typer.Option(help="Where the app is served, for the link")
        ] = "http://127.0.0.1:8000",
        hours: Annotated[int, typer.Option(help="Hours until the link expires")] = 72,
        name: str = "",
    ) -> None:
        """Create a one-time link that lets a new user set their password."""
        from app.accounts import service
        from app.db import session_scope
        from app.models import Role

        try:
            with session_scope() as session:
                user, token = service.create_invite(
                    session,
                    email,
                    role=Role.admin if admin else Role.rater,
                    display_name=name,
                    hours=hours,
                )
                console.print(f"Invite for {user.role} {user.email} (expires in {hours} h):")
        except service.AccountError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        typer.echo(f"{base_url.rstrip('/')}/invite/{token}")

    @users.command("list")
    def users_list() -> None:
        """List the accounts with their role and status."""
        from app.accounts import service
        from app.db import session_scope

        table = Table("id", "email", "name", "role", "status")
        with session_scope() as session:
            for user in service.list_users(session):
                status = (
                    "deactivated"
                    if not user.is_active
                    else ("invited" if not user.password_hash else "active")
                )
                table.add_row(str(user.id), user.email, user.display_name, user.role, status)
        console.print(table)
