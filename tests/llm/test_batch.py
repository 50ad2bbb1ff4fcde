"""The Batch API helpers against the loopback server's /v1/files and /v1/batches."""

import asyncio
import json

import pytest

from app.llm import ModelSpec, batch
from app.models import Verdict
from app.verdicts import parse_verdict
from tests.loopback.server import LoopbackServer
from tests.loopback.state import verdict_for


def spec_for(server: LoopbackServer) -> ModelSpec:
    return ModelSpec(
        name="b",
        provider="openai",
        model_id="loop",
        base_url=server.base_url,
        system_prompt="Answer true or false.",
        seed=10,
    )


def requests(n: int) -> list[batch.BatchRequest]:
    return [
        batch.BatchRequest(
            custom_id=f"r{i}",
            messages=[{"role": "user", "content": f"Claim {i}?"}],
            sample_index=i % 2,
        )
        for i in range(n)
    ]


def test_jsonl_lines_are_full_chat_requests(loopback_server: LoopbackServer) -> None:
    lines = batch.build_jsonl(spec_for(loopback_server), requests(3)).decode().splitlines()
    parsed = [json.loads(line) for line in lines]
    assert [p["custom_id"] for p in parsed] == ["r0", "r1", "r2"]
    assert {p["url"] for p in parsed} == {"/v1/chat/completions"}
    assert [p["body"]["seed"] for p in parsed] == [10, 11, 10]
    assert parsed[0]["body"]["messages"][0] == {
        "role": "system",
        "content": "Answer true or false.",
    }


async def run_batch(spec: ModelSpec, n: int) -> batch.BatchResults:
    file_id = await batch.upload(spec, batch.build_jsonl(spec, requests(n)))
    status = await batch.create_batch(spec, file_id, metadata={"run": "1"})
    assert not status.finished
    for _ in range(200):
        status = await batch.poll(spec, status.id)
        if status.finished:
            break
        await asyncio.sleep(0.02)
    assert status.status == "completed"
    assert status.total == n
    return await batch.download_results(spec, status)


@pytest.mark.asyncio
async def test_batch_round_trip(loopback_server: LoopbackServer) -> None:
    loopback_server.configure(batch_delay_s=0.1)
    results = await run_batch(spec_for(loopback_server), 12)
    assert sorted(results.completions) == sorted(f"r{i}" for i in range(12))
    assert not results.errors
    for i in range(12):
        completion = results.completions[f"r{i}"]
        assert parse_verdict(completion.text) == Verdict(verdict_for(f"Claim {i}?"))
        assert completion.tokens_out > 0


@pytest.mark.asyncio
async def test_failed_lines_come_back_as_retryable_errors(
    loopback_server: LoopbackServer,
) -> None:
    loopback_server.configure(batch_line_error_rate=0.5)
    results = await run_batch(spec_for(loopback_server), 20)
    assert results.errors
    assert results.completions
    assert set(results.errors) | set(results.completions) == {f"r{i}" for i in range(20)}
    assert all(error.retryable for error in results.errors.values())


def test_parse_results_handles_garbage_and_error_lines() -> None:
    text = "\n".join(
        [
            "not json",
            json.dumps({"custom_id": "a", "response": {"status_code": 400, "body": {}}}),
            json.dumps({"custom_id": "b", "response": {"status_code": 200, "body": {"x": 1}}}),
            json.dumps({"custom_id": "c", "error": {"message": "expired"}}),
        ]
    )
    results = batch.parse_results(text)
    assert not results.completions
    assert set(results.errors) == {"a", "b", "c"}
    assert not results.errors["a"].retryable
    assert results.errors["b"].retryable
