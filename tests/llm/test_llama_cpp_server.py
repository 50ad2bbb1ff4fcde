"""Integration: a real third-party OpenAI-compatible server (llama_cpp.server) serving the
bundled SmolLM2, called through the openai provider."""

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from app.llm import ModelSpec, complete
from app.llm.local import bundled_model_path
from tests.loopback.server import free_port


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` on a free port; yields its /v1 base URL."""
    port = free_port()
    # A file, not a pipe: the server logs a lot, and a full pipe would block it.
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            bundled_model_path(),
            "--model_alias",
            "smollm2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
            "--n_threads",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                output = log_path.read_text(errors="replace")
                pytest.fail(f"llama_cpp.server exited: {output[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not become ready")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.model
@pytest.mark.asyncio
async def test_openai_provider_against_llama_cpp_server(llama_server: str) -> None:
    spec = ModelSpec(
        name="llama-server",
        provider="openai",
        model_id="smollm2",
        base_url=llama_server,
        max_tokens=12,
        temperature=0.0,
        seed=1,
        timeout_s=60.0,
    )
    result = await complete(
        spec, [{"role": "user", "content": "Is the sky blue? Answer yes or no."}]
    )
    assert any(ch.isalpha() for ch in result.text)
    assert 0 < result.tokens_out <= 12
    assert result.tokens_in > 5
    assert result.finish_reason in ("stop", "length")
