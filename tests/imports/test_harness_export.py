"""A run's prompts out to harnesses: an inspect_ai dataset (``Sample`` fields, read by
``json_dataset`` with no field mapping) with a task file, and a promptfoo config with tests;
each checked against its harness's documented shape, and a log made from each imports back
onto the same statements."""

import ast
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.imports import harness_export, service
from app.models import PromptVariant, Question, QuestionSet, Run
from tests import factories
from tests.html import find
from tests.imports.helpers import parse

# inspect_ai's Sample fields (https://inspect.aisi.org.uk/datasets.html).
SAMPLE_FIELDS = {"input", "choices", "target", "id", "metadata", "sandbox", "files", "setup"}
# promptfoo's config, provider and test case fields and a few of its assertion types
# (https://www.promptfoo.dev/docs/configuration/test-cases and its config-schema.json, where
# each of these objects has additionalProperties false).
CONFIG_FIELDS = {"description", "tags", "providers", "prompts", "tests", "defaultTest"}
CONFIG_FIELDS |= {"evaluateOptions", "outputPath", "env", "metadata", "scenarios"}
PROVIDER_FIELDS = {"id", "label", "config", "prompts", "transform", "delay", "env", "inputs"}
TEST_FIELDS = {"description", "vars", "provider", "providers", "prompts", "providerOutput"}
TEST_FIELDS |= {"assert", "assertScoringFunction", "options", "threshold", "metadata"}
ASSERT_FIELDS = {"type", "value", "config", "threshold", "weight", "provider", "metric"}
ASSERT_TYPES = {"equals", "contains", "icontains", "regex", "javascript", "llm-rubric"}
META = {"statement", "truth", "variant_kind", "stance", "premise_erroneous", "template"}


@pytest.fixture
def run(db: Session) -> Run:
    """An imported set's statements through three kinds (one pushback), two arms, 2 samples."""
    qs = factories.imported_question_set(db)
    run = factories.make_run(
        db,
        qs,
        kinds=(("neutral", "none"), ("biased", "negates"), ("pushback", "none")),
        samples=2,
    )
    variants = db.exec(
        select(PromptVariant).where(PromptVariant.run_id == run.id).order_by(PromptVariant.id)  # type: ignore[arg-type]
    ).all()
    for variant in variants:
        if variant.kind == "pushback":
            variant.followup = "I don't think that's right. Are you sure?"
    # A statement with quotes, a line break and a character YAML must escape.
    variants[0].messages = [{"role": "user", "content": 'Is "it"\nso?\u2028 \u00e9'}]
    db.flush()
    return run


def _text(db: Session, run: Run, name: str) -> str:
    assert run.id is not None
    return "".join(harness_export.stream(db, run.id, name))


def _variants(db: Session, run: Run) -> list[tuple[PromptVariant, Question]]:
    return list(
        db.exec(
            select(PromptVariant, Question)
            .join(Question, Question.id == PromptVariant.question_id)  # type: ignore[arg-type]
            .where(PromptVariant.run_id == run.id)
            .order_by(PromptVariant.id)  # type: ignore[arg-type]
        ).all()
    )


def test_the_inspect_dataset_is_one_sample_per_prompt_variant(db: Session, run: Run) -> None:
    samples = [json.loads(line) for line in _text(db, run, "inspect.jsonl").splitlines()]
    variants = _variants(db, run)
    assert len(samples) == len(variants) == 18
    assert len({s["id"] for s in samples}) == len(samples)
    for sample, (variant, question) in zip(samples, variants, strict=True):
        assert set(sample) <= SAMPLE_FIELDS and {"input", "target", "id"} <= set(sample)
        assert isinstance(sample["id"], str) and sample["id"] == f"pv-{variant.id}"
        assert sample["input"] == variant.messages[0]["content"]
        assert sample["target"] == ("true" if question.truth else "false")
        meta = sample["metadata"]
        assert set(meta) >= META
        assert meta["statement_id"] == question.source_id
        assert meta["statement"] == question.statement
        assert (meta["variant_kind"], meta["stance"]) == (variant.kind, variant.stance)
        assert meta["premise_erroneous"] is variant.premise_erroneous
        assert meta["followup"] == variant.followup


