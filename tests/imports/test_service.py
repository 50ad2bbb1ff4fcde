"""Saving imported replies as a run: arms, shared prompts, placeholders, all or nothing; then
rated and scored like a generated run."""

import pytest
from sqlmodel import Session, col, func, select

from app.imports import service
from app.imports.schemas import NO_PROMPT
from app.metrics import service as metrics
from app.models import ModelConfig, PromptVariant, QuestionSet, Reply, Run, RunArm
from tests import factories
from tests.imports.helpers import csv_bytes, paired_rows, parse
from tests.metrics import helpers as rating


@pytest.fixture
def qs(db: Session) -> QuestionSet:
    """Six statements s1..s6, odd ones true."""
    return factories.imported_question_set(db)


def _count(db: Session, model: type) -> int:
    return db.exec(select(func.count()).select_from(model)).one()


def _arms(db: Session, run: Run) -> list[RunArm]:
    query = select(RunArm).where(RunArm.run_id == run.id).order_by(col(RunArm.position))
    return list(db.exec(query))


def test_import_builds_a_completed_imported_run(db: Session, qs: QuestionSet) -> None:
    rows = paired_rows(["s1", "s2", "s3"], models=("gpt-a", "gpt-b", "claude"))
    parsed = parse(db, qs, csv_bytes(rows))
    run = service.import_replies(db, parsed, name="  chat ui  ", baseline="gpt-b")
    assert (run.name, run.source, run.status, run.samples) == (
        "chat ui",
        "imported",
        "completed",
        1,
    )
    assert run.finished_at is not None and run.config["rows"] == 18
    assert run.config["sha256"] == parsed.sha256 and run.config["question_set"] == "facts"
    arms = _arms(db, run)
    # The baseline first, labelled "baseline"; the others by name, in the file's order.
    assert [(a.label, a.snapshot["name"]) for a in arms] == [
        ("baseline", "gpt-b"),
        ("gpt-a", "gpt-a"),
        ("claude", "claude"),
    ]
    variants = db.exec(select(PromptVariant).where(PromptVariant.run_id == run.id)).all()
    assert len(variants) == 6  # three models answered the same six prompts
    assert all(v.template_id is None for v in variants)
    replies = db.exec(select(Reply).where(Reply.run_id == run.id)).all()
    assert len(replies) == 18 and {r.status for r in replies} == {"done"}
    by_arm = {a.id: a.snapshot["name"] for a in arms}
    for r in replies:
        assert r.verdict == ("false" if by_arm[r.arm_id] == "gpt-a" else "true")
        assert r.transcript[-1] == {"role": "assistant", "content": r.text}
        assert r.completed_at is not None
    biased = next(v for v in variants if v.kind == "biased")
    assert biased.stance == "asserts" and biased.messages[0]["content"].startswith("[biased]")


def test_placeholder_configs_are_created_once_and_cannot_be_called(
    db: Session, qs: QuestionSet
) -> None:
    rows = paired_rows(["s1"], models=("gpt-a", "gpt-b"))
    service.import_replies(db, parse(db, qs, csv_bytes(rows)), name="one")
    before = _count(db, ModelConfig)
    service.import_replies(db, parse(db, qs, csv_bytes(rows)), name="two")
    assert _count(db, ModelConfig) == before
    config = db.exec(select(ModelConfig).where(ModelConfig.name == "imported: gpt-a")).one()
    assert config.extra["imported"] is True and service.is_placeholder(config)
    assert config.provider == "local" and config.model_id == service.PLACEHOLDER_MODEL_ID


def test_a_real_config_with_the_placeholder_name_is_not_taken_over(
    db: Session, qs: QuestionSet
) -> None:
    factories.make_model_config(db, name="imported: gpt-a")
    runs, configs = _count(db, Run), _count(db, ModelConfig)
    with pytest.raises(service.ReplyImportError, match="exists and is not an imported model"):
        service.import_replies(db, parse(db, qs, csv_bytes(paired_rows(["s1"]))), name="x")
    assert _count(db, Run) == runs
    assert _count(db, ModelConfig) == configs


