"""Every GET route, requested by an admin with real ids: never a 5xx, and every HTML page
carries a CSP that forbids inline script and has no inline script, handler or style."""

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.security_headers import CONTENT_SECURITY_POLICY
from tests import factories
from tests.security.world import World, build_world


class _InlineFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k.lower(): v for k, v in attrs}
        for name, value in names.items():
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            if name == "style":
                self.problems.append(f"<{tag} style=...>")
            is_url = name in ("href", "src", "action", "formaction")
            if is_url and value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}>")
        if tag == "script" and not names.get("src"):
            self.problems.append("<script> without src")
        if tag == "style":
            self.problems.append("<style> block")


def inline_problems(html: str) -> list[str]:
    finder = _InlineFinder()
    finder.feed(html)
    return finder.problems


def script_src_directive(csp: str) -> str:
    directives = {d.split()[0]: d for d in (p.strip() for p in csp.split(";")) if d}
    return directives.get("script-src") or directives.get("default-src", "")


# FastAPI's Swagger UI pages bootstrap with an inline script (and a CDN bundle); the CSP
# blocks both, so they do not run. /api/openapi.json is the usable description of the API.
SWAGGER = {"/api/docs", "/docs/oauth2-redirect"}


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db, lambda slot: f"ordinary {slot}")


def test_csp_forbids_inline_script() -> None:
    script_src = script_src_directive(CONTENT_SECURITY_POLICY)
    assert script_src and "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert "*" not in script_src.split() and "data:" not in script_src
    assert "object-src 'none'" in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY


def test_every_page_has_the_csp_and_no_inline_code(
    client: TestClient, world: World, htmx_headers: dict[str, str]
) -> None:
    factories.login(client, world.admin)
    urls = world.get_urls()
    assert len(urls) > 50
    problems: dict[str, list[str]] = {}
    html_pages = 0
    for url in urls:
        response = client.get(url, headers=htmx_headers, follow_redirects=False)
        assert response.status_code < 500, (url, response.status_code, response.text[:300])
        csp = response.headers.get("content-security-policy", "")
        assert "'unsafe-inline'" not in script_src_directive(csp), url
        if response.headers.get("content-type", "").startswith("text/html"):
            html_pages += 1
            assert script_src_directive(csp) == "script-src 'self'", url
            if url in SWAGGER:
                continue
            found = inline_problems(response.text)
            if found:
                problems[url] = found
    assert html_pages > 30
    assert not problems, problems


def test_error_and_refusal_pages_carry_the_csp(client: TestClient) -> None:
    for response in (
        client.get("/sets/999999", follow_redirects=False),
        client.get("/no-such-page"),
        client.post("/logout", headers={"Sec-Fetch-Site": "cross-site"}),
    ):
        assert "script-src 'self'" in response.headers["content-security-policy"]


def test_rater_pages_have_no_inline_code(client: TestClient, world: World) -> None:
    factories.login(client, world.raters[0])
    for url in ("/rate", "/rate/guidelines", "/rate/mine", f"/rate/mine/{world.ids['rating_id']}"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert not inline_problems(response.text), url
    start = client.post(f"/rate/{world.ids['round_id']}/start", follow_redirects=True)
    assert start.status_code == 200 and not inline_problems(start.text)
    assert not re.search(r"<script(?![^>]*\bsrc=)", start.text)
