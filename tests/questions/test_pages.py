"""Question-set pages and the upload flow, with and without HX-Request."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from app.config import get_settings
from app.models import Question, QuestionSet
from app.questions import service
from tests import factories
from tests.html import confirm_token
from tests.questions.helpers import csv_bytes, distinct_statements, rows_for, table_rows


def _set_count(db: Session) -> int:
    return db.exec(select(func.count()).select_from(QuestionSet)).one()


def _upload(
    client: TestClient, data: bytes, name: str, headers: dict[str, str], filename: str = "up.csv"
) -> Any:
    return client.post(
        "/sets/upload",
        data={"name": name, "description": "uploaded"},
        files={"file": (filename, data, "text/csv")},
        headers=headers,
    )


def test_sets_list_shows_counts_and_balance(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    factories.make_question_set(db, n=6, name="six")
    response = admin_client.get("/sets", headers=htmx_headers)
    assert response.status_code == 200
    rows = table_rows(response.text, "sets")
    six = next(r for r in rows if r[0].startswith("six"))
    assert six[1:4] == ["6", "3", "3"]
    assert "50 % true" in six[4]
    assert ("<html" in response.text) is (not htmx_headers)


def test_pages_are_for_admins_only(rater_client: TestClient) -> None:
    assert rater_client.get("/sets").status_code == 403
    assert rater_client.get("/sets/upload").status_code == 403
    assert rater_client.get("/api/v1/sets").status_code == 403


def test_upload_form(admin_client: TestClient, htmx_headers: dict[str, str]) -> None:
    response = admin_client.get("/sets/upload", headers=htmx_headers)
    assert response.status_code == 200
    assert 'enctype="multipart/form-data"' in response.text


def test_upload_preview_then_confirm_imports(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    statements = distinct_statements(60)
    statements.append(statements[10].upper())
    data = csv_bytes(rows_for(statements), delimiter=";", bom=True)
    before = _set_count(db)
    preview = _upload(admin_client, data, "flow", htmx_headers)
    assert preview.status_code == 200
    assert _set_count(db) == before  # nothing saved by the preview
    assert "Import 61 statements" in preview.text
    flagged = [r for r in table_rows(preview.text, "questions") if "duplicate" in r[4]]
    assert flagged == [["61", statements[10].upper(), "true", "misc", "duplicate of row 11"]]
    token = confirm_token(preview.text)
    confirm = admin_client.post(
        f"/sets/upload/{token}/confirm",
        data={"name": "flow", "description": "uploaded"},
        headers=htmx_headers,
        follow_redirects=False,
    )
    qs = db.exec(select(QuestionSet).where(QuestionSet.name == "flow")).one()
    target = f"/sets/{qs.id}"
    if htmx_headers:
        assert confirm.status_code == 200 and confirm.headers["HX-Redirect"] == target
    else:
        assert confirm.status_code == 303 and confirm.headers["location"] == target
    assert qs.description == "uploaded" and qs.source_filename == "up.csv"
    count = db.exec(
        select(func.count()).select_from(Question).where(Question.question_set_id == qs.id)
    ).one()
    assert count == 61
    # The pending file is gone: confirming twice does not import twice.
    again = admin_client.post(
        f"/sets/upload/{token}/confirm", data={"name": "flow2"}, headers=htmx_headers
    )
    assert again.status_code == 404 and "expired" in again.text
    assert _set_count(db) == before + 1


def test_bad_file_shows_problems_and_saves_nothing(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    rows = rows_for(distinct_statements(30))
    rows[4]["truth"] = "unsure"
    rows[20]["statement"] = ""
    before = _set_count(db)
    response = _upload(admin_client, csv_bytes(rows), "bad", htmx_headers)
    assert response.status_code == 400
    problems = table_rows(response.text, "problems")
    assert [p[:3] for p in problems] == [["5", "6", "truth"], ["21", "22", "statement"]]
    assert "nothing will be saved" in response.text
    assert "/confirm" not in response.text
    assert _set_count(db) == before


def test_file_errors_and_missing_file(
    admin_client: TestClient, htmx_headers: dict[str, str]
) -> None:
    response = _upload(admin_client, b"words,flag\nA,1\n", "cols", htmx_headers)
    assert response.status_code == 400
    assert "Missing required column(s): statement, truth" in response.text
    empty = admin_client.post("/sets/upload", data={"name": "x"}, headers=htmx_headers)
    assert empty.status_code == 400 and "Choose a file" in empty.text


def test_oversized_upload_is_refused(
    admin_client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()
    before = _set_count(db)
    monkeypatch.setattr(settings, "max_upload_bytes", 100)
    small = _upload(admin_client, b"statement,truth\n" + b"A fact.,1\n" * 20, "big", {})
    assert small.status_code == 413 and "larger than the upload limit" in small.text
    huge = _upload(admin_client, b"statement,truth\n" + b"A fact.,1\n" * 10_000, "big", {})
    assert huge.status_code == 413
    assert _set_count(db) == before


def test_confirm_with_taken_name_shows_the_preview_again(
    admin_client: TestClient, db: Session
) -> None:
    factories.make_question_set(db, name="taken")
    preview = _upload(admin_client, csv_bytes(rows_for(["One.", "Two."])), "taken", {})
    assert "already exists" in preview.text
    token = confirm_token(preview.text)
    confirm = admin_client.post(f"/sets/upload/{token}/confirm", data={"name": "taken"})
    assert confirm.status_code == 400 and "already exists" in confirm.text
    ok = admin_client.post(
        f"/sets/upload/{token}/confirm", data={"name": "fresh"}, follow_redirects=False
    )
    assert ok.status_code == 303


def test_forged_token_is_refused(admin_client: TestClient) -> None:
    response = admin_client.post("/sets/upload/..%2F..%2Fsecret/confirm", data={"name": "x"})
    assert response.status_code in (404, 405)


def test_set_page_paginates_and_flags(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    statements = distinct_statements(120)
    statements[109] = statements[2] + "!"
    qs = service.import_question_set(
        db, "pages", service.parse_upload(csv_bytes(rows_for(statements)), "p.csv")
    )
    first = admin_client.get(f"/sets/{qs.id}", headers=htmx_headers)
    assert first.status_code == 200
    assert [r[0] for r in table_rows(first.text, "questions")] == [str(i) for i in range(1, 51)]
    assert "Page 1 of 3" in first.text
    third = admin_client.get(f"/sets/{qs.id}?page=3", headers=htmx_headers)
    rows = table_rows(third.text, "questions")
    assert [r[0] for r in rows] == [str(i) for i in range(101, 121)]
    flagged_row = next(r for r in rows if r[0] == "110")
    assert "duplicate of #3" in flagged_row[5] and "conflicting label" in flagged_row[5]
    only = admin_client.get(f"/sets/{qs.id}?flagged=true", headers=htmx_headers)
    assert [r[0] for r in table_rows(only.text, "questions")] == ["110"]
    balance = table_rows(first.text, "balance-table")
    assert balance[0][:4] == ["misc", "120", "60", "60"]


def test_missing_set_is_404(admin_client: TestClient) -> None:
    assert admin_client.get("/sets/999999").status_code == 404
    assert admin_client.get("/api/v1/sets/999999/questions").status_code == 404


def test_delete_set(admin_client: TestClient, db: Session, htmx_headers: dict[str, str]) -> None:
    used = factories.make_question_set(db, name="used")
    factories.make_run(db, used)
    free = factories.make_question_set(db, name="free")
    refused = admin_client.post(f"/sets/{used.id}/delete", headers=htmx_headers)
    assert refused.status_code == 409 and "used by 1 run" in refused.text
    done = admin_client.post(
        f"/sets/{free.id}/delete", headers=htmx_headers, follow_redirects=False
    )
    assert done.status_code in (200, 303)
    assert db.get(QuestionSet, free.id) is None and db.get(QuestionSet, used.id) is not None


def test_json_api(admin_client: TestClient, db: Session) -> None:
    qs = factories.make_question_set(db, n=5, name="api")
    sets = admin_client.get("/api/v1/sets").json()
    entry = next(s for s in sets if s["name"] == "api")
    assert entry["questions"] == 5 and entry["true_count"] == 3 and entry["false_count"] == 2
    page = admin_client.get(f"/api/v1/sets/{qs.id}/questions?offset=1&limit=2").json()
    assert (page["total"], page["offset"], page["limit"]) == (5, 1, 2)
    assert [q["position"] for q in page["items"]] == [2, 3]
    assert set(page["items"][0]) >= {"statement", "negation", "truth", "duplicate_of_id"}
    assert admin_client.get(f"/api/v1/sets/{qs.id}/questions?limit=0").status_code == 422
    assert admin_client.get(f"/api/v1/sets/{qs.id}/questions?limit=1001").status_code == 422
    # The unversioned path of older scripts answers as it did.
    old = admin_client.get(f"/api/sets/{qs.id}/questions?offset=1&limit=2").json()
    assert [q["position"] for q in old["questions"]] == [2, 3]
