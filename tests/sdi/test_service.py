"""Building, storing and exporting SDI datasets from question sets in the database."""

import json

import pytest
from sqlmodel import Session, select

from app.model_configs.service import build_spec
from app.models import SdiExample
from app.sdi import inputs, service
from app.sdi.generation import claim_truth
from app.sdi.openai_format import validate_text
from app.sdi.pipeline import LeakageError
from app.sdi.schemas import BuildConfig
from app.verdicts import parse_verdict
from tests import factories
from tests.sdi.helpers import STATEMENTS, TEST_ROWS


def _cfg(set_id: int, name: str, **extra: object) -> BuildConfig:
    return BuildConfig.model_validate(
        {"name": name, "question_set_id": set_id, "seed": 11, "size": 220, **extra}
    )


def test_building_twice_with_a_seed_gives_the_same_bytes(db: Session) -> None:
    train = factories.make_question_set(db, name="train", rows=STATEMENTS)
    test = factories.make_question_set(db, name="test", rows=TEST_ROWS)
    one = service.build_dataset(db, _cfg(train.id, "a", test_set_id=test.id))
    two = service.build_dataset(db, _cfg(train.id, "b", test_set_id=test.id))
    for fmt in ("openai", "hf"):
        for split in ("train", "validation"):
            a = service.export_text(db, one.id, fmt, split).encode()
            b = service.export_text(db, two.id, fmt, split).encode()
            assert a == b
    assert one.stats == two.stats
    assert one.status == "ready"
    counts = {row["count"] for row in one.stats["cells"]}
    assert len(counts) == 1  # balanced across truth x stance x kind


def test_examples_are_stored_with_labels_and_consistent_replies(db: Session) -> None:
    train = factories.make_question_set(db, name="train", rows=STATEMENTS)
    dataset = service.build_dataset(db, _cfg(train.id, "a"))
    examples = db.exec(select(SdiExample).where(SdiExample.dataset_id == dataset.id)).all()
    assert len(examples) == dataset.stats["examples"]
    assert {e.split for e in examples} == {"train", "validation"}
    for example in examples:
        assert example.question_id is not None
        reply = next(m["content"] for m in example.messages if m["role"] == "assistant")
        assert example.truth is not None
        wanted = "true" if claim_truth(example.stance, example.truth) else "false"
        assert parse_verdict(reply) == wanted


def test_training_set_must_not_be_the_test_set(db: Session) -> None:
    train = factories.make_question_set(db, name="train", rows=STATEMENTS)
    with pytest.raises(service.SdiError, match="must not be the test set"):
        service.build_dataset(db, _cfg(train.id, "a", test_set_id=train.id))


def test_a_planted_test_statement_is_refused_or_removed(db: Session) -> None:
    train = factories.make_question_set(db, name="train", rows=STATEMENTS)
    planted = [*TEST_ROWS, ("Spiders are insects", False, "Spiders aren't insects.", "x", "")]
    test = factories.make_question_set(db, name="test", rows=planted)
    with pytest.raises(LeakageError, match="Spiders are insects"):
        service.build_dataset(db, _cfg(train.id, "a", test_set_id=test.id))
    assert service.get_by_name(db, "a") is None  # nothing half-saved
    dataset = service.build_dataset(db, _cfg(train.id, "a", test_set_id=test.id, leakage="remove"))
    text = service.export_text(db, dataset.id, "openai", None)
    assert "pider" not in text
    leak_stage = next(s for s in dataset.stats["stages"] if s["name"].startswith("leakage"))
    assert leak_stage["details"]["leaking_statements"][0]["train"] == "Spiders are insects."


def test_exports_pass_the_validator_and_load_as_json(db: Session) -> None:
    train = factories.make_question_set(db, name="train", rows=STATEMENTS)
    dataset = service.build_dataset(db, _cfg(train.id, "a", validation_fraction=0.0))
    openai_text = service.export_text(db, dataset.id, "openai", "train")
    assert validate_text(openai_text).ok
    hf_lines = service.export_text(db, dataset.id, "hf", "train").splitlines()
    assert len(hf_lines) == dataset.stats["splits"]["train"]
    for line in hf_lines:
        record = json.loads(line)
        assert record["messages"][-1]["role"] == "assistant"
        assert record["kind"] and record["stance"]


def test_general_data_is_stored_for_rebuilds(db: Session) -> None:
    train = factories.make_question_set(db, name="train", rows=STATEMENTS)
    general = "".join(
        json.dumps(
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        )
        + "\n"
        for q, a in [("Name a colour.", "Blue."), ("Say hello in Spanish.", "Hola.")]
    )
    dataset = service.build_dataset(db, _cfg(train.id, "a"), general_jsonl=general)
    assert dataset.config["general_data"]["examples"] == 2
    origins = [
        e.origin for e in db.exec(select(SdiExample).where(SdiExample.dataset_id == dataset.id))
    ]
    assert origins.count("general") == 2
    with pytest.raises(service.GeneralDataError, match="line 1"):
        service.build_dataset(db, _cfg(train.id, "b"), general_jsonl="{}\n")


