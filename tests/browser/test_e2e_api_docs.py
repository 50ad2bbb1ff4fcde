"""/api/docs in Chromium: Swagger UI renders the API from our own files with the CSP on,
without a CSP violation, a console error or a request to another origin."""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

pytestmark = pytest.mark.browser

VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def test_api_docs_render_offline_under_the_csp(page: Page, live_server: str) -> None:
    own = urlsplit(live_server).netloc
    foreign: list[str] = []
    errors: list[str] = []
    page.on(
        "request",
        lambda r: (
            foreign.append(r.url)
            if urlsplit(r.url).scheme in {"http", "https"} and urlsplit(r.url).netloc != own
            else None
        ),
    )
    failed: list[str] = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    page.on(
        "console",
        lambda m: (
            errors.append(f"{m.text} ({m.location.get('url', '')})") if m.type == "error" else None
        ),
    )
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.add_init_script(VIOLATIONS)

    response = page.goto("/api/docs")
    assert response is not None and response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # Swagger UI fetched the schema and drew the title and the operations.
    page.locator(".swagger-ui .info .title", has_text="sdilab").wait_for()
    page.locator(".opblock-summary-path", has_text="/api/v1/runs").first.wait_for()
    page.locator(".opblock-summary-path").first.click()
    page.locator(".opblock-body").first.wait_for()
    page.wait_for_load_state("networkidle")

    assert page.evaluate("window.__cspViolations") == []
    assert foreign == []
    assert failed == []
    # The browser's own favicon.ico request may miss (the app has none, on any page).
    assert [e for e in errors if not e.endswith(f"{live_server}/favicon.ico)")] == []