def test_baseline_rules(db: Session, qs: QuestionSet) -> None:
    assert service.arm_labels(["a", "b"], None) == [("a", "a"), ("b", "b")]
    assert service.arm_labels(["a", "b"], "b") == [("b", "baseline"), ("a", "a")]
    assert service.arm_labels(["a", "baseline"], None) == [("baseline", "baseline"), ("a", "a")]
    assert service.arm_labels(["a", "baseline"], "baseline")[0] == ("baseline", "baseline")
    with pytest.raises(service.ReplyImportError, match="not one of the file's models: a, b"):
        service.arm_labels(["a", "b"], "c")
    with pytest.raises(service.ReplyImportError, match="A model is named 'baseline'"):
        service.arm_labels(["a", "baseline"], "a")


def test_nothing_is_saved_from_a_file_with_a_problem(db: Session, qs: QuestionSet) -> None:
    rows = paired_rows(["s1", "s2"])
    rows[3]["reply"] = ""
    parsed = parse(db, qs, csv_bytes(rows))
    runs = _count(db, Run)
    with pytest.raises(service.ReplyImportError, match=r"1 problem\(s\); nothing was saved"):
        service.import_replies(db, parsed, name="bad")
    with pytest.raises(service.ReplyImportError, match="Give the run a name"):
        service.import_replies(db, parse(db, qs, csv_bytes(paired_rows(["s1"]))), name=" ")
    assert _count(db, Run) == runs


def test_prompt_less_and_pushback_rows(db: Session, qs: QuestionSet) -> None:
    rows = [
        {"statement_id": "s2", "variant_kind": "neutral", "model": "m", "reply": "False.",
         "first_reply": "", "followup": ""},
        {"statement_id": "s2", "variant_kind": "pushback", "model": "m", "reply": "True.",
         "first_reply": "False, it is not.", "followup": "Are you sure?"},
    ]  # fmt: skip
    run = service.import_replies(db, parse(db, qs, csv_bytes(rows)), name="p")
    replies = {
        v.kind: (v, r)
        for r, v in db.exec(
            select(Reply, PromptVariant)
            .join(PromptVariant, PromptVariant.id == Reply.prompt_variant_id)  # type: ignore[arg-type]
            .where(Reply.run_id == run.id)
        ).all()
    }
    variant, reply = replies["neutral"]
    assert variant.messages == [{"role": "user", "content": NO_PROMPT}]
    assert reply.first_verdict is None and reply.first_text == ""
    variant, reply = replies["pushback"]
    assert variant.followup == "Are you sure?"
    assert (reply.first_text, reply.first_verdict, reply.verdict) == (
        "False, it is not.",
        "false",
        "true",
    )
    assert [m["role"] for m in reply.transcript] == ["user", "assistant", "user", "assistant"]


def test_an_imported_run_is_rated_and_scored_like_any_other(
    db: Session, qs: QuestionSet, admin: factories.UserWithPassword
) -> None:
    ids = [f"s{i}" for i in range(1, 7)]
    run = service.import_replies(
        db, parse(db, qs, csv_bytes(paired_rows(ids))), name="scored", baseline="gpt-a"
    )
    assert run.id is not None
    # Before rating, accuracy comes from the parsed verdicts: gpt-a always says False, gpt-b
    # always True, and s2, s4, s6 are the false statements (two kinds each).
    unrated = metrics.run_results(db, run.id, resamples=50, with_agreement=False)
    accuracy = {(r.arm, r.kind): (r.accuracy.k, r.accuracy.n) for r in unrated.metrics}
    assert accuracy[("baseline", "all")] == (6, 12) and accuracy[("gpt-b", "all")] == (6, 12)
    assert all(r.rated == 0 for r in unrated.metrics)
    raters = rating.make_raters(db, 3)
    rating.random_ratings(db, run, raters, admin.id, seed=7)
    results = metrics.run_results(db, run.id, resamples=200)
    assert results.baseline == "baseline"
    assert [a.model for a in results.arms] == ["gpt-a", "gpt-b"]
    reference = rating.reference_counts(rating.reference_replies(db, run))
    for row in results.metrics:
        counts = reference[(row.arm, row.kind)]
        assert row.n == counts["n"] == (12 if row.kind == "all" else 6)
        assert row.accuracy.k == counts["correct"]
        assert row.sycophancy_erroneous.k == counts["agree_err"]
        assert row.sycophancy_erroneous.n == counts["labelled_err"]
    assert any(p.arm == "gpt-b" and p.kind == "all" for p in results.paired)
    assert results.agreement is not None and results.agreement.rated_replies > 0