def test_filtration_uses_a_finished_neutral_run(db: Session) -> None:
    train = factories.make_question_set(db, name="train", rows=STATEMENTS)
    # Every neutral reply says "False.": the true statements are answered wrongly.
    run = factories.make_run(db, train, reply="False. No.", kinds=(("neutral", "none"),))
    dataset = service.build_dataset(db, _cfg(train.id, "a", filtration_run_id=run.id))
    truths = {
        e.truth for e in db.exec(select(SdiExample).where(SdiExample.dataset_id == dataset.id))
    }
    assert truths == {False}
    unfinished = factories.make_run(db, train, status="running")
    with pytest.raises(service.SdiError, match="not finished"):
        service.build_dataset(db, _cfg(train.id, "b", filtration_run_id=unfinished.id))


def test_in_context_model_copies_the_base_and_draws_shots(db: Session) -> None:
    train = factories.make_question_set(db, name="train", rows=STATEMENTS)
    dataset = service.build_dataset(db, _cfg(train.id, "a"))
    base = factories.make_model_config(db, temperature=0.3, max_tokens=77, seed=5)
    sdi = service.create_in_context_model(
        db, base=base, dataset=dataset, shots=4, seed=2, name="base+sdi"
    )
    assert (sdi.provider, sdi.model_id, sdi.temperature, sdi.max_tokens, sdi.seed) == (
        base.provider,
        base.model_id,
        0.3,
        77,
        5,
    )
    assert (sdi.sdi_mode, sdi.sdi_dataset_id, sdi.sdi_shots, sdi.sdi_seed) == (
        "in_context",
        dataset.id,
        4,
        2,
    )
    assert "factual" in sdi.system_prompt
    spec = build_spec(db, sdi)
    assistant_turns = [m for m in spec.prefix_messages if m["role"] == "assistant"]
    assert len(assistant_turns) >= 4
    with pytest.raises(service.SdiError, match="already exists"):
        service.create_in_context_model(
            db, base=base, dataset=dataset, shots=4, seed=2, name="base+sdi"
        )


def test_duplicate_dataset_name_is_refused(db: Session) -> None:
    train = factories.make_question_set(db, name="train", rows=STATEMENTS)
    service.build_dataset(db, _cfg(train.id, "a", size=30))
    with pytest.raises(service.SdiError, match="already exists"):
        service.build_dataset(db, _cfg(train.id, "a", size=30))


def _drop_a_letter(text: str) -> str:
    middle = next(i for i in range(len(text) // 2, len(text)) if text[i].isalpha())
    return text[:middle] + text[middle + 1 :]


def test_the_shipped_seed_set_builds_reproducibly_and_balanced(db: Session) -> None:
    from app.questions.service import seed_question_set
    from app.variants.service import seed_templates

    seed = seed_question_set(db)
    assert seed is not None and seed.id is not None
    seed_templates(db)
    cfg = {"question_set_id": seed.id, "seed": 2024, "size": 660}
    one = service.build_dataset(db, BuildConfig(name="seed-a", **cfg))  # type: ignore[arg-type]
    two = service.build_dataset(db, BuildConfig(name="seed-b", **cfg))  # type: ignore[arg-type]
    for split in ("train", "validation"):
        a = service.export_text(db, one.id or 0, "openai", split).encode()
        assert a == service.export_text(db, two.id or 0, "openai", split).encode()
    assert validate_text(service.export_text(db, one.id or 0, "openai", "train")).ok
    cells = one.stats["cells"]
    assert len(cells) == 22 and len({c["count"] for c in cells}) == 1
    assert one.stats["examples"] == 660
    # A test set with one seed statement copied and another slightly reworded.
    statements = [q.statement for q in inputs.load_questions(db, seed.id)]
    planted = factories.make_question_set(
        db,
        name="planted",
        rows=[
            (statements[10], True, "", "x", ""),
            (_drop_a_letter(statements[20]), True, "", "x", ""),
            *TEST_ROWS,
        ],
    )
    with pytest.raises(LeakageError) as info:
        service.build_dataset(
            db,
            BuildConfig(name="seed-c", test_set_id=planted.id, **cfg),  # type: ignore[arg-type]
        )
    found = {leak.train_statement: leak.exact for leak in info.value.leaks}
    assert found == {statements[10]: True, statements[20]: False}
