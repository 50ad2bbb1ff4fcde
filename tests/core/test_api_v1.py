"""The versioned JSON API (/api/v1): what its schema says, paging and JSON Lines, who reaches
what with a token, and the unversioned paths kept for older scripts."""

import io
import json
import re
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.accounts import tokens
from app.main import API_TAGS
from app.models import Run, TokenScope, User
from app.web import JSONL, MAX_LIMIT
from tests import factories
from tests.html import find
from tests.metrics import helpers


def _bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def anon(client: TestClient) -> TestClient:
    """The app without a login cookie: only a token authenticates."""
    client.cookies.clear()
    return client


@pytest.fixture
def admin_token(db: Session, admin: factories.UserWithPassword) -> str:
    return tokens.create_token(db, admin.user, "notebook", TokenScope.read)[1]


@pytest.fixture
def rated_run(db: Session, admin: factories.UserWithPassword) -> Run:
    """A finished run with three arms, rated by three raters (some replies unrated)."""
    qs = factories.make_question_set(db, n=6)
    run = factories.make_run(db, qs, arms=("baseline", "sdi", "sdi-fewshot"))
    helpers.random_ratings(db, run, helpers.make_raters(db, 3), admin.id, seed=5)
    return run


@pytest.fixture
def schema(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ops in schema["paths"].items() for m, op in ops.items()]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return dict(schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]])
    return node


# -- the schema --------------------------------------------------------------------------------


def test_the_served_schema_is_the_versioned_json_api_only(schema: dict[str, Any]) -> None:
    paths = set(schema["paths"])
    assert paths and all(p.startswith("/api/v1/") for p in paths), paths
    # No page, no unversioned path, no form.
    assert not {"/runs", "/rate", "/api/runs", "/login"} & paths
    assert not [op for _m, _p, op in _operations(schema) if "requestBody" in op]
    expected = {
        "GET /api/v1/runs",
        "GET /api/v1/runs/{run_id}",
        "GET /api/v1/runs/{run_id}/metrics",
        "GET /api/v1/runs/{run_id}/replies",
        "GET /api/v1/runs/{run_id}/ratings",
        "GET /api/v1/runs/{run_id}/judges",
        "GET /api/v1/sets",
        "GET /api/v1/sets/{set_id}/questions",
        "GET /api/v1/training/{run_id}",
        "GET /api/v1/account/tokens",
        "POST /api/v1/account/tokens/{token_id}/revoke",
    }
    assert {f"{m} {p}" for m, p, _op in _operations(schema)} == expected
    assert schema["info"]["version"] == "1" and "Bearer" in schema["info"]["description"]
    assert schema["components"]["securitySchemes"]["token"]["scheme"] == "bearer"


def test_every_operation_has_a_summary_a_typed_answer_and_its_errors(
    schema: dict[str, Any],
) -> None:
    tags = {t["name"] for t in API_TAGS}
    error_ref = "#/components/schemas/ApiError"
    for method, path, op in _operations(schema):
        where = f"{method} {path}"
        assert op.get("summary"), where
        assert op["tags"] and set(op["tags"]) <= tags, where
        assert op["security"] == [{"token": []}], where
        responses = op["responses"]
        ok = responses["200"]["content"]["application/json"]["schema"]
        typed = ok.get("$ref") or ok.get("items", {}).get("$ref")
        assert typed, f"{where}: the 200 answer has no model"
        codes = {"401", "403", "429"}
        if "{" in path:
            codes.add("404")
        if op.get("parameters"):
            codes.add("422")
        assert codes <= set(responses), (where, sorted(responses))
        for code in codes:
            assert responses[code]["content"]["application/json"]["schema"] == {
                "$ref": error_ref
            }, (where, code)
        if "422" in responses:
            assert responses["422"]["content"]["application/json"]["schema"]["$ref"] == error_ref
    # FastAPI's own 422 model describes a body the app never sends.
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_the_paged_operations_document_paging_and_json_lines(schema: dict[str, Any]) -> None:
    for path in ("/api/v1/runs", "/api/v1/runs/{run_id}/replies", "/api/v1/runs/{run_id}/ratings"):
        op = schema["paths"][path]["get"]
        params = {p["name"]: p for p in op["parameters"]}
        limit = params["limit"]["schema"]["anyOf"][0]
        assert (limit["minimum"], limit["maximum"]) == (1, MAX_LIMIT)
        assert params["offset"]["schema"]["minimum"] == 0
        assert "format" in params
        content = op["responses"]["200"]["content"]
        example = json.loads(content[JSONL]["example"])
        page = _resolve(schema, content["application/json"]["schema"])
        assert set(page["properties"]) == {"total", "offset", "limit", "items"}
        record = _resolve(schema, page["properties"]["items"]["items"])
        # The example is a valid row: every field it names, and nothing else.
        assert set(example) == set(record["properties"]), path
        # (The served schema drops an example's nulls: FastAPI writes it with exclude_none.)
        assert record["examples"] == [{k: v for k, v in example.items() if v is not None}]


