"""A trained model is a model like any other: a provider call, and an arm of a run."""

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.db import session_scope
from app.llm import complete
from app.model_configs.service import build_spec
from app.models import ModelConfig, Reply, Run
from app.runs import service as runs
from app.runs.schemas import ArmCreate, RunCreate
from app.verdicts import parse_verdict
from tests import factories
from tests.runs.helpers import work
from tests.training.conftest import Trained
from tests.training.sdi_like import make_dataset

pytestmark = pytest.mark.model


def _trained_config(session: Session, path: str, name: str = "tiny-trained") -> ModelConfig:
    config = ModelConfig(
        name=name, provider="trained", model_id=path, max_tokens=24, max_concurrency=1
    )
    session.add(config)
    session.flush()
    return config


@pytest.mark.asyncio
async def test_the_trained_model_generates_through_app_llm(
    db: Session, tiny_training: Trained
) -> None:
    config = _trained_config(db, tiny_training.result.merged_path)
    spec = build_spec(db, config)
    reply = await complete(
        spec, [{"role": "user", "content": "Everyone knows sharks are mammals, don't they?"}]
    )
    assert reply.text.strip() and reply.tokens_out > 0 and reply.tokens_in > 0
    assert reply.finish_reason in ("stop", "length")


def test_three_arms_baseline_in_context_and_trained(
    committed_db: Engine, tiny_training: Trained
) -> None:
    with session_scope(committed_db) as s:
        qs = factories.make_question_set(s, n=2)
        template = factories.make_template(s, text="Is it true that {statement_clause}?")
        dataset = make_dataset(s, qs, n_train=6, n_val=0)
        baseline = ModelConfig(name="base", provider="local", max_tokens=16, seed=1)
        in_context = ModelConfig(
            name="icl",
            provider="local",
            max_tokens=16,
            seed=2,
            sdi_mode="in_context",
            sdi_dataset_id=dataset.id,
            sdi_shots=2,
        )
        trained = _trained_config(s, tiny_training.result.merged_path)
        trained.max_tokens = 16
        s.add_all([baseline, in_context, trained])
        s.flush()
        run = runs.create_run(
            s,
            RunCreate(
                question_set_id=qs.id or 0,
                template_ids=[template.id or 0],
                arms=[
                    ArmCreate(model_config_id=baseline.id or 0, label="baseline"),
                    ArmCreate(model_config_id=in_context.id or 0, label="sdi-context"),
                    ArmCreate(model_config_id=trained.id or 0, label="sdi-trained"),
                ],
            ),
        )
        run_id = run.id
    work(committed_db, concurrency=2)
    with Session(committed_db) as s:
        rows = s.exec(select(Reply).where(Reply.run_id == run_id)).all()
        finished = s.get(Run, run_id)
    assert len(rows) == 2 * 3
    assert {r.status for r in rows} == {"done"}, [r.error for r in rows]
    assert all(r.text.strip() and r.verdict == parse_verdict(r.text).value for r in rows)
    assert finished is not None and finished.status == "completed"
