"""`sdilab models add|list|test`."""

import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()
models_cli = typer.Typer(help="Manage model configs.", no_args_is_help=True)


@models_cli.command("add")
def add(
    name: Annotated[str, typer.Option(help="Unique name")],
    provider: Annotated[str, typer.Option(help="openai | local")],
    model: Annotated[
        str, typer.Option("--model", help="Model id (or a .gguf path for local)")
    ] = "",
    base_url: Annotated[str, typer.Option(help="OpenAI-compatible server, e.g. .../v1")] = "",
    key_env: Annotated[str, typer.Option(help="NAME of the variable holding the API key")] = "",
    temperature: float = 0.0,
    max_tokens: int = 256,
    top_p: float = 1.0,
    seed: Annotated[int | None, typer.Option(help="Base seed (sample i uses seed + i)")] = 0,
    no_seed: Annotated[bool, typer.Option("--no-seed", help="Send no seed")] = False,
    system_prompt: str = "",
    price_in: Annotated[float, typer.Option(help="USD per 1k input tokens")] = 0.0,
    price_out: Annotated[float, typer.Option(help="USD per 1k output tokens")] = 0.0,
    concurrency: Annotated[int, typer.Option(help="Concurrent calls to this model")] = 4,
    timeout: Annotated[float, typer.Option(help="Seconds per call")] = 120.0,
) -> None:
    """Add a model config."""
    from pydantic import ValidationError

    from app.db import session_scope
    from app.model_configs import service
    from app.model_configs.schemas import ModelConfigCreate

    try:
        data = ModelConfigCreate.model_validate(
            {
                "name": name,
                "provider": provider,
                "model_id": model,
                "base_url": base_url,
                "api_key_env": key_env,
                "temperature": temperature,
                "max_tokens": max_tokens,
                "top_p": top_p,
                "seed": None if no_seed else seed,
                "system_prompt": system_prompt,
                "price_input_per_1k": price_in,
                "price_output_per_1k": price_out,
                "max_concurrency": concurrency,
                "timeout_s": timeout,
            }
        )
        with session_scope() as session:
            config = service.create_model_config(session, data)
            console.print(f"Added model [bold]{config.name}[/bold] ({config.provider})")
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            console.print(f"[red]{where + ': ' if where else ''}{err['msg']}[/red]")
        raise typer.Exit(1) from None
    except service.ModelConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if key_env and not os.environ.get(key_env):
        console.print(f"[yellow]Note: {key_env} is not set in this environment.[/yellow]")


@models_cli.command("list")
def list_models() -> None:
    """List model configs (key variables by name only)."""
    from app.db import session_scope
    from app.model_configs import service

    table = Table(
        "Name",
        "Provider",
        "Model",
        "Base URL",
        "Key variable",
        "T",
        "Max",
        "Seed",
        "Conc.",
        "$/1k in",
        "$/1k out",
        "SDI",
    )
    with session_scope() as session:
        for c in service.list_model_configs(session):
            key = ""
            if c.api_key_env:
                key = f"{c.api_key_env} ({'set' if os.environ.get(c.api_key_env) else 'not set'})"
            table.add_row(
                c.name,
                c.provider,
                c.model_id or ("bundled SmolLM2" if c.provider == "local" else ""),
                c.base_url,
                key,
                f"{c.temperature:g}",
                str(c.max_tokens),
                "none" if c.seed is None else str(c.seed),
                str(c.max_concurrency),
                f"{c.price_input_per_1k:g}",
                f"{c.price_output_per_1k:g}",
                c.sdi_mode,
            )
    console.print(table)


@models_cli.command("test")
def test(name: str) -> None:
    """Make one short call to a model and print the reply."""
    import asyncio

    from app.db import session_scope
    from app.model_configs import service

    with session_scope() as session:
        config = service.get_by_name(session, name)
        if config is None:
            console.print(f"[red]No model named {name!r}[/red]")
            raise typer.Exit(1)
        spec = service.build_spec(session, config)
    result = asyncio.run(service.test_call(spec))
    if not result["ok"]:
        console.print(f"[red]{name} failed: {result['message']}[/red]")
        raise typer.Exit(1)
    completion = result["completion"]
    console.print(f"[green]{name}[/green] ({completion.latency_ms} ms): {completion.text}")


def register(cli: typer.Typer) -> None:
    cli.add_typer(models_cli, name="models")
