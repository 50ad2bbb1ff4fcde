"""Run pages and the runs API, as a plain browser and as HTMX."""

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Job, Reply, Run
from app.runs import service
from app.runs.schemas import ArmCreate, RunCreate
from tests import factories
from tests.html import find, table_rows


def _pending_run(db: Session, n: int = 3) -> Run:
    qs = factories.make_question_set(db, n=n)
    template = factories.make_template(db, text="Is it true that {statement_clause}?")
    base = factories.make_model_config(db, name="page-base")
    sdi = factories.make_model_config(db, name="page-sdi")
    return service.create_run(
        db,
        RunCreate(
            question_set_id=qs.id or 0,
            template_ids=[template.id or 0],
            arms=[
                ArmCreate(model_config_id=base.id or 0, label="baseline"),
                ArmCreate(model_config_id=sdi.id or 0, label="sdi"),
            ],
            name="page run",
        ),
    )


def test_list_shows_runs_with_progress(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    done = factories.make_run(db)
    pending = _pending_run(db)
    page = admin_client.get("/runs", headers=htmx_headers)
    assert page.status_code == 200
    assert bool(find(page.text, "nav")) == (not htmx_headers)  # chrome only without HTMX
    rows = {r[0]: r for r in table_rows(page.text, "runs")}
    assert rows[str(done.id)][3] == "completed"
    assert rows[str(pending.id)][1] == "page run" and rows[str(pending.id)][3] == "running"
    assert "0 / 6" in rows[str(pending.id)][4]
    bars = find(page.text, "progress")
    assert {b.attrs["value"] for b in bars} >= {"0", "24"}


def test_pages_need_an_admin(rater_client: TestClient, db: Session) -> None:
    run = factories.make_run(db)
    for url in ("/runs", "/runs/new", f"/runs/{run.id}", f"/runs/{run.id}/progress"):
        assert rater_client.get(url).status_code == 403
    assert rater_client.get("/api/v1/runs").status_code == 403
    assert rater_client.post(f"/runs/{run.id}/cancel").status_code == 403


def test_new_form_offers_sets_templates_and_models(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    qs = factories.make_question_set(db, name="form set")
    active = factories.make_template(db, kind="biased", stance="asserts")
    model = factories.make_model_config(db, name="form model")
    page = admin_client.get("/runs/new", headers=htmx_headers)
    assert page.status_code == 200
    (form,) = find(page.text, "form", action="/runs")
    assert form.attrs["method"] == "post"
    assert str(qs.id) in {o.attrs["value"] for o in find(page.text, "option")}
    boxes = {b.attrs["value"]: b for b in find(page.text, "input", name="template_ids")}
    assert "checked" in boxes[str(active.id)].attrs
    assert any(
        o.text.startswith("form model") for o in find(page.text, "option", value=str(model.id))
    )
    labels = [i.attrs["value"] for i in find(page.text, "input", name="arm_label")]
    assert labels[:2] == ["baseline", "sdi"]


def test_create_from_the_form(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    qs = factories.make_question_set(db, n=5)
    templates = [
        factories.make_template(db),
        factories.make_template(db, kind="biased", stance="asserts"),
    ]
    base = factories.make_model_config(db)
    sdi = factories.make_model_config(db)
    response = admin_client.post(
        "/runs",
        data={
            "question_set_id": str(qs.id),
            "template_ids": [str(t.id) for t in templates],
            "arm_model": [str(base.id), str(sdi.id), ""],
            "arm_label": ["baseline", "sdi", ""],
            "limit": "3",
            "samples": "2",
            "seed": "7",
        },
        headers=htmx_headers,
        follow_redirects=False,
    )
    run = db.exec(select(Run).where(Run.question_set_id == qs.id)).one()
    if htmx_headers:
        assert response.headers["HX-Redirect"] == f"/runs/{run.id}"
    else:
        assert response.status_code == 303 and response.headers["location"] == f"/runs/{run.id}"
    assert run.samples == 2 and run.question_limit == 3 and run.seed == 7
    slots = db.exec(select(Reply).where(Reply.run_id == run.id)).all()
    assert len(slots) == 3 * 2 * 2 * 2 and {s.status for s in slots} == {"pending"}
    jobs = db.exec(select(Job).where(Job.group_key == f"run:{run.id}")).all()
    assert sorted(j.args["reply_id"] for j in jobs) == sorted(s.id for s in slots)


def test_create_refuses_bad_input_and_keeps_the_form(admin_client: TestClient, db: Session) -> None:
    qs = factories.make_question_set(db)
    template = factories.make_template(db)
    model = factories.make_model_config(db)
    before = len(db.exec(select(Run)).all())
    response = admin_client.post(
        "/runs",
        data={
            "question_set_id": str(qs.id),
            "template_ids": [str(template.id)],
            "arm_model": [str(model.id), str(model.id), ""],
            "arm_label": ["baseline", "sdi", ""],
            "limit": "2",
        },
    )
    assert response.status_code == 422
    assert "each model can be one arm only" in response.text
    assert find(response.text, "input", name="limit")[0].attrs["value"] == "2"
    assert len(db.exec(select(Run)).all()) == before


def test_detail_page_and_polled_progress(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    run = _pending_run(db)
    page = admin_client.get(f"/runs/{run.id}", headers=htmx_headers)
    assert page.status_code == 200
    (section,) = find(page.text, "section", id="run-progress")
    assert section.attrs["hx-trigger"] == "every 2s"
    assert section.attrs["hx-get"] == f"/runs/{run.id}/progress"
    (bar,) = find(section_html(page.text), "progress")
    assert (bar.attrs["max"], bar.attrs["value"]) == ("6", "0")
    assert find(page.text, "form", action=f"/runs/{run.id}/cancel")
    replies = table_rows(page.text, "run-replies")
    assert len(replies) == 6 and {r[-1] for r in replies} == {"pending"}

    partial = admin_client.get(f"/runs/{run.id}/progress", headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "HX-Refresh" not in partial.headers
    assert not find(partial.text, "nav") and find(partial.text, "section", id="run-progress")


def section_html(html: str) -> str:
    start = html.index('id="run-progress"')
    return html[start : html.index("</section>", start)]


def test_finished_run_stops_polling_and_lists_replies(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    run = factories.make_run(db, reply="False. It is not.")
    page = admin_client.get(f"/runs/{run.id}", headers=htmx_headers)
    (section,) = find(page.text, "section", id="run-progress")
    assert "hx-trigger" not in section.attrs
    assert not find(page.text, "form", action=f"/runs/{run.id}/cancel")
    rows = table_rows(page.text, "run-replies")
    assert len(rows) == 24 and {r[5] for r in rows} == {"false"}
    # Pagination: 50 per page.
    assert not find(page.text, "nav", class_="pager")
    partial = admin_client.get(f"/runs/{run.id}/progress", headers={"HX-Request": "true"})
    assert partial.headers["HX-Refresh"] == "true"


def test_replies_paginate_and_filter(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    run = factories.make_run(db, factories.make_question_set(db, n=15))  # 60 replies
    page = admin_client.get(f"/runs/{run.id}?page=2", headers=htmx_headers)
    assert len(table_rows(page.text, "run-replies")) == 10
    assert "Page 2 of 2" in page.text
    partial = admin_client.get(f"/runs/{run.id}/replies?page=1", headers={"HX-Request": "true"})
    assert len(table_rows(partial.text, "run-replies")) == 50
    assert find(partial.text, "a", hx_get=f"/runs/{run.id}/replies?status=&page=2")
    failed = admin_client.get(f"/runs/{run.id}?status=failed", headers=htmx_headers)
    assert table_rows(failed.text, "run-replies") == []


def test_cancel_resume_and_retry(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    run = _pending_run(db)
    response = admin_client.post(
        f"/runs/{run.id}/cancel", headers=htmx_headers, follow_redirects=False
    )
    assert response.status_code == (200 if htmx_headers else 303)
    db.refresh(run)
    assert run.status == "cancelled"
    slots = db.exec(select(Reply).where(Reply.run_id == run.id)).all()
    assert {s.status for s in slots} == {"cancelled"}
    jobs = db.exec(select(Job).where(Job.group_key == f"run:{run.id}")).all()
    assert {j.status for j in jobs} == {"cancelled"}
    page = admin_client.get(f"/runs/{run.id}", headers=htmx_headers)
    assert find(page.text, "form", action=f"/runs/{run.id}/resume")

    admin_client.post(f"/runs/{run.id}/resume", headers=htmx_headers)
    db.refresh(run)
    assert run.status == "running"
    for s in slots:
        db.refresh(s)
    assert {s.status for s in slots} == {"pending"}
    for j in jobs:
        db.refresh(j)
    assert {j.status for j in jobs} == {"todo"}

    # Two slots fail for good: their errors are listed, and "retry" sends them back.
    for slot, job in zip(
        slots[:2], sorted(jobs, key=lambda j: j.args["reply_id"])[:2], strict=True
    ):
        slot.status, slot.error, slot.attempts = "failed", "HTTP 500: boom", 6
        job.status, job.attempts = "failed", 6
        db.add(slot)
        db.add(job)
    db.flush()
    page = admin_client.get(f"/runs/{run.id}", headers=htmx_headers)
    failed_rows = table_rows(page.text, "run-failed")
    assert len(failed_rows) == 2 and all(r[-1] == "HTTP 500: boom" for r in failed_rows)
    assert find(page.text, "form", action=f"/runs/{run.id}/retry")
    admin_client.post(f"/runs/{run.id}/retry", headers=htmx_headers)
    for s in slots[:2]:
        db.refresh(s)
        assert s.status == "pending" and s.attempts == 0
    for j in jobs:
        db.refresh(j)
    assert {j.status for j in jobs} == {"todo"}


def test_cancelling_a_completed_run_is_refused(admin_client: TestClient, db: Session) -> None:
    run = factories.make_run(db)
    assert admin_client.post(f"/runs/{run.id}/cancel").status_code == 409
    assert admin_client.get("/runs/999999").status_code == 404


def test_api(admin_client: TestClient, db: Session) -> None:
    run = _pending_run(db)
    listed = admin_client.get("/api/v1/runs").json()["items"]
    assert any(r["id"] == run.id and r["status"] == "running" for r in listed)
    detail = admin_client.get(f"/api/v1/runs/{run.id}").json()
    assert detail["progress"]["total"] == 6 and detail["progress"]["pending"] == 6
    assert [a["label"] for a in detail["arms"]] == ["baseline", "sdi"]
    assert detail["config"]["arms"][0]["spec"]["model_id"] == "test-model"
    assert [arm["label"] for arm in detail["progress"]["arms"]] == ["baseline", "sdi"]
    assert admin_client.get("/api/v1/runs/999999").status_code == 404


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"template_ids": []}, "template_ids", "choose at least one template"),
        ({"arm_model": ["", "", ""]}, "arms", "choose a model for at least one arm"),
        ({"samples": "0"}, "samples", "a whole number of samples from 1 to 100"),
        ({"samples": "many"}, "samples", "a whole number of samples from 1 to 100"),
        ({"limit": "-2"}, "limit", "a whole number of statements"),
        ({"seed": "x"}, "seed", "a whole number"),
        ({"question_set_id": ""}, "question_set_id", "choose a question set"),
    ],
)
def test_create_puts_each_error_beside_its_field(
    admin_client: TestClient, db: Session, change: dict[str, object], field: str, message: str
) -> None:
    qs = factories.make_question_set(db)
    template = factories.make_template(db)
    model = factories.make_model_config(db)
    data: dict[str, object] = {
        "question_set_id": str(qs.id),
        "template_ids": [str(template.id)],
        "arm_model": [str(model.id), "", ""],
        "arm_label": ["baseline", "sdi", ""],
        "samples": "1",
    } | change
    before = len(db.exec(select(Run)).all())
    response = admin_client.post("/runs", data=data)
    assert response.status_code == 422
    (error,) = find(response.text, "p", id=f"error-{field}")
    assert error.text.startswith(message)
    assert "List should have" not in response.text
    assert len(db.exec(select(Run)).all()) == before


def test_results_index_links_every_run(admin_client: TestClient, db: Session) -> None:
    run = factories.make_run(db)
    page = admin_client.get("/results")
    assert page.status_code == 200
    links = {a.attrs["href"] for a in find(page.text, "a")}
    assert f"/results/runs/{run.id}" in links
    listed = admin_client.get("/runs")
    assert f"/results/runs/{run.id}" in {a.attrs["href"] for a in find(listed.text, "a")}
    detail = admin_client.get(f"/runs/{run.id}")
    assert f"/results/runs/{run.id}" in {a.attrs["href"] for a in find(detail.text, "a")}
