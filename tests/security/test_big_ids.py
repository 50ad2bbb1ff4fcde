"""Ids and numbers beyond what the database holds are a clear 4xx, never a 500."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.openapi import every_route_schema

HUGE = "10629260213384064135332024549376"
JUST_OVER = str(2**31)  # the tables' ids are 32-bit on Postgres


@pytest.mark.parametrize(
    "url",
    [
        f"/rate/mine/{HUGE}",
        f"/rating/rounds/{JUST_OVER}",
        f"/rating/rounds/{2**63 + 1}",
        f"/rating/rounds/{HUGE}/adjudicate",
        f"/runs/{HUGE}",
        f"/results/runs/{HUGE}",
        f"/api/runs/{HUGE}/metrics",
        f"/api/v1/runs/{HUGE}/metrics",
        f"/api/v1/runs/{HUGE}/replies",
        f"/api/v1/runs/1/ratings?offset={HUGE}",
        f"/api/v1/runs?limit={HUGE}",
        f"/sets/{HUGE}",
        f"/runs/1?page={HUGE}",
        f"/templates?set_id={HUGE}",
    ],
)
def test_a_get_with_a_huge_id_is_422(admin_client: TestClient, url: str) -> None:
    response = admin_client.get(url)
    assert response.status_code == 422, (url, response.status_code)
    assert "less than or equal to" in response.text


def test_a_round_with_a_huge_run_id_is_refused(admin_client: TestClient) -> None:
    response = admin_client.post("/rating/rounds", data={"name": "r", "run_ids": [HUGE]})
    assert response.status_code == 422
    assert "Unknown run." in response.text


@pytest.mark.parametrize("url", [f"/rating/rounds/{JUST_OVER}/sync", f"/runs/{HUGE}/cancel"])
def test_a_post_with_a_huge_id_is_422(admin_client: TestClient, url: str) -> None:
    assert admin_client.post(url).status_code == 422


def test_the_largest_id_the_database_holds_is_a_plain_404(admin_client: TestClient) -> None:
    assert admin_client.get(f"/rating/rounds/{2**31 - 1}").status_code == 404


@pytest.mark.parametrize("path", ["/api/overflow", "/overflow"])
def test_an_overflow_the_bounds_miss_is_422_not_500(path: str) -> None:
    """The safety net: a number a route parses by hand can still reach the database too large;
    the OverflowError handler answers 422 with a message (JSON under /api/, a page elsewhere)."""
    app = create_app()

    @app.get(path)
    def _overflow() -> None:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    response = TestClient(app, raise_server_exceptions=False).get(path)
    assert response.status_code == 422
    assert "larger than the database can hold" in response.text


def test_the_schema_states_the_bounds() -> None:
    schema = every_route_schema()
    params = schema["paths"]["/rating/rounds/{round_id}"]["get"]["parameters"]
    (round_id,) = [p for p in params if p["name"] == "round_id"]
    assert round_id["schema"]["maximum"] == 2**31 - 1
    assert round_id["schema"]["minimum"] == 1


def _unbounded(schema: dict[str, Any], node: Any, where: str) -> Iterator[str]:
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            yield from _unbounded(schema, schema["components"]["schemas"][name], where)
            return
        if node.get("type") == "integer" and "maximum" not in node:
            yield where
        for key in ("anyOf", "allOf", "oneOf"):
            for option in node.get(key, []):
                yield from _unbounded(schema, option, where)
        for name, prop in node.get("properties", {}).items():
            yield from _unbounded(schema, prop, f"{where}.{name}")
        if "items" in node:
            yield from _unbounded(schema, node["items"], f"{where}[]")


@pytest.mark.parametrize("which", ["served", "every route"])
def test_every_integer_a_route_takes_is_bounded(admin_client: TestClient, which: str) -> None:
    """A new route with a plain ``int`` parameter fails here: use app.web's DbId / DbInt. The
    served schema (the /api/v1 operations) and the pages' schema are both checked."""
    if which == "served":
        schema = admin_client.get("/api/openapi.json").json()
    else:
        schema = every_route_schema()
    found = []
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            for param in op.get("parameters", []):
                where = f"{method.upper()} {path} {param['in']} {param['name']}"
                found += _unbounded(schema, param["schema"], where)
            for content in op.get("requestBody", {}).get("content", {}).values():
                found += _unbounded(schema, content["schema"], f"{method.upper()} {path} form")
    assert found == []
    assert any(
        p.get("schema", {}).get("maximum") == 2**31 - 1
        for ops in schema["paths"].values()
        for op in ops.values()
        for p in op.get("parameters", [])
    )
