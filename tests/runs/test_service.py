"""create_run and the run controls, on the rolled-back test session."""

import pytest
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.models import Job, PromptVariant, Reply, RunArm, VariantTemplate
from app.runs import progress as runs_progress
from app.runs import service
from app.runs.schemas import ArmCreate, RunCreate
from tests import factories


def _create(db: Session, **fields: object) -> tuple[service.Run, list[VariantTemplate]]:
    qs = fields.pop("qs", None) or factories.make_question_set(db, n=10)
    templates = [
        factories.make_template(db, text="Is it true that {statement_clause}?"),
        factories.make_template(
            db, kind="pushback", text="Is {statement_clause}?", followup="Are you sure?"
        ),
    ]
    base = factories.make_model_config(db, temperature=0.7, max_concurrency=3)
    sdi = factories.make_model_config(db, system_prompt="Be factual.")
    data = RunCreate(
        question_set_id=qs.id or 0,  # type: ignore[union-attr]
        template_ids=[t.id or 0 for t in templates],
        arms=[
            ArmCreate(model_config_id=base.id or 0, label="baseline"),
            ArmCreate(model_config_id=sdi.id or 0, label="sdi"),
        ],
        **fields,  # type: ignore[arg-type]
    )
    return service.create_run(db, data), templates


def test_create_run_renders_freezes_and_enqueues(db: Session) -> None:
    run, templates = _create(db, samples=2, seed=3)
    variants = db.exec(select(PromptVariant).where(PromptVariant.run_id == run.id)).all()
    assert len(variants) == 10 * 2
    pushback = [v for v in variants if v.kind == "pushback"]
    assert all(v.followup == "Are you sure?" for v in pushback)
    assert all(v.messages[0]["role"] == "user" and v.messages[0]["content"] for v in variants)
    slots = db.exec(select(Reply).where(Reply.run_id == run.id)).all()
    assert len(slots) == 20 * 2 * 2 and {s.status for s in slots} == {"pending"}
    arms = db.exec(select(RunArm).where(RunArm.run_id == run.id).order_by(RunArm.position)).all()
    assert arms[0].snapshot["temperature"] == 0.7 and arms[0].snapshot["max_concurrency"] == 3
    assert arms[1].snapshot["system_prompt"] == "Be factual."
    assert [t["id"] for t in run.config["templates"]] == [t.id for t in templates]
    assert run.config["arms"][1]["spec"]["system_prompt"] == "Be factual."
    assert len(run.config["question_ids"]) == 10 and run.config["seed"] == 3
    jobs = db.exec(select(Job).where(Job.group_key == f"run:{run.id}")).all()
    assert len(jobs) == len(slots)
    by_slot = {j.args["reply_id"]: j for j in jobs}
    for slot in slots:
        job = by_slot[slot.id]
        arm = arms[0] if slot.arm_id == arms[0].id else arms[1]
        assert job.task == "runs.generate" and job.lock_key == f"reply:{slot.id}"
        assert job.concurrency_key == f"model:{arm.model_config_id}"
        assert job.concurrency_limit == arm.snapshot["max_concurrency"]


def test_a_slot_cannot_exist_twice(db: Session) -> None:
    run, _ = _create(db)
    slot = db.exec(select(Reply).where(Reply.run_id == run.id)).first()
    assert slot is not None
    db.add(
        Reply(
            run_id=run.id,
            prompt_variant_id=slot.prompt_variant_id,
            arm_id=slot.arm_id,
            sample_index=slot.sample_index,
        )
    )
    with pytest.raises(IntegrityError):
        db.flush()


def test_seeded_subset_is_reproducible(db: Session) -> None:
    qs = factories.make_question_set(db, n=30)
    first, _ = _create(db, qs=qs, limit=7, seed=11)
    again, _ = _create(db, qs=qs, limit=7, seed=11)
    other, _ = _create(db, qs=qs, limit=7, seed=12)
    ids = first.config["question_ids"]
    assert len(ids) == 7 and ids == again.config["question_ids"]
    assert ids != other.config["question_ids"]


def test_default_templates_are_the_active_ones(db: Session) -> None:
    qs = factories.make_question_set(db, n=2)
    active = factories.make_template(db)
    inactive = factories.make_template(db, kind="biased", stance="asserts")
    inactive.is_active = False
    db.add(inactive)
    model = factories.make_model_config(db)
    run = service.create_run(
        db,
        RunCreate(
            question_set_id=qs.id or 0, arms=[ArmCreate(model_config_id=model.id or 0, label="a")]
        ),
    )
    used = {t["id"] for t in run.config["templates"]}
    assert active.id in used and inactive.id not in used


def test_invalid_requests(db: Session) -> None:
    model = factories.make_model_config(db)
    with pytest.raises(ValidationError):
        RunCreate(question_set_id=1, arms=[])
    with pytest.raises(ValidationError, match="distinct"):
        RunCreate(
            question_set_id=1,
            arms=[
                ArmCreate(model_config_id=1, label="x"),
                ArmCreate(model_config_id=2, label="x"),
            ],
        )
    with pytest.raises(service.RunError, match="does not exist"):
        service.create_run(
            db,
            RunCreate(
                question_set_id=999999, arms=[ArmCreate(model_config_id=model.id or 0, label="a")]
            ),
        )
    qs = factories.make_question_set(db, n=1)
    with pytest.raises(service.RunError, match="unknown template"):
        service.create_run(
            db,
            RunCreate(
                question_set_id=qs.id or 0,
                template_ids=[999999],
                arms=[ArmCreate(model_config_id=model.id or 0, label="a")],
            ),
        )


def test_progress_counts_and_cancelled_runs_need_resuming(db: Session) -> None:
    run, _ = _create(db)
    slots = db.exec(select(Reply).where(Reply.run_id == run.id)).all()
    for slot in slots[:5]:
        slot.status, slot.tokens_in, slot.tokens_out, slot.cost_usd = "done", 10, 3, 0.5
    slots[5].status, slots[5].error = "failed", "boom"
    slots[6].error = "HTTP 429: slow down"
    db.flush()
    progress = runs_progress.progress_of(db, run)
    assert (progress.total, progress.done, progress.failed, progress.pending) == (40, 5, 1, 34)
    assert progress.retrying == 1 and progress.tokens_in == 50 and progress.cost_usd == 2.5
    assert sum(a.done for a in progress.arms) == 5
    service.cancel_run(db, run)
    with pytest.raises(service.RunError, match="resume it first"):
        service.retry_failed(db, run)
    service.resume_run(db, run)
    assert service.retry_failed(db, run) == 1 and run.status == "running"
