"""Browser fixtures: the app served by uvicorn on a free port against the test database, and
headless Debian chromium driven by Playwright.

    @pytest.mark.browser
    def test_x(live_server: str, page: Page) -> None:
        page.goto(live_server + "/login")

``live_server`` uses ``committed_db`` (tables emptied before and after): write test data with
``Session(committed_db)`` and commit it before the browser asks for it. ``page_no_js`` is a
page with JavaScript disabled (plain form posts). ``browser_login(page, base, who)`` logs in.
"""

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy.engine import Engine

from app.main import create_app
from tests import factories

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(committed_db: Engine) -> Iterator[str]:
    """Base URL of the app served by uvicorn in a thread, on the (committed) test database."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


# Package scope: sync Playwright keeps an event loop running in this thread while it lives,
# which would break asyncio.run() in the tests that come after the browser tests.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless chromium for the whole test session."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    """A fresh browser context (no cookies) with JavaScript on."""
    context = browser.new_context(base_url=live_server)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def page_no_js(browser: Browser, live_server: str) -> Iterator[Page]:
    """A fresh browser context with JavaScript disabled: forms post and redirect."""
    context = browser.new_context(base_url=live_server, java_script_enabled=False)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


def browser_login(page: Page, who: factories.UserWithPassword) -> None:
    page.goto("/login")
    page.fill("input[name=email]", who.email)
    page.fill("input[name=password]", who.password)
    page.press("input[name=password]", "Enter")
    page.wait_for_url(lambda url: "/login" not in url)