# -- paging and JSON Lines ---------------------------------------------------------------------


def _lines(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(JSONL)
    return [json.loads(line) for line in response.text.splitlines()]


@pytest.mark.parametrize("what", ["replies", "ratings"])
def test_a_runs_rows_page_by_page_equal_the_stream_and_the_csv(
    anon: TestClient, admin_token: str, rated_run: Run, what: str
) -> None:
    url = f"/api/v1/runs/{rated_run.id}/{what}"
    first = anon.get(url, params={"limit": 5}, headers=_bearer(admin_token)).json()
    total = first["total"]
    assert total > 10 and (first["offset"], first["limit"], len(first["items"])) == (0, 5, 5)
    paged = list(first["items"])
    offset = 5
    while offset < total:
        page = anon.get(url, params={"offset": offset, "limit": 7}, headers=_bearer(admin_token))
        paged += page.json()["items"]
        offset += 7
    key = "reply_id" if what == "replies" else "rating_id"
    ids = [row[key] for row in paged]
    assert len(ids) == total and ids == sorted(set(ids))
    streamed = _lines(anon.get(url, params={"format": "jsonl"}, headers=_bearer(admin_token)))
    assert streamed == paged
    window = _lines(
        anon.get(
            url, params={"format": "jsonl", "offset": 3, "limit": 4}, headers=_bearer(admin_token)
        )
    )
    assert window == paged[3:7]
    past_the_end = anon.get(url, params={"offset": total}, headers=_bearer(admin_token)).json()
    assert past_the_end["items"] == [] and past_the_end["total"] == total
    frame = pd.DataFrame(paged)
    assert list(frame.columns) == list(paged[0])
    if what == "replies":
        assert {"label", "verdict", "mean_helpfulness", "n_ratings", "unresolved"} <= set(frame)
        assert frame["label"].notna().any() and (frame["n_ratings"] > 0).any()


def test_csv_and_api_rows_agree(admin_client: TestClient, rated_run: Run, admin_token: str) -> None:
    csv = pd.read_csv(
        io.BytesIO(admin_client.get(f"/results/runs/{rated_run.id}/replies.csv").content),
        keep_default_na=False,
    )
    rows = admin_client.get(f"/api/v1/runs/{rated_run.id}/replies?limit=1000").json()["items"]
    assert list(csv.columns) == list(rows[0])
    assert list(csv["reply_id"]) == [r["reply_id"] for r in rows]
    assert [str(v) for v in csv["label"]] == [r["label"] or "" for r in rows]


def test_ratings_name_raters_by_pseudonym_only(
    anon: TestClient, admin_token: str, rated_run: Run, db: Session
) -> None:
    body = anon.get(
        f"/api/v1/runs/{rated_run.id}/ratings?format=jsonl", headers=_bearer(admin_token)
    ).text
    raters = {json.loads(line)["rater"] for line in body.splitlines()}
    assert raters == {"R1", "R2", "R3"}
    for user in db.exec(select(User)).all():
        assert user.email not in body
    assert not re.search(r'"rater_id"', body)


def test_runs_are_listed_newest_first_with_their_progress(
    anon: TestClient, admin_token: str, db: Session
) -> None:
    older, newer = factories.make_run(db), factories.make_run(db)
    page = anon.get("/api/v1/runs?limit=2", headers=_bearer(admin_token)).json()
    assert [r["id"] for r in page["items"]] == [newer.id, older.id]
    progress = page["items"][0]["progress"]
    assert progress["total"] == progress["done"] > 0
    assert [a["label"] for a in progress["arms"]] == ["baseline", "sdi"]
    streamed = _lines(anon.get("/api/v1/runs?format=jsonl", headers=_bearer(admin_token)))
    assert len(streamed) == page["total"] and streamed[:2] == page["items"]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("limit=1001", "limit"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
        (f"offset={2**31}", "offset"),
        ("format=xml", "format"),
    ],
)
def test_bad_paging_is_a_422_that_names_the_parameter(
    anon: TestClient, admin_token: str, rated_run: Run, query: str, problem: str
) -> None:
    response = anon.get(
        f"/api/v1/runs/{rated_run.id}/replies?{query}", headers=_bearer(admin_token)
    )
    assert response.status_code == 422
    (line,) = response.json()["detail"]
    assert line.startswith(f"{problem}:")


