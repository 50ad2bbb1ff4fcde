"""The /models admin pages, each requested as a plain browser and as HTMX."""

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.model_configs import service
from tests import factories
from tests.html import find
from tests.loopback.server import LoopbackServer

SECRET = "sk-page-canary-0d9e8f7a6b"


def form(**fields: str) -> dict[str, str]:
    values = {
        "name": "gpt-test",
        "provider": "openai",
        "model_id": "gpt-4o-mini",
        "base_url": "",
        "api_key_env": "SDILAB_PAGE_KEY",
        "temperature": "0.2",
        "top_p": "1",
        "max_tokens": "64",
        "seed": "5",
        "timeout_s": "30",
        "system_prompt": "",
        "price_input_per_1k": "0.15",
        "price_output_per_1k": "0.6",
        "max_concurrency": "8",
        "sdi_mode": "none",
        "sdi_dataset_id": "",
        "sdi_shots": "0",
        "sdi_seed": "0",
        "fine_tuned_model_id": "",
    }
    values.update(fields)
    return values


def test_pages_need_an_admin(rater_client: TestClient) -> None:
    assert rater_client.get("/models").status_code == 403


def test_list_shows_key_variable_and_status_never_the_value(
    admin_client: TestClient,
    db: Session,
    htmx_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SDILAB_PAGE_KEY", SECRET)
    factories.make_model_config(db, name="with-key", api_key_env="SDILAB_PAGE_KEY")
    factories.make_model_config(db, name="missing-key", api_key_env="SDILAB_UNSET_KEY_XYZ")
    response = admin_client.get("/models", headers=htmx_headers)
    assert response.status_code == 200
    assert SECRET not in response.text
    assert ("<html" in response.text) is not bool(htmx_headers)
    rows = {row.attrs["id"]: row.text for row in find(response.text, "tr") if "id" in row.attrs}
    texts = list(rows.values())
    with_key = next(t for t in texts if "with-key" in t)
    missing = next(t for t in texts if "missing-key" in t)
    assert "SDILAB_PAGE_KEY" in with_key and "not set" not in with_key and "set" in with_key
    assert "SDILAB_UNSET_KEY_XYZ" in missing and "not set" in missing


def test_create_through_the_form(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    page = admin_client.get("/models/new", headers=htmx_headers)
    assert page.status_code == 200
    assert find(page.text, "form", action="/models/new")
    response = admin_client.post(
        "/models/new", data=form(), headers=htmx_headers, follow_redirects=False
    )
    if htmx_headers:
        assert response.headers["HX-Redirect"] == "/models"
    else:
        assert response.status_code == 303
        assert response.headers["location"] == "/models"
    config = service.get_by_name(db, "gpt-test")
    assert config is not None
    assert (config.model_id, config.seed, config.max_concurrency) == ("gpt-4o-mini", 5, 8)
    assert config.price_output_per_1k == 0.6


def test_blank_seed_means_no_seed(admin_client: TestClient, db: Session) -> None:
    admin_client.post("/models/new", data=form(name="no-seed", seed=""))
    config = service.get_by_name(db, "no-seed")
    assert config is not None and config.seed is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model_id": ""}, "needs a model id"),
        ({"base_url": "file:///etc/passwd"}, "http"),
        ({"api_key_env": "sk-live-123 456"}, "NAME"),
        ({"temperature": "hot"}, "temperature"),
    ],
)
def test_invalid_form_is_shown_again_with_the_error(
    admin_client: TestClient,
    db: Session,
    htmx_headers: dict[str, str],
    fields: dict[str, str],
    message: str,
) -> None:
    response = admin_client.post("/models/new", data=form(**fields), headers=htmx_headers)
    assert response.status_code == 422
    [alert] = find(response.text, "p", role="alert")
    assert message in alert.text
    assert find(response.text, "input", name="name", value="gpt-test")
    assert service.get_by_name(db, "gpt-test") is None


def test_duplicate_name_is_refused(admin_client: TestClient, db: Session) -> None:
    factories.make_model_config(db, name="gpt-test")
    response = admin_client.post("/models/new", data=form())
    assert response.status_code == 422
    assert "already exists" in response.text


def test_edit(admin_client: TestClient, db: Session, htmx_headers: dict[str, str]) -> None:
    config = factories.make_model_config(db, name="editable")
    page = admin_client.get(f"/models/{config.id}/edit", headers=htmx_headers)
    assert page.status_code == 200
    assert find(page.text, "input", name="name", value="editable")
    response = admin_client.post(
        f"/models/{config.id}/edit",
        data=form(name="edited", temperature="0.9"),
        headers=htmx_headers,
        follow_redirects=False,
    )
    assert response.status_code in (200, 303)
    db.refresh(config)
    assert (config.name, config.temperature) == ("edited", 0.9)


def test_missing_model_is_404(admin_client: TestClient) -> None:
    assert admin_client.get("/models/999999/edit").status_code == 404


def test_delete_unused_but_not_used(admin_client: TestClient, db: Session) -> None:
    unused = factories.make_model_config(db, name="unused")
    response = admin_client.post(f"/models/{unused.id}/delete", follow_redirects=False)
    assert response.status_code == 303
    assert service.get_by_name(db, "unused") is None

    run = factories.make_run(db, arms=("baseline",))
    [used] = [c for c in service.list_model_configs(db) if service.usage_count(db, c)]
    page = admin_client.get("/models")
    row = find(page.text, "tr", id=f"model-{used.id}")[0]
    assert "Delete" not in row.text
    response = admin_client.post(f"/models/{used.id}/delete")
    assert response.status_code == 409
    assert "used by a run" in response.text
    assert service.get(db, used.id) is not None
    assert run.id is not None


def test_test_button_calls_the_model(
    admin_client: TestClient,
    db: Session,
    htmx_headers: dict[str, str],
    loopback_server: LoopbackServer,
) -> None:
    config = factories.make_model_config(
        db, name="loop", base_url=loopback_server.base_url, api_key_env=""
    )
    response = admin_client.post(f"/models/{config.id}/test", headers=htmx_headers)
    assert response.status_code == 200
    assert ("<html" in response.text) is not bool(htmx_headers)
    [reply] = find(response.text, "blockquote")
    assert reply.text.startswith(("True.", "False."))
    assert loopback_server.requests()[0]["max_tokens"] == service.TEST_MAX_TOKENS


def test_test_button_reports_errors_without_the_key(
    admin_client: TestClient,
    db: Session,
    loopback_server: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SDILAB_PAGE_KEY", SECRET)
    loopback_server.configure(api_key="sk-another")
    config = factories.make_model_config(
        db, name="loop", base_url=loopback_server.base_url, api_key_env="SDILAB_PAGE_KEY"
    )
    response = admin_client.post(f"/models/{config.id}/test", headers={"HX-Request": "true"})
    [alert] = find(response.text, "p", role="alert")
    assert "401" in alert.text
    assert SECRET not in response.text
