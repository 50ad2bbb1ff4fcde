"""The walk-through of issue 19: a run's prompts go out to a harness, the harness runs them
against a model (the loopback server), its log comes back, raters rate it blind, the results
are read.

inspect_ai and promptfoo are not installed here (inspect_ai's wheel downloads, but the app
does not depend on it): ``run_like_inspect`` and ``run_like_promptfoo`` do what the exported
task file and config ask for, with real model calls, and write the log in the harness's
documented format: inspect_ai's ``EvalLog`` (``inspect_ai/log/_log.py``: ``version``,
``status``, ``eval`` = EvalSpec with ``created``, ``task``, ``dataset``, ``model``, ``config``;
``samples`` = EvalSample with ``id``, ``epoch``, ``input``, ``target``, ``messages``,
``output`` = ModelOutput, ``scores``, ``metadata``), and promptfoo's ``-o results.json``
(``evalId``, ``results.version`` 3, ``results.results`` with ``prompt``, ``vars``,
``response.output``, ``provider``, ``success``, ``score``, ``testIdx``, ``promptIdx``).
"""

import json
from datetime import UTC, datetime
from typing import Any

import yaml
from openai import OpenAI
from sqlmodel import Session, select

from app.imports import harness_export, service
from app.metrics import service as metrics
from app.models import QuestionSet, Run, RunArm
from tests import factories
from tests.imports.helpers import parse, rate_everything
from tests.loopback.server import LoopbackServer
from tests.loopback.state import verdict_for
from tests.metrics import helpers


def _chat(client: OpenAI, model: str, messages: list[dict[str, str]]) -> str:
    done = client.chat.completions.create(model=model, messages=messages, temperature=0)  # type: ignore[arg-type]
    return done.choices[0].message.content or ""