def test_the_task_file_is_python_that_reads_the_dataset(db: Session, run: Run) -> None:
    run.name = 'quotes """ and \\ a backslash {braces} \u00e9'
    db.flush()
    source = _text(db, run, "inspect_task.py")
    tree = ast.parse(source)
    imported = {
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert {("inspect_ai", "Task"), ("inspect_ai", "task")} <= imported
    assert ("inspect_ai.dataset", "json_dataset") in imported
    tasks = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(isinstance(d, ast.Name) and d.id == "task" for d in node.decorator_list)
    ]
    assert [t.name for t in tasks] == [f"sdilab_run_{run.id}"]
    assert f"run-{run.id}-inspect.jsonl" in source
    call = next(n for n in ast.walk(tasks[0]) if isinstance(n, ast.Call))
    keywords = {k.arg: k.value for k in call.keywords}
    assert {"dataset", "solver", "scorer", "epochs"} <= set(keywords)
    epochs = keywords["epochs"]
    assert isinstance(epochs, ast.Constant) and epochs.value == 2
    assert "followup" in source  # the pushback's second turn is sent


def test_the_promptfoo_config_has_a_test_per_prompt_variant(db: Session, run: Run) -> None:
    config = yaml.safe_load(_text(db, run, "promptfooconfig.yaml"))
    assert {"description", "prompts", "providers", "tests"} <= set(config) <= CONFIG_FIELDS
    assert all(set(p) <= PROVIDER_FIELDS for p in config["providers"])
    assert config["prompts"] == ["{{prompt}}"]
    assert [p["label"] for p in config["providers"]] == ["baseline", "sdi"]
    assert all(p["id"] == "openai:chat:test-model" for p in config["providers"])
    assert config["evaluateOptions"] == {"repeat": 2}
    variants = _variants(db, run)
    assert len(config["tests"]) == len(variants)
    for test, (variant, question) in zip(config["tests"], variants, strict=True):
        assert set(test) <= TEST_FIELDS
        assert test["vars"]["prompt"] == variant.messages[0]["content"]
        assert test["vars"]["statement_id"] == question.source_id
        assert all(isinstance(v, str) for v in test["vars"].values())
        assert test["assert"] and all(a["type"] in ASSERT_TYPES for a in test["assert"])
        assert all(set(a) <= ASSERT_FIELDS for a in test["assert"])
        assert question.statement in test["assert"][0]["value"]
        assert test["metadata"]["prompt_variant_id"] == variant.id
    assert config["tests"][0]["vars"]["prompt"] == 'Is "it"\nso?\u2028 \u00e9'


def test_no_api_key_is_written(db: Session) -> None:
    qs = factories.imported_question_set(db)
    run = factories.make_run(db, qs)
    from app.models import ModelConfig, RunArm

    arm = db.exec(select(RunArm).where(RunArm.run_id == run.id)).first()
    assert arm is not None
    config = db.get(ModelConfig, arm.model_config_id)
    assert config is not None
    config.base_url, config.api_key_env = "http://127.0.0.1:9/v1", "MY_SERVER_KEY"
    local = factories.make_model_config(db, provider="local")
    db.add(RunArm(run_id=run.id, model_config_id=local.id, label="offline", position=5))
    db.flush()
    text = _text(db, run, "promptfooconfig.yaml")
    parsed = yaml.safe_load(text)
    first = parsed["providers"][0]["config"]
    assert first["apiBaseUrl"] == "http://127.0.0.1:9/v1"
    assert first["apiKeyEnvar"] == "MY_SERVER_KEY"
    assert [p["label"] for p in parsed["providers"]] == ["baseline", "sdi"]
    assert "no promptfoo provider here (add one by hand): offline" in text


