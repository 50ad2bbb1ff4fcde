"""`sdilab models add|list|test` against the test database."""

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from app.cli import cli
from app.model_configs import service
from tests.loopback.server import LoopbackServer

runner = CliRunner()


def test_add_and_list(committed_db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDILAB_CLI_KEY", "sk-cli-canary-123456")
    added = runner.invoke(
        cli,
        [
            "models", "add", "--name", "gpt-mini", "--provider", "openai",
            "--model", "gpt-4o-mini", "--base-url", "https://api.example.org/v1",
            "--key-env", "SDILAB_CLI_KEY", "--temperature", "0.5", "--max-tokens", "80",
            "--seed", "3", "--system-prompt", "Be brief.", "--price-in", "0.15",
            "--price-out", "0.6", "--concurrency", "16",
        ],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    local = runner.invoke(cli, ["models", "add", "--name", "smol", "--provider", "local"])
    assert local.exit_code == 0, local.output
    with Session(committed_db) as session:
        config = service.get_by_name(session, "gpt-mini")
        assert config is not None
        assert (config.model_id, config.base_url, config.api_key_env) == (
            "gpt-4o-mini",
            "https://api.example.org/v1",
            "SDILAB_CLI_KEY",
        )
        assert (config.temperature, config.max_tokens, config.seed) == (0.5, 80, 3)
        assert (config.price_input_per_1k, config.price_output_per_1k) == (0.15, 0.6)
        assert config.max_concurrency == 16
        assert config.system_prompt == "Be brief."
    listed = runner.invoke(cli, ["models", "list"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    assert "gpt-mini" in listed.output and "smol" in listed.output
    assert "SDILAB_CLI_KEY (set)" in listed.output
    assert "sk-cli-canary" not in listed.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--provider", "openai"], "needs a model id"),
        (["--provider", "openai", "--model", "m", "--base-url", "localhost:8080"], "http"),
        (["--provider", "bard"], "provider"),
    ],
)
def test_add_refuses_invalid(committed_db: Engine, args: list[str], message: str) -> None:
    result = runner.invoke(cli, ["models", "add", "--name", "bad", *args])
    assert result.exit_code == 1
    assert message in result.output
    with Session(committed_db) as session:
        assert service.get_by_name(session, "bad") is None


def test_add_refuses_a_duplicate_name(committed_db: Engine) -> None:
    first = runner.invoke(cli, ["models", "add", "--name", "dup", "--provider", "local"])
    assert first.exit_code == 0
    second = runner.invoke(cli, ["models", "add", "--name", "dup", "--provider", "local"])
    assert second.exit_code == 1
    assert "already exists" in second.output


def test_no_seed_flag(committed_db: Engine) -> None:
    result = runner.invoke(
        cli, ["models", "add", "--name", "unseeded", "--provider", "local", "--no-seed"]
    )
    assert result.exit_code == 0, result.output
    with Session(committed_db) as session:
        config = service.get_by_name(session, "unseeded")
        assert config is not None and config.seed is None


def test_test_command_calls_the_model(
    committed_db: Engine, loopback_server: LoopbackServer
) -> None:
    added = runner.invoke(
        cli,
        ["models", "add", "--name", "loop", "--provider", "openai", "--model", "m",
         "--base-url", loopback_server.base_url],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    result = runner.invoke(cli, ["models", "test", "loop"])
    assert result.exit_code == 0, result.output
    assert "True." in result.output or "False." in result.output
    assert runner.invoke(cli, ["models", "test", "nope"]).exit_code == 1
