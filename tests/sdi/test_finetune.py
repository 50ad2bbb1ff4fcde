"""Fine-tuning an SDI model through the OpenAI API, against the loopback test server."""

import json

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.db import session_scope
from app.jobs.worker import run_worker
from app.llm import finetune
from app.llm.types import LlmError
from app.model_configs.service import build_spec
from app.models import Job, ModelConfig, SdiDataset, SdiExample, SdiFineTune
from app.sdi import finetuning, service
from app.sdi.schemas import BuildConfig, FineTuneCreate
from tests import factories
from tests.loopback.server import LoopbackServer
from tests.sdi.conftest import configure_finetune
from tests.sdi.helpers import STATEMENTS


def _dataset(db: Session, name: str = "ft-data") -> object:
    train = factories.make_question_set(db, name=f"{name}-set", rows=STATEMENTS)
    cfg = BuildConfig(name=name, question_set_id=train.id or 0, seed=1, size=60)
    return service.build_dataset(db, cfg)


def _base(db: Session, server: LoopbackServer) -> ModelConfig:
    return factories.make_model_config(
        db, name="gpt-base", provider="openai", base_url=server.base_url, timeout_s=10
    )


def test_client_talks_to_the_files_and_fine_tuning_endpoints(loopback: LoopbackServer) -> None:
    spec = build_spec_for(loopback)
    turns = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    lines = "".join(json.dumps({"messages": turns}) + "\n" for _ in range(12))
    file_id = finetune.upload_file(spec, lines.encode(), "train.jsonl")
    job = finetune.create_job(
        spec, model="gpt-4o-mini", training_file=file_id, suffix="sdi", epochs=2
    )
    assert job.status == "validating_files" and not job.finished
    statuses = [finetune.retrieve_job(spec, job.id).status for _ in range(4)]
    assert statuses == ["queued", "running", "running", "succeeded"]
    done = finetune.retrieve_job(spec, job.id)
    assert done.fine_tuned_model.startswith("ft:gpt-4o-mini:loopback:sdi:")
    events = finetune.list_events(spec, job.id)
    assert events[0].message.startswith("Created fine-tuning job")
    assert "successfully completed" in events[-1].message
    body = next(r["body"] for r in loopback.requests() if r.get("path") == "/v1/fine_tuning/jobs")
    assert body["hyperparameters"] == {"n_epochs": 2}
    with pytest.raises(LlmError) as info:
        finetune.retrieve_job(spec, "ftjob-missing")
    assert not info.value.retryable


def build_spec_for(server: LoopbackServer):  # type: ignore[no-untyped-def]
    from app.llm.types import ModelSpec

    return ModelSpec(name="t", provider="openai", model_id="gpt-4o-mini", base_url=server.base_url)


def test_a_successful_fine_tune_becomes_an_sdi_model(db: Session, loopback: LoopbackServer) -> None:
    dataset = _dataset(db)
    base = _base(db, loopback)
    ft = finetuning.start_fine_tune(
        db, dataset, FineTuneCreate(base_model_id=base.id, epochs=3, suffix="sdi", name="gpt-sdi")
    )
    assert ft.status == "pending"
    assert db.exec(select(Job).where(Job.task == "sdi.finetune")).first() is not None
    steps = 0
    while not finetuning.advance(db, ft.id):
        steps += 1
        assert steps < 20
    db.refresh(ft)
    assert ft.status == "succeeded"
    assert ft.training_file_id and ft.provider_job_id
    assert ft.fine_tuned_model_id.startswith("ft:test-model:loopback:sdi:")
    messages = [e["message"] for e in ft.events]
    assert len(messages) == len(set(e["id"] for e in ft.events))  # no duplicates across polls
    assert any("Step 1" in m for m in messages)
    model = db.get(ModelConfig, ft.result_model_config_id)
    assert model is not None
    assert (model.name, model.sdi_mode, model.model_id, model.fine_tuned_model_id) == (
        "gpt-sdi",
        "fine_tuned",
        ft.fine_tuned_model_id,
        ft.fine_tuned_model_id,
    )
    assert model.base_url == base.base_url and model.sdi_dataset_id == dataset.id
    assert build_spec(db, model).model_id == ft.fine_tuned_model_id
    uploaded = [f for f in loopback.state.files.values() if f["purpose"] == "fine-tune"]
    train_bytes = service.export_text(db, dataset.id, "openai", "train").encode()
    assert train_bytes in [f["content"] for f in uploaded]


def test_a_failed_job_shows_its_error(db: Session, loopback: LoopbackServer) -> None:
    configure_finetune(loopback, fail_with="GPU exploded", polls_to_finish=1)
    dataset = _dataset(db)
    base = _base(db, loopback)
    ft = finetuning.start_fine_tune(db, dataset, FineTuneCreate(base_model_id=base.id))
    for _ in range(10):
        if finetuning.advance(db, ft.id):
            break
    db.refresh(ft)
    assert ft.status == "failed"
    assert "GPU exploded" in ft.error
    assert ft.result_model_config_id is None
    assert any(e["level"] == "error" for e in ft.events)


