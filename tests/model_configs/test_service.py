"""Model config service: validation, create/edit/delete, and freezing into a ModelSpec."""

import pytest
from pydantic import ValidationError
from sqlmodel import Session

from app.model_configs import service
from app.model_configs.schemas import ModelConfigCreate, ModelConfigUpdate
from app.models import SdiDataset, SdiExample
from tests import factories


def create(session: Session, **fields: object) -> service.ModelConfig:
    values: dict[str, object] = {"name": "m1", "provider": "openai", "model_id": "gpt-x"}
    values.update(fields)
    return service.create_model_config(session, ModelConfigCreate.model_validate(values))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"provider": "openai", "model_id": ""}, "needs a model id"),
        ({"base_url": "ftp://example.org"}, "http"),
        ({"base_url": "example.org/v1"}, "http"),
        ({"api_key_env": "sk-abc123 secret"}, "NAME"),
        ({"provider": "anthropic"}, "provider"),
        ({"temperature": 3}, "temperature"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"sdi_mode": "in_context"}, "dataset"),
        ({"sdi_mode": "fine_tuned"}, "fine-tuned"),
    ],
)
def test_invalid_configs_are_refused(fields: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"name": "m", "provider": "openai", "model_id": "gpt-x"}
    values.update(fields)
    with pytest.raises(ValidationError, match=message):
        ModelConfigCreate.model_validate(values)


def test_local_needs_no_model_id_and_url_is_trimmed() -> None:
    assert ModelConfigCreate(name="l", provider="local").model_id == ""
    data = ModelConfigCreate.model_validate(
        {"name": "o", "provider": "openai", "model_id": "x", "base_url": "http://h:1/v1/"}
    )
    assert data.base_url == "http://h:1/v1"


def test_create_get_list_and_duplicate_names(db: Session) -> None:
    config = create(db, name="zeta")
    create(db, name="alpha", provider="local", model_id="")
    assert service.get_by_name(db, "zeta") == config
    assert service.get_by_name(db, "nope") is None
    names = [c.name for c in service.list_model_configs(db)]
    assert names.index("alpha") < names.index("zeta")
    with pytest.raises(service.ModelConfigError, match="already exists"):
        create(db, name="zeta")


def test_update_and_rename_checks_other_names(db: Session) -> None:
    config = create(db, name="one")
    create(db, name="two")
    values = {"name": "one", "provider": "openai", "model_id": "gpt-y", "temperature": 0.4}
    service.update_model_config(db, config, ModelConfigUpdate.model_validate(values))
    assert (config.model_id, config.temperature) == ("gpt-y", 0.4)
    with pytest.raises(service.ModelConfigError):
        service.update_model_config(
            db, config, ModelConfigUpdate.model_validate(values | {"name": "two"})
        )


def test_delete_only_when_unused(db: Session) -> None:
    unused = create(db, name="unused")
    service.delete_model_config(db, unused)
    assert service.get_by_name(db, "unused") is None
    run = factories.make_run(db, arms=("baseline",))
    used = service.get(db, run.id and _arm_config_id(db, run.id))
    assert used is not None
    assert service.usage_count(db, used) == 1
    with pytest.raises(service.ModelConfigError, match="used by a run"):
        service.delete_model_config(db, used)


def _arm_config_id(db: Session, run_id: int) -> int:
    from sqlmodel import select

    from app.models import RunArm

    arm = db.exec(select(RunArm).where(RunArm.run_id == run_id)).one()
    return arm.model_config_id


def test_build_spec_copies_settings(db: Session) -> None:
    config = create(
        db,
        name="full",
        base_url="http://h/v1",
        api_key_env="MY_KEY",
        temperature=0.3,
        max_tokens=50,
        top_p=0.8,
        seed=None,
        system_prompt="Be honest.",
        price_input_per_1k=0.1,
        price_output_per_1k=0.2,
        timeout_s=9,
    )
    spec = service.build_spec(db, config)
    assert spec.model_dump(exclude={"extra", "prefix_messages"}) == {
        "name": "full",
        "provider": "openai",
        "model_id": "gpt-x",
        "base_url": "http://h/v1",
        "api_key_env": "MY_KEY",
        "temperature": 0.3,
        "max_tokens": 50,
        "top_p": 0.8,
        "seed": None,
        "system_prompt": "Be honest.",
        "timeout_s": 9.0,
        "price_input_per_1k": 0.1,
        "price_output_per_1k": 0.2,
    }
    assert spec.prefix_messages == ()


def make_dataset(db: Session, n_train: int = 8, n_test: int = 3) -> SdiDataset:
    question_set = factories.make_question_set(db, n=2)
    dataset = SdiDataset(name=f"sdi-{question_set.id}", question_set_id=question_set.id)
    db.add(dataset)
    db.flush()
    # Positions inserted out of order: the choice must not depend on insertion order.
    positions = list(range(n_train + n_test))
    positions.reverse()
    for position in positions:
        split = "train" if position < n_train else "test"
        db.add(
            SdiExample(
                dataset_id=dataset.id,
                position=position,
                split=split,
                messages=[
                    {"role": "system", "content": "ignored"},
                    {"role": "user", "content": f"{split} question {position}?"},
                    {"role": "assistant", "content": f"{split} answer {position}."},
                ],
            )
        )
    db.flush()
    return dataset


def test_build_spec_in_context_sdi_is_reproducible(db: Session) -> None:
    dataset = make_dataset(db)
    config = create(
        db, name="sdi", sdi_mode="in_context", sdi_dataset_id=dataset.id, sdi_shots=3, sdi_seed=7
    )
    spec = service.build_spec(db, config)
    assert len(spec.prefix_messages) == 6
    assert [m["role"] for m in spec.prefix_messages] == ["user", "assistant"] * 3
    assert all(m["content"].startswith("train") for m in spec.prefix_messages)
    assert spec.prefix_messages == service.build_spec(db, config).prefix_messages
    # The choice is random.Random(seed) over the train examples in position order.
    import random

    expected = random.Random(7).sample(list(range(8)), 3)
    assert [m["content"] for m in spec.prefix_messages[::2]] == [
        f"train question {p}?" for p in expected
    ]
    config.sdi_seed = 8
    assert service.build_spec(db, config).prefix_messages != spec.prefix_messages


def test_build_spec_in_context_with_more_shots_than_examples(db: Session) -> None:
    dataset = make_dataset(db, n_train=2, n_test=1)
    config = create(db, name="few", sdi_mode="in_context", sdi_dataset_id=dataset.id, sdi_shots=5)
    assert len(service.build_spec(db, config).prefix_messages) == 4


def test_build_spec_fine_tuned_uses_the_fine_tuned_id(db: Session) -> None:
    config = create(db, name="ft", sdi_mode="fine_tuned", fine_tuned_model_id="ft:gpt-x:abc")
    assert service.build_spec(db, config).model_id == "ft:gpt-x:abc"
