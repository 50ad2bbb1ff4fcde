"""XSS in real Chromium: a corpus of hostile strings in every free-text field, every page that
shows them opened as admin and as rater. No payload may run and no dialog may open.

The main pass runs with the CSP bypassed (``bypass_csp=True``) so that it tests the escaping
itself, not only the CSP; a second pass with the CSP on checks the header's own effect."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy.engine import Engine
from sqlmodel import Session

from tests import factories
from tests.browser.conftest import browser_login
from tests.browser.xss_corpus import LITERALS, PAYLOADS, text_for
from tests.security.world import World, build_world

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

FIRED = "Object.keys(window).filter(k => k.startsWith('__xss_'))"
# Elements no page of ours contains; finding one means a payload became markup.
INJECTED = (
    "script:not([src]), iframe, object, embed, base, meta[http-equiv], body [onerror],"
    " [onload], [onfocus], [ontoggle], [hx-on\\:\\:load], a[href^='javascript:' i],"
    " a[href^='data:' i], form[action^='javascript:' i], [id^=xss]"
)


@pytest.fixture
def world(committed_db: Engine) -> tuple[World, factories.UserWithPassword]:
    with Session(committed_db, expire_on_commit=False) as s:
        world = build_world(s, text_for)
        fresh = factories.make_user(s, role="rater")
        fresh.user.display_name = PAYLOADS[0]
        s.add(fresh.user)
        s.commit()
    return world, fresh


class Watch:
    """Dialogs opened and payload globals set, across every page a tab visits."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.problems: dict[str, object] = {}
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: object) -> None:
        self.dialogs.append(getattr(dialog, "message", "?"))
        dialog.dismiss()  # type: ignore[attr-defined]

    def check(self, label: str) -> None:
        self.page.wait_for_load_state("load")
        self.page.wait_for_timeout(50)  # let onerror/onload handlers of broken images fire
        fired = self.page.evaluate(FIRED)
        injected = self.page.evaluate(
            f"Array.from(document.querySelectorAll({INJECTED!r}))"
            ".map(e => e.outerHTML.slice(0, 80))"
        )
        if fired or injected:
            self.problems[label] = {"fired": fired, "injected": injected}

    def visit(self, url: str) -> None:
        response = self.page.goto(url)
        assert response is not None and response.status < 500, (url, response and response.status)
        self.check(url)


def _context(browser: Browser, base: str, bypass_csp: bool) -> Iterator[Page]:
    context = browser.new_context(base_url=base, bypass_csp=bypass_csp)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


# Files served as downloads (exports, bundles, harness files): not pages a browser renders.
DOWNLOADS = (".csv", ".jsonl", ".parquet", ".zip", ".py", ".yaml")


def _html_urls(world: World) -> list[str]:
    return [
        u
        for u in world.get_urls()
        if not u.startswith("/api/")
        and not u.endswith(DOWNLOADS)
        and "/docs" not in u
        and not u.endswith("/export")
        and u != "/healthz"
    ]


@pytest.mark.parametrize("bypass_csp", [True, False], ids=["escaping", "csp"])
def test_no_payload_runs_anywhere(
    browser: Browser,
    live_server: str,
    world: tuple[World, factories.UserWithPassword],
    bypass_csp: bool,
) -> None:
    w, fresh = world
    assert len(PAYLOADS) >= 30
    pages = _context(browser, live_server, bypass_csp)
    page = next(pages)
    watch = Watch(page)
    browser_login(page, w.admin)
    urls = _html_urls(w)
    assert len(urls) > 25
    for url in urls:
        watch.visit(url)
    # HTMX navigation too: partials swapped into a page that is already loaded.
    watch.visit(f"/runs/{w.ids['run_id']}")
    page.evaluate(
        "url => htmx.ajax('GET', url, {target: 'main', swap: 'innerHTML'})",
        f"/runs/{w.ids['run_id']}/replies",
    )
    page.wait_for_timeout(300)
    watch.check("htmx replies partial")
    # Autoescape is on: template syntax in a statement shows literally.
    watch.visit(f"/sets/{w.ids['set_id']}")
    body = page.inner_text("body")
    assert all(literal in body for literal in LITERALS), "template syntax was evaluated"
    assert PAYLOADS[0] in body  # shown as text, not dropped
    if bypass_csp:
        page.screenshot(path=str(SHOTS / "xss-set-page.png"), full_page=True)
    # A file name and set name from an upload, shown on the preview and the list.
    watch.visit("/sets/upload")
    page.fill("input[name=name]", PAYLOADS[5][:110])
    page.set_input_files(
        "input[name=file]",
        {
            "name": PAYLOADS[2].replace("/", "_") + ".csv",
            "mimeType": "text/csv",
            "buffer": (
                "statement,truth,negation,explanation,category\n"
                + f'"{PAYLOADS[1].replace(chr(34), chr(39))}",true,not it,because,cat\n'
            ).encode(),
        },
    )
    page.click("form[action='/sets/upload'] button[type=submit]")
    page.wait_for_load_state("networkidle")
    watch.check("upload preview")
    assert "Preview" in page.inner_text("body")
    page.context.close()

    rater_pages = _context(browser, live_server, bypass_csp)
    page = next(rater_pages)
    rater_watch = Watch(page)
    browser_login(page, fresh)
    rater_watch.visit("/rate")
    page.wait_for_selector("[data-rating-start]")
    rater_watch.check("rating start (guidelines)")
    page.click("[data-rating-start] button")
    page.wait_for_selector("[data-rating-form]")
    rater_watch.check("rating page")
    if bypass_csp:
        page.screenshot(path=str(SHOTS / "xss-rating-page.png"), full_page=True)
    rater_watch.visit("/rate/guidelines")
    page.context.close()
    noted = _context(browser, live_server, bypass_csp)
    page = next(noted)
    noted_watch = Watch(page)
    browser_login(page, w.raters[0])
    for url in ("/rate", "/rate/mine", f"/rate/mine/{w.ids['rating_id']}"):
        noted_watch.visit(url)
    page.context.close()

    problems = {**watch.problems, **rater_watch.problems, **noted_watch.problems}
    dialogs = watch.dialogs + rater_watch.dialogs + noted_watch.dialogs
    assert not problems, problems
    assert not dialogs, dialogs
