"""Model configs made by the replies importer (``imported: <model>``) name no model that can be
called: the run form does not offer them, and a run that names one is refused."""

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.imports import service as imports
from app.model_configs import service as model_configs
from app.models import Job, ModelConfig, Run
from app.runs import service
from app.runs.schemas import ArmCreate, RunCreate
from tests import factories
from tests.html import parse
from tests.imports import helpers


def _placeholders(db: Session) -> list[ModelConfig]:
    """Replies of two models imported the real way: two placeholder configs."""
    qs = factories.imported_question_set(db, n=2)
    parsed = helpers.parse(db, qs, helpers.csv_bytes(helpers.paired_rows(["s1", "s2"])))
    assert parsed.ok, helpers.problems(parsed)
    imports.import_replies(db, parsed, name="elsewhere")
    found = db.exec(
        select(ModelConfig).where(
            ModelConfig.name.startswith(imports.PLACEHOLDER_PREFIX)  # type: ignore[attr-defined]
        )
    ).all()
    assert len(found) == 2 and all(imports.is_placeholder(c) for c in found)
    return list(found)


def _model_choices(html: str) -> set[str]:
    """The option values of the arms' model selects."""
    values: set[str] = set()
    inside = False
    for element in parse(html):
        if element.tag == "select":
            inside = element.attrs.get("name") == "arm_model"
        elif element.tag == "option" and inside and element.attrs["value"]:
            values.add(element.attrs["value"])
    return values


def test_form_offers_callable_models_only(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    placeholders = _placeholders(db)
    real = factories.make_model_config(db, name="callable model")
    page = admin_client.get("/runs/new", headers=htmx_headers)
    assert page.status_code == 200
    assert _model_choices(page.text) == {str(real.id)}
    assert {str(c.id) for c in placeholders}.isdisjoint(_model_choices(page.text))
    assert "imported: " not in page.text
    assert model_configs.callable_model_configs(db) == [real]


def test_posting_a_placeholder_is_refused(admin_client: TestClient, db: Session) -> None:
    placeholder = _placeholders(db)[0]
    qs = factories.make_question_set(db, n=2)
    template = factories.make_template(db)
    real = factories.make_model_config(db)
    db.commit()  # the refused request rolls back what is not committed
    runs_before = len(db.exec(select(Run)).all())
    jobs_before = len(db.exec(select(Job)).all())
    response = admin_client.post(
        "/runs",
        data={
            "question_set_id": str(qs.id),
            "template_ids": [str(template.id)],
            "arm_model": [str(real.id), str(placeholder.id), ""],
            "arm_label": ["baseline", "sdi", ""],
        },
    )
    assert response.status_code == 422
    assert "only holds imported replies" in response.text
    assert len(db.exec(select(Run)).all()) == runs_before
    assert len(db.exec(select(Job)).all()) == jobs_before


def test_service_refuses_a_placeholder_arm(db: Session) -> None:
    placeholder = _placeholders(db)[0]
    qs = factories.make_question_set(db, n=2)
    template = factories.make_template(db)
    with pytest.raises(service.RunError, match="only holds imported replies"):
        service.create_run(
            db,
            RunCreate(
                question_set_id=qs.id or 0,
                template_ids=[template.id or 0],
                arms=[ArmCreate(model_config_id=placeholder.id or 0, label="baseline")],
            ),
        )
