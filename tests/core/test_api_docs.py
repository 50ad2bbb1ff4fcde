"""/api/docs: Swagger UI served from our own static files, under a CSP that allows only 'self'."""

from fastapi.testclient import TestClient

from app.security_headers import CONTENT_SECURITY_POLICY
from tests.html import find, parse


def _directive(csp: str, name: str) -> list[str]:
    for part in csp.split(";"):
        words = part.split()
        if words and words[0] == name:
            return words[1:]
    raise AssertionError(f"no {name} in {csp!r}")


def test_docs_page_loads_only_own_scripts_and_styles(client: TestClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert _directive(csp, "script-src") == ["'self'"]
    assert _directive(csp, "style-src") == ["'self'"]
    assert _directive(csp, "default-src") == ["'self'"]

    scripts = find(page.text, "script")
    assert scripts, "the page has no script"
    for script in scripts:
        src = script.attrs.get("src", "")
        # No inline script: every script is a same-origin file.
        assert src.startswith("/static/") and not script.text, script
        assert client.get(src).status_code == 200, src
    styles = find(page.text, "link", rel="stylesheet")
    assert styles
    for link in styles:
        assert link.attrs["href"].startswith("/static/")
        assert client.get(link.attrs["href"]).status_code == 200
    assert not find(page.text, "style")
    assert not [e for e in parse(page.text) if "style" in e.attrs]
    assert "//" not in page.text.replace("<!doctype html>", "")  # no other origin named


def test_docs_page_points_at_the_openapi_document(client: TestClient) -> None:
    page = client.get("/api/docs")
    (root,) = find(page.text, "div", id="swagger-ui")
    schema = client.get(root.attrs["data-openapi-url"])
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "sdilab"
    assert "/api/docs" not in schema.json()["paths"]