def test_refusals_before_anything_is_sent(db: Session, loopback: LoopbackServer) -> None:
    dataset = _dataset(db)
    local = factories.make_model_config(db, provider="local")
    with pytest.raises(service.SdiError, match="not an OpenAI-compatible"):
        finetuning.start_fine_tune(db, dataset, FineTuneCreate(base_model_id=local.id))
    tiny = service.build_dataset(
        db,
        BuildConfig(
            name="tiny", question_set_id=dataset.question_set_id, size=4, kinds=["neutral"]
        ),
    )
    with pytest.raises(service.SdiError, match="at least 10"):
        finetuning.start_fine_tune(db, tiny, FineTuneCreate(base_model_id=_base(db, loopback).id))
    assert loopback.stats()["calls"].get("files.create", 0) == 0


def test_a_wrong_key_fails_the_fine_tune_without_leaking_it(
    db: Session, loopback: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback.configure(api_key="sk-right-key")
    monkeypatch.setenv("FT_KEY", "sk-wrong-key-123")
    dataset = _dataset(db)
    base = _base(db, loopback)
    base.api_key_env = "FT_KEY"
    ft = finetuning.start_fine_tune(db, dataset, FineTuneCreate(base_model_id=base.id))
    assert finetuning.advance(db, ft.id) is True
    assert ft.status == "failed" and "401" in ft.error
    assert "sk-wrong-key-123" not in ft.error


@pytest.mark.slow
def test_the_worker_follows_a_fine_tune_to_the_end(
    committed_db: Engine, loopback: LoopbackServer
) -> None:
    with session_scope(committed_db) as session:
        dataset = _dataset(session, "worker-ft")
        base = _base(session, loopback)
        ft = finetuning.start_fine_tune(
            session, dataset, FineTuneCreate(base_model_id=base.id), poll_interval_s=0
        )
        ft_id = ft.id
    run_worker(concurrency=2, burst=True, engine=committed_db)
    with session_scope(committed_db) as session:
        ft = session.get(SdiFineTune, ft_id)
        assert ft is not None
        assert ft.status == "succeeded", (ft.status, ft.error)
        assert ft.result_model_config_id is not None
        jobs = session.exec(select(Job).where(Job.task == "sdi.finetune")).all()
        assert {j.status for j in jobs} == {"succeeded"}
        assert len(jobs) >= 5  # upload, create, then polls


@pytest.mark.slow
def test_a_teacher_build_runs_in_the_worker_and_drops_wrong_verdicts(
    committed_db: Engine, loopback: LoopbackServer
) -> None:
    """The loopback teacher answers True/False by a hash, so about half its replies are wrong."""
    with session_scope(committed_db) as session:
        train = factories.make_question_set(session, name="teacher-train", rows=STATEMENTS)
        teacher = factories.make_model_config(
            session, name="teacher", base_url=loopback.base_url, timeout_s=10
        )
        cfg = BuildConfig(
            name="taught",
            question_set_id=train.id or 0,
            kinds=["neutral", "biased"],
            teacher_model_id=teacher.id,
            template_source="bank",
        )
        dataset_id = service.start_build(session, cfg).id
    run_worker(concurrency=2, burst=True, engine=committed_db)
    with session_scope(committed_db) as session:
        dataset = session.get(SdiDataset, dataset_id)
        assert dataset is not None and dataset.status == "ready", dataset.stats
        crafting = dataset.stats["stages"][1]
        assert crafting["details"]["writer"] == "teacher model"
        assert crafting["dropped"]["teacher reply has the wrong verdict"] > 0
        assert crafting["out"] > 0
        examples = session.exec(select(SdiExample).where(SdiExample.dataset_id == dataset_id))
        for example in examples:
            reply = example.messages[-1]["content"]
            assert reply.startswith(("True.", "False."))
            assert example.origin.startswith("teacher")


@pytest.mark.slow
def test_a_failed_background_build_is_shown_as_failed(committed_db: Engine) -> None:
    with session_scope(committed_db) as session:
        train = factories.make_question_set(session, name="teacher-train", rows=STATEMENTS)
        dead = factories.make_model_config(
            session, name="dead", base_url="http://127.0.0.1:9/v1", timeout_s=1
        )
        cfg = BuildConfig(
            name="doomed",
            question_set_id=train.id or 0,
            kinds=["neutral"],
            teacher_model_id=dead.id,
        )
        dataset_id = service.start_build(session, cfg).id
    run_worker(concurrency=1, burst=True, engine=committed_db)
    with session_scope(committed_db) as session:
        dataset = session.get(SdiDataset, dataset_id)
        assert dataset is not None
        # Every teacher call failed: nothing survived, and the dataset says why.
        assert dataset.status == "failed"
        assert "no example survived" in dataset.stats["error"]
        assert "teacher call failed" in dataset.stats["error"]
