"""Every main page fits a 1280x800 window: nothing is wider than the screen (no horizontal
scroll bar), with data in every table: a rated run of two and one of three arms, a rating
round, an SDI dataset, a training run, users.

With SDILAB_LAYOUT_SHOTS=<dir> it also saves a full-page screenshot of each page there (to look
at them; nothing is compared)."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.models import Reply, TrainingRun
from app.rating import service as rating_service
from tests import factories
from tests.browser.conftest import browser_login
from tests.metrics import helpers
from tests.training.sdi_like import make_dataset

pytestmark = pytest.mark.browser
WIDTH = 1280


@pytest.fixture
def wide_page(browser: Browser, live_server: str) -> Iterator[Page]:
    """A 1280 x 800 window, JavaScript on."""
    context = browser.new_context(base_url=live_server, viewport={"width": WIDTH, "height": 800})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def _world(engine: Engine) -> tuple[factories.UserWithPassword, list[str]]:
    """Data behind every page, and the pages' paths."""
    with Session(engine, expire_on_commit=False) as s:
        admin = factories.make_user(s, role="admin")
        raters = helpers.make_raters(s, 3)
        runs = []
        for seed, arms in ((1, ("baseline", "sdi")), (2, ("baseline", "sdi", "few-shot sdi"))):
            question_set = factories.make_question_set(s, n=6)
            run = factories.make_run(s, question_set, arms=arms)
            helpers.random_ratings(s, run, raters, admin.id, seed=seed)
            runs.append(run)
        a, b = (r.id for r in runs)
        round_ = rating_service.open_round(s, run_ids=[a or 0], name="layout round")
        reply = s.exec(select(Reply).where(Reply.run_id == a).order_by(col(Reply.id))).first()
        template = factories.make_template(s)
        dataset = make_dataset(s, factories.make_question_set(s, n=2), n_train=6, n_val=2)
        training = TrainingRun(name="smol-sdi", dataset_id=dataset.id or 0, status="succeeded")
        s.add(training)
        s.commit()
        assert reply is not None
        paths = [
            "/",
            "/sets",
            f"/sets/{runs[0].question_set_id}",
            "/sets/upload",
            "/templates",
            "/templates/new",
            f"/templates/{template.id}/edit",
            "/models",
            "/models/new",
            "/runs",
            "/runs/new",
            f"/runs/{a}",
            f"/runs/{a}/replies/{reply.id}",
            "/results",
            f"/results/runs/{a}",
            f"/results/runs/{b}",
            f"/results/runs/{a}/judge",
            f"/results/runs/{a}/judges",
            f"/results/compare?runs={a},{b}",
            "/imports/replies",
            "/rating/rounds",
            f"/rating/rounds/{round_.id}",
            f"/rating/rounds/{round_.id}/adjudicate",
            "/rate",
            "/rate/mine",
            "/rate/guidelines",
            "/sdi",
            "/sdi/new",
            f"/sdi/{dataset.id}",
            "/training",
            f"/training/{training.id}",
            "/users",
            "/account",
            "/experiments/paper",
        ]
    return admin, paths


def test_every_main_page_fits_1280_px(committed_db: Engine, wide_page: Page) -> None:
    admin, paths = _world(committed_db)
    page = wide_page
    browser_login(page, admin)
    shots = os.environ.get("SDILAB_LAYOUT_SHOTS")
    too_wide: dict[str, int] = {}
    for path in paths:
        response = page.goto(path)
        assert response is not None and response.status == 200, (path, response)
        page.wait_for_load_state("load")
        # What is folded away must fit too (the results' metric tables, the how-tos).
        page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > WIDTH:
            too_wide[path] = width
        # A table in a scrolling box fits too: none of them needs its scroll bar at 1280 px.
        inner = page.evaluate(
            "Math.max(0, ...[...document.querySelectorAll('.scroll, .table-scroll')]"
            ".map(e => e.scrollWidth - e.clientWidth))"
        )
        if inner > 1:
            too_wide[f"{path} (a scrolled table)"] = WIDTH + inner
        if shots:
            name = path.strip("/").replace("/", "_").replace("?", "_") or "home"
            Path(shots).mkdir(parents=True, exist_ok=True)
            height = page.evaluate("document.documentElement.scrollHeight")
            for part, top in enumerate(range(0, height, 1600)):
                clip = {"x": 0, "y": top, "width": WIDTH, "height": min(1600, height - top)}
                target = Path(shots) / f"{name}-{part}.png"
                page.screenshot(path=str(target), full_page=True, clip=clip)  # type: ignore[arg-type]
    assert not too_wide, f"pages wider than {WIDTH} px: {too_wide}"
    # The measure sees an overflow when there is one.
    page.evaluate(
        "document.querySelector('main').append(Object.assign("
        "document.createElement('div'), {style: 'width: 1500px; height: 1px'}))"
    )
    assert page.evaluate("document.documentElement.scrollWidth") > WIDTH
