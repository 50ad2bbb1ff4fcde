"""`sdilab export RUN --what metrics|replies|ratings [--format csv|jsonl|parquet]
[--source SOURCE] --out FILE`."""

import sys
from pathlib import Path
from typing import Annotated

import typer


def register(cli: typer.Typer) -> None:
    @cli.command("export")
    def export(
        run: Annotated[int, typer.Argument(help="Run id")],
        what: Annotated[str, typer.Option(help="metrics, replies or ratings")] = "metrics",
        out: Annotated[Path, typer.Option(help="File to write ('-' for stdout)")] = Path("-"),
        fmt: Annotated[
            str,
            typer.Option(
                "--format", help="csv, jsonl or parquet (default: from --out's suffix, else csv)"
            ),
        ] = "",
        source: Annotated[
            str,
            typer.Option(help="metrics from: human, judge:<judge id> or ppi:<judge id>"),
        ] = "human",
    ) -> None:
        """Write a run's metrics, replies or raw ratings as CSV, JSON Lines or Parquet.

        The columns are documented in app/metrics/exports.py and on the results page; the
        JSONL and Parquet replies add each LLM judge's labels.
        """
        from app.db import session_scope
        from app.metrics import exports, service, sources

        if what not in exports.WHATS:
            raise typer.BadParameter(f"--what must be one of {', '.join(exports.WHATS)}")
        suffix = out.suffix.lstrip(".").lower()
        fmt = fmt or (suffix if suffix in exports.FORMATS else "csv")
        if fmt not in exports.FORMATS:
            raise typer.BadParameter(f"--format must be one of {', '.join(exports.FORMATS)}")
        try:
            chosen = sources.parse(source)
        except sources.BadSource as exc:
            raise typer.BadParameter(str(exc)) from exc
        if chosen.kind != sources.HUMAN and what != "metrics":
            raise typer.BadParameter("--source applies to --what metrics only")
        with session_scope() as session:
            try:
                service.get_run(session, run)
            except service.RunNotFound as exc:
                typer.echo(f"No run {run}", err=True)
                raise typer.Exit(1) from exc
            if chosen.kind != sources.HUMAN:
                try:
                    sources.check(session, run, chosen)
                except sources.BadSource as exc:
                    typer.echo(str(exc), err=True)
                    raise typer.Exit(1) from exc
            chunks = exports.stream(session, what, fmt, run, chosen)
            sink = sys.stdout.buffer if str(out) == "-" else out.open("wb")
            try:
                for chunk in chunks:
                    sink.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
                sink.flush()
            finally:
                if sink is not sys.stdout.buffer:
                    sink.close()
        if str(out) != "-":
            typer.echo(f"Wrote {what} of run {run} to {out}", err=True)
