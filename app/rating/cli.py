"""`sdilab recount RUN...`: recount a run's rating tallies from its ratings."""

from typing import Annotated

import typer


def register(cli: typer.Typer) -> None:
    @cli.command("recount")
    def recount(
        runs: Annotated[list[int], typer.Argument(help="Run ids")],
    ) -> None:
        """Recount the per-reply, per-rater and per-pair rating tallies of runs.

        The app keeps them with every rating write; this is for ratings loaded behind its
        back (bulk loads) or a repair. Stored results of these runs are recomputed afterwards.
        """
        from app.db import session_scope
        from app.rating import tallies

        with session_scope() as session:
            counts = tallies.rebuild(session, runs)
        typer.echo(
            f"Recounted {counts.replies} rated replies, {len(counts.raters)} rater rows, "
            f"{len(counts.pairs)} rater-pair cells.",
            err=True,
        )