def test_an_unknown_run_is_a_404_on_every_run_route(anon: TestClient, admin_token: str) -> None:
    for what in ("", "/metrics", "/replies", "/ratings", "/judges"):
        response = anon.get(f"/api/v1/runs/999999{what}", headers=_bearer(admin_token))
        assert response.status_code == 404, what
        assert "run" in response.json()["detail"], what


def test_metrics_carry_their_cis(anon: TestClient, admin_token: str, rated_run: Run) -> None:
    body = anon.get(f"/api/v1/runs/{rated_run.id}/metrics", headers=_bearer(admin_token)).json()
    metrics = pd.json_normalize(body["metrics"])
    assert {"accuracy.value", "accuracy.low", "accuracy.high", "accuracy.method"} <= set(metrics)
    rated = metrics[metrics["accuracy.n"] > 0]
    assert len(rated) and (rated["accuracy.low"] <= rated["accuracy.value"]).all()
    assert (rated["accuracy.value"] <= rated["accuracy.high"]).all()


# -- who reaches what --------------------------------------------------------------------------


def test_a_raters_token_reaches_only_their_own_tokens(
    anon: TestClient, db: Session, rater: factories.UserWithPassword, rated_run: Run
) -> None:
    _token, raw = tokens.create_token(db, rater.user, "mine", TokenScope.read)
    assert anon.get("/api/v1/account/tokens", headers=_bearer(raw)).status_code == 200
    for url in (
        "/api/v1/runs",
        f"/api/v1/runs/{rated_run.id}",
        f"/api/v1/runs/{rated_run.id}/replies",
        f"/api/v1/runs/{rated_run.id}/ratings?format=jsonl",
        f"/api/v1/runs/{rated_run.id}/metrics",
        f"/api/v1/runs/{rated_run.id}/judges",
        "/api/v1/sets",
    ):
        response = anon.get(url, headers=_bearer(raw))
        assert response.status_code == 403, url
        assert response.json() == {"detail": "Forbidden"}


def test_without_a_token_the_api_answers_401(anon: TestClient, rated_run: Run) -> None:
    response = anon.get(f"/api/v1/runs/{rated_run.id}/replies")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert anon.get("/api/v1/runs", headers=_bearer("sdilab_nope")).status_code == 401


def test_a_read_token_cannot_revoke_but_an_admin_token_can(
    anon: TestClient, db: Session, admin: factories.UserWithPassword, admin_token: str
) -> None:
    (token,) = tokens.list_tokens(db, admin.id)
    url = f"/api/v1/account/tokens/{token.id}/revoke"
    assert anon.post(url, headers=_bearer(admin_token)).status_code == 403
    _writer, raw = tokens.create_token(db, admin.user, "writer", TokenScope.admin)
    revoked = anon.post(url, headers=_bearer(raw))
    assert revoked.status_code == 200 and revoked.json()["live"] is False
    assert anon.get("/api/v1/runs", headers=_bearer(admin_token)).status_code == 401
    assert (
        anon.post("/api/v1/account/tokens/999999/revoke", headers=_bearer(raw)).status_code == 404
    )


# -- the unversioned paths ---------------------------------------------------------------------


def test_the_unversioned_paths_still_answer_outside_the_schema(
    anon: TestClient, admin_token: str, rated_run: Run, schema: dict[str, Any]
) -> None:
    old = anon.get("/api/runs", headers=_bearer(admin_token))
    assert old.status_code == 200 and isinstance(old.json(), list)
    replies = anon.get(f"/api/runs/{rated_run.id}/replies", headers=_bearer(admin_token)).json()
    new = anon.get(
        f"/api/v1/runs/{rated_run.id}/replies?format=jsonl", headers=_bearer(admin_token)
    )
    assert [r["reply_id"] for r in replies] == [r["reply_id"] for r in _lines(new)]
    detail = anon.get(f"/api/runs/{rated_run.id}", headers=_bearer(admin_token)).json()
    assert detail == anon.get(f"/api/v1/runs/{rated_run.id}", headers=_bearer(admin_token)).json()
    assert not [p for p in schema["paths"] if not p.startswith("/api/v1/")]


@pytest.mark.parametrize("page", ["/results/runs/{id}", "/results/runs/{id}/judges"])
def test_the_pages_json_links_lead_to_v1(
    admin_client: TestClient, rated_run: Run, page: str
) -> None:
    html = admin_client.get(page.format(id=rated_run.id)).text
    (link,) = [a for a in find(html, "a") if a.text.strip() == "JSON"]
    assert link.attrs["href"].startswith(f"/api/v1/runs/{rated_run.id}/")
    assert admin_client.get(link.attrs["href"]).status_code == 200