def _inspect_log(samples: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """What inspect_ai writes for the dataset (its .json log), every sample answered."""
    return {
        "version": 2,
        "status": "success",
        "eval": {"task": "sdilab_run", "model": model, "created": "2026-12-07T10:00:00+00:00"},
        "samples": [
            {
                "id": s["id"],
                "epoch": epoch,
                "input": s["input"],
                "target": s["target"],
                "metadata": s["metadata"],
                "output": {"model": model, "completion": f"{s['target'].title()}. Sure."},
                "scores": {"match": {"value": "C"}},
            }
            for s in samples
            for epoch in (1, 2)
        ],
    }


def test_an_inspect_log_of_the_dataset_imports_onto_the_same_statements(
    db: Session, run: Run
) -> None:
    samples = [json.loads(line) for line in _text(db, run, "inspect.jsonl").splitlines()]
    qs = db.get(QuestionSet, run.question_set_id)
    assert qs is not None
    parsed = parse(db, qs, json.dumps(_inspect_log(samples, "openai/m")).encode(), "log.json")
    assert parsed.errors == [] and parsed.detected == "inspect_ai eval log"
    assert len(parsed.rows) == 2 * len(samples)
    imported = service.import_replies(db, parsed, name="back from inspect")
    back = _variants(db, imported)
    assert sorted((q.id, v.kind, v.stance) for v, q in back) == sorted(
        (q.id, v.kind, v.stance) for v, q in _variants(db, run)
    )


def test_a_promptfoo_output_of_the_config_imports_onto_the_same_statements(
    db: Session, run: Run
) -> None:
    config = yaml.safe_load(_text(db, run, "promptfooconfig.yaml"))
    results = [
        {
            "prompt": {"raw": test["vars"]["prompt"], "label": "{{prompt}}"},
            "vars": test["vars"],
            "response": {"output": "False. No."},
            "provider": {"id": provider["id"], "label": provider["label"]},
            "success": True,
            "score": 1,
            "testIdx": i,
            "promptIdx": 0,
        }
        for i, test in enumerate(config["tests"])
        for provider in config["providers"]
    ]
    output = {"evalId": "e1", "results": {"version": 3, "results": results}, "config": config}
    qs = db.get(QuestionSet, run.question_set_id)
    assert qs is not None
    parsed = parse(db, qs, json.dumps(output).encode(), "results.json")
    assert parsed.errors == [] and parsed.detected == "promptfoo output"
    imported = service.import_replies(db, parsed, name="back from promptfoo", baseline="baseline")
    back = _variants(db, imported)
    assert sorted((q.id, v.kind, v.stance) for v, q in back) == sorted(
        (q.id, v.kind, v.stance) for v, q in _variants(db, run)
    )


def test_the_run_page_links_the_files_and_they_download(admin_client: TestClient, run: Run) -> None:
    page = admin_client.get(f"/runs/{run.id}")
    links = [a.attrs.get("href") for a in find(page.text, "a")]
    for name in ("inspect.jsonl", "inspect_task.py", "promptfooconfig.yaml"):
        url = f"/runs/{run.id}/harness/{name}"
        assert url in links
        response = admin_client.get(url)
        assert response.status_code == 200, response.text
        assert f'filename="run-{run.id}-{name}"' in response.headers["content-disposition"]
    assert admin_client.get(f"/runs/{run.id}/harness/other.txt").status_code == 404
    missing = admin_client.get("/runs/999999/harness/inspect.jsonl")
    assert missing.status_code == 404 and "No run 999999" in missing.text


def test_raters_cannot_download_them(rater_client: TestClient, run: Run) -> None:
    for name in ("inspect.jsonl", "inspect_task.py", "promptfooconfig.yaml"):
        assert rater_client.get(f"/runs/{run.id}/harness/{name}").status_code == 403


def test_the_command_writes_the_files(committed_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from app.cli import cli
    from app.db import session_scope

    with session_scope(committed_db) as session:
        run_id = factories.make_run(session, factories.imported_question_set(session)).id
    result = CliRunner().invoke(
        cli, ["harness-export", str(run_id), "--to", "inspect", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    lines = (tmp_path / f"run-{run_id}-inspect.jsonl").read_text().splitlines()
    assert len(lines) == 12
    ast.parse((tmp_path / f"run-{run_id}-inspect_task.py").read_text())
    result = CliRunner().invoke(
        cli, ["harness-export", str(run_id), "--to", "promptfoo", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / f"run-{run_id}-promptfooconfig.yaml").read_text())
    assert len(config["tests"]) == 12
    bad = CliRunner().invoke(
        cli, ["harness-export", "999999", "--to", "inspect", "--out", str(tmp_path)]
    )
    assert bad.exit_code == 1 and "No run 999999" in bad.output
    wrong = CliRunner().invoke(cli, ["harness-export", str(run_id), "--to", "lm-eval"])
    assert wrong.exit_code == 2
