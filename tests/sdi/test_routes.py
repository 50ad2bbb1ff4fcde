"""SDI pages, plain and HTMX: list, build form, dataset page, examples, exports, models."""

import json
from html.parser import HTMLParser

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Job, ModelConfig, SdiDataset
from app.sdi import service
from app.sdi.openai_format import validate_text
from app.sdi.schemas import BuildConfig
from tests import factories
from tests.sdi.helpers import STATEMENTS, TEST_ROWS


class Page(HTMLParser):
    """Tags with their attributes, and the visible text, of an HTML document."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.chunks: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.chunks).split())

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())
        ]


def _full_or_fragment(html: str, htmx: dict[str, str]) -> None:
    has_nav = '<header class="topbar">' in html
    assert has_nav is (not htmx)


def _dataset(db: Session, name: str = "ds") -> SdiDataset:
    train = factories.make_question_set(db, name=f"{name}-train", rows=STATEMENTS)
    return service.build_dataset(
        db, BuildConfig(name=name, question_set_id=train.id or 0, seed=3, size=60)
    )


def test_list_and_new_pages(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    _dataset(db, "listed")
    listing = admin_client.get("/sdi", headers=htmx_headers)
    assert listing.status_code == 200
    _full_or_fragment(listing.text, htmx_headers)
    page = Page(listing.text)
    assert "listed" in page.text
    assert page.find("a", href="/sdi/new")
    form = admin_client.get("/sdi/new", headers=htmx_headers)
    assert form.status_code == 200
    _full_or_fragment(form.text, htmx_headers)
    new = Page(form.text)
    assert new.find("form", action="/sdi", method="post")
    assert len(new.find("input", type="checkbox", name="kinds")) == 6
    assert new.find("option", value="remove")


def test_rater_cannot_see_sdi(rater_client: TestClient) -> None:
    assert rater_client.get("/sdi").status_code == 403


def _form(train_id: int, **extra: str) -> dict[str, str | list[str]]:
    data: dict[str, str | list[str]] = {
        "name": "from-form",
        "question_set_id": str(train_id),
        "kinds": ["neutral", "biased"],
        "size": "40",
        "seed": "5",
        "rate_paraphrase": "0.5",
        "rate_context": "0",
        "rate_noise": "0",
        "leakage": "refuse",
        "validation_fraction": "0.1",
    }
    data.update(extra)
    return data


def test_build_from_the_form(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    train = factories.make_question_set(db, name="t", rows=STATEMENTS)
    response = admin_client.post(
        "/sdi", data=_form(train.id or 0), headers=htmx_headers, follow_redirects=False
    )
    dataset = db.exec(select(SdiDataset).where(SdiDataset.name == "from-form")).one()
    target = f"/sdi/{dataset.id}"
    if htmx_headers:
        assert response.headers["HX-Redirect"] == target
    else:
        assert response.status_code == 303 and response.headers["location"] == target
    assert dataset.config["kinds"] == ["neutral", "biased"]
    assert dataset.config["rates"]["paraphrase"] == 0.5
    assert {row["kind"] for row in dataset.stats["cells"]} == {"neutral", "biased"}


def test_build_errors_are_shown_on_the_form(admin_client: TestClient, db: Session) -> None:
    train = factories.make_question_set(db, name="t", rows=STATEMENTS)
    planted = factories.make_question_set(
        db, name="test", rows=[*TEST_ROWS, ("Bats are mammals.", True, "", "", "")]
    )
    response = admin_client.post("/sdi", data=_form(train.id or 0, test_set_id=str(planted.id)))
    assert response.status_code == 422
    page = Page(response.text)
    alert = " ".join(page.text.split())
    assert "leak from the test set" in alert and "Bats are mammals." in alert
    assert page.find("input", name="name", value="from-form")  # the form keeps its values
    same = admin_client.post("/sdi", data=_form(train.id or 0, test_set_id=str(train.id)))
    assert same.status_code == 422 and "must not be the test set" in same.text
    bad_general = admin_client.post(
        "/sdi",
        data=_form(train.id or 0),
        files={"general_data": ("g.jsonl", b'{"messages": []}\n', "application/jsonl")},
    )
    assert bad_general.status_code == 422 and "line 1" in bad_general.text
    assert db.exec(select(SdiDataset)).first() is None


def test_a_build_with_a_teacher_is_queued(admin_client: TestClient, db: Session) -> None:
    train = factories.make_question_set(db, name="t", rows=STATEMENTS)
    teacher = factories.make_model_config(db, name="teacher")
    response = admin_client.post(
        "/sdi", data=_form(train.id or 0, teacher_model_id=str(teacher.id)), follow_redirects=True
    )
    assert response.status_code == 200
    dataset = db.exec(select(SdiDataset).where(SdiDataset.name == "from-form")).one()
    assert dataset.status == "queued"
    job = db.exec(select(Job).where(Job.task == "sdi.build")).one()
    assert job.args == {"dataset_id": dataset.id}
    page = Page(response.text)
    assert page.find("p", id="build-status")
    status_url = f"/sdi/{dataset.id}/status"
    polled = admin_client.get(status_url, headers={"HX-Request": "true"})
    assert polled.status_code == 200 and "HX-Refresh" not in polled.headers
    plain = admin_client.get(status_url, follow_redirects=False)
    assert plain.status_code == 303
    dataset.status = "ready"
    db.add(dataset)
    db.flush()
    done = admin_client.get(status_url, headers={"HX-Request": "true"})
    assert done.headers["HX-Refresh"] == "true"


def test_dataset_page_shows_stats_examples_and_forms(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    dataset = _dataset(db)
    response = admin_client.get(f"/sdi/{dataset.id}", headers=htmx_headers)
    assert response.status_code == 200
    _full_or_fragment(response.text, htmx_headers)
    page = Page(response.text)
    text = page.text
    for stage in (
        "generation",
        "augmentation",
        "integration",
        "preprocessing",
        "quality assurance",
    ):
        assert stage in text
    assert "Balance: kind" in text and "stance" in text
    assert page.find("a", href=f"/sdi/{dataset.id}/export?format=openai&split=train")
    assert page.find("form", action=f"/sdi/{dataset.id}/in-context#make-model")
    assert page.find("section", id="examples")
    assert f"{dataset.stats['examples']} example(s)" in text
    assert len(page.find("article", **{"class": "card sdi-example"})) == 20


def test_examples_partial_pages_and_filters(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    dataset = _dataset(db)
    url = f"/sdi/{dataset.id}/examples?page=2&kind=pushback"
    response = admin_client.get(url, headers=htmx_headers, follow_redirects=False)
    if not htmx_headers:
        assert response.status_code == 303
        assert response.headers["location"].startswith(f"/sdi/{dataset.id}?page=2")
        return
    page = Page(response.text)
    assert "<header" not in response.text and page.find("section", id="examples")
    assert "page 1 of 1" in page.text  # few pushback examples: clamped to the last page
    assert "pushback / none" in page.text and "biased /" not in page.text


def test_exports_download_as_jsonl(admin_client: TestClient, db: Session) -> None:
    dataset = _dataset(db)
    openai = admin_client.get(f"/sdi/{dataset.id}/export?format=openai&split=train")
    assert openai.status_code == 200
    assert "attachment" in openai.headers["content-disposition"]
    assert openai.content == service.export_text(db, dataset.id or 0, "openai", "train").encode()
    assert validate_text(openai.text).ok
    hf = admin_client.get(f"/sdi/{dataset.id}/export?format=hf&split=all")
    records = [json.loads(line) for line in hf.text.splitlines()]
    assert len(records) == dataset.stats["examples"]
    assert all("messages" in r for r in records)
    assert admin_client.get(f"/sdi/{dataset.id}/export?format=csv").status_code == 400


def test_in_context_model_from_the_page(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    dataset = _dataset(db)
    base = factories.make_model_config(db, name="smol", provider="local")
    response = admin_client.post(
        f"/sdi/{dataset.id}/in-context",
        data={"base_model_id": str(base.id), "shots": "6", "seed": "4", "name": "smol+sdi"},
        headers=htmx_headers,
        follow_redirects=False,
    )
    assert response.status_code in (200, 303)
    model = db.exec(select(ModelConfig).where(ModelConfig.name == "smol+sdi")).one()
    assert (model.sdi_mode, model.sdi_shots, model.sdi_seed, model.provider) == (
        "in_context",
        6,
        4,
        "local",
    )
    page = Page(admin_client.get(f"/sdi/{dataset.id}").text)
    assert "smol+sdi" in page.text


def test_fine_tune_refusal_is_shown(admin_client: TestClient, db: Session) -> None:
    dataset = _dataset(db)
    local = factories.make_model_config(db, name="local-one", provider="local")
    response = admin_client.post(
        f"/sdi/{dataset.id}/fine-tunes", data={"base_model_id": str(local.id)}
    )
    assert response.status_code == 422
    assert "not an OpenAI-compatible model" in Page(response.text).text


def test_missing_dataset_is_404(admin_client: TestClient) -> None:
    assert admin_client.get("/sdi/999999").status_code == 404


def test_imported_placeholder_configs_are_not_offered_nor_taken_as_a_base(
    admin_client: TestClient, db: Session
) -> None:
    dataset = _dataset(db)
    real = factories.make_model_config(db, name="smol", provider="local")
    placeholder = factories.make_model_config(db, name="imported: elsewhere")
    placeholder.extra = {"imported": True}
    db.add(placeholder)
    db.flush()
    for path in ("/sdi/new", f"/sdi/{dataset.id}"):
        options = {o.get("value") for o in Page(admin_client.get(path).text).find("option")}
        assert str(real.id) in options and str(placeholder.id) not in options, path
    response = admin_client.post(
        f"/sdi/{dataset.id}/in-context",
        data={"base_model_id": str(placeholder.id), "shots": "6", "name": "placeholder+sdi"},
    )
    assert "Choose a base model." in Page(response.text).text
    assert db.exec(select(ModelConfig).where(ModelConfig.name == "placeholder+sdi")).first() is None