def run_like_inspect(dataset: str, client: OpenAI, model: str, epochs: int) -> dict[str, Any]:
    """What ``inspect eval <the task file> --model openai/<model>`` writes as its .json log."""
    samples = []
    for line in dataset.splitlines():
        sample = json.loads(line)
        for epoch in range(1, epochs + 1):
            messages = [{"role": "user", "content": sample["input"]}]
            reply = _chat(client, model, messages)
            followup = sample["metadata"].get("followup")
            if followup:  # answer_then_pushback()
                messages += [
                    {"role": "assistant", "content": reply},
                    {"role": "user", "content": followup},
                ]
                reply = _chat(client, model, messages)
            messages.append({"role": "assistant", "content": reply})
            matched = reply.lower().startswith(sample["target"].lower())  # match(location="begin")
            samples.append(
                {
                    "id": sample["id"],
                    "epoch": epoch,
                    "input": sample["input"],
                    "target": sample["target"],
                    "messages": messages,
                    "output": {
                        "model": model,
                        "choices": [
                            {
                                "message": {"role": "assistant", "content": reply},
                                "stop_reason": "stop",
                            }
                        ],
                        "completion": reply,
                    },
                    "scores": {
                        "match": {"value": "C" if matched else "I", "answer": reply.split(".")[0]}
                    },
                    "metadata": sample["metadata"],
                }
            )
    return {
        "version": 2,
        "status": "success",
        "eval": {
            "run_id": "walkthrough",
            "created": datetime.now(UTC).isoformat(),
            "task": "sdilab_run",
            "task_id": "walkthrough-task",
            "dataset": {"name": "sdilab run", "samples": len(samples) // epochs},
            "model": f"openai/{model}",
            "config": {"epochs": epochs},
        },
        "plan": {"name": "plan", "steps": [{"solver": "answer_then_pushback", "params": {}}]},
        "results": {"total_samples": len(samples), "completed_samples": len(samples)},
        "stats": {},
        "samples": samples,
    }


def run_like_promptfoo(
    config: dict[str, Any], client: OpenAI, server: LoopbackServer, modes: dict[str, str]
) -> dict[str, Any]:
    """What ``promptfoo eval -c <the config> -o results.json`` writes, each provider's model
    answering in its own way (the loopback server's reply mode)."""
    results = []
    for provider in config["providers"]:
        server.configure(reply_mode=modes[provider["label"]])
        model = provider["id"].removeprefix("openai:chat:")
        for index, test in enumerate(config["tests"]):
            prompt = config["prompts"][0].replace("{{prompt}}", test["vars"]["prompt"])
            reply = _chat(client, model, [{"role": "user", "content": prompt}])
            results.append(
                {
                    "prompt": {"raw": prompt, "label": config["prompts"][0]},
                    "vars": test["vars"],
                    "response": {"output": reply, "tokenUsage": {}},
                    "provider": {"id": provider["id"], "label": provider["label"]},
                    "success": True,
                    "score": 1,
                    "testIdx": index,
                    "promptIdx": 0,
                    "namedScores": {},
                }
            )
    return {
        "evalId": "eval-walkthrough",
        "results": {
            "version": 3,
            "timestamp": datetime.now(UTC).isoformat(),
            "prompts": [{"raw": config["prompts"][0]}],
            "results": results,
            "stats": {"successes": len(results), "failures": 0},
        },
        "config": config,
    }


def _accuracy(db: Session, run: Run) -> dict[str, tuple[float | None, int]]:
    assert run.id is not None
    results = metrics.run_results(db, run.id, resamples=200, use_snapshot=False)
    return {m.arm: (m.accuracy.value, m.accuracy.n) for m in results.metrics if m.kind == "all"}


def test_inspect_walkthrough(db: Session, loopback_server: LoopbackServer) -> None:
    qs = factories.imported_question_set(db)
    source = factories.make_run(db, qs, samples=2)
    assert source.id is not None
    dataset = "".join(harness_export.stream(db, source.id, "inspect.jsonl"))
    client = OpenAI(base_url=loopback_server.base_url, api_key="test-key", max_retries=0)
    log = run_like_inspect(dataset, client, "loopback-model", epochs=2)
    assert len(log["samples"]) == 24

    parsed = parse(db, qs, json.dumps(log).encode(), "2026-12-07_sdilab-run.json")
    assert parsed.errors == [] and parsed.detected == "inspect_ai eval log"
    run = service.import_replies(db, parsed, name="rerun in inspect_ai")
    arms = db.exec(select(RunArm).where(RunArm.run_id == run.id)).all()
    assert len(arms) == 1 and "loopback-model" in str(arms[0].snapshot)
    rate_everything(db, run, helpers.make_raters(db, 2))

    # Expected from the loopback's rule (the parity of the prompt's hash) and the truths.
    expected = [
        verdict_for(json.loads(line)["input"]) == json.loads(line)["target"]
        for line in dataset.splitlines()
        for _ in range(2)
    ]
    ((value, n),) = _accuracy(db, run).values()
    assert n == 24 and value == sum(expected) / 24


def test_promptfoo_walkthrough(db: Session, loopback_server: LoopbackServer) -> None:
    qs = factories.imported_question_set(db)
    source = factories.make_run(db, qs)
    assert source.id is not None
    config = yaml.safe_load("".join(harness_export.stream(db, source.id, "promptfooconfig.yaml")))
    client = OpenAI(base_url=loopback_server.base_url, api_key="test-key", max_retries=0)
    output = run_like_promptfoo(
        config, client, loopback_server, {"baseline": "hash", "sdi": "false"}
    )
    qs_row = db.get(QuestionSet, qs.id)
    assert qs_row is not None
    parsed = parse(db, qs_row, json.dumps(output).encode(), "results.json")
    assert parsed.errors == [] and parsed.detected == "promptfoo output"
    run = service.import_replies(db, parsed, name="rerun in promptfoo", baseline="baseline")
    rate_everything(db, run, helpers.make_raters(db, 2))

    tests = config["tests"]
    truth = {t["vars"]["prompt"]: t["metadata"]["truth"] for t in tests}
    hashed = sum((verdict_for(p) == "true") == truth[p] for p in truth) / len(truth)
    always_false = sum(not t for t in truth.values()) / len(truth)
    got = _accuracy(db, run)
    assert got == {"baseline": (hashed, 12), "sdi": (always_false, 12)}
