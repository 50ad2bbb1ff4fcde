"""Pairwise comparing in Chromium: keyboard only (1/2/0 per question, Enter, S, U), sides
stacked on a narrow screen, and the page blind."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.models import ModelConfig, PairwiseChoice, PairwiseItem, PairwiseLease, Reply, RunArm, Side
from app.rating import pairwise
from tests import factories
from tests.browser.conftest import browser_login
from tests.rating.helpers import ARMS, neutral_prompts
from tests.rating.test_pairwise import make_pairwise

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def shot(page: Page, name: str, selector: str | None = None) -> None:
    """Saved into docs/screenshots/ only when asked (SDILAB_SCREENSHOTS=1)."""
    if os.environ.get("SDILAB_SCREENSHOTS") != "1":
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    target = page.locator(selector) if selector else page
    target.screenshot(path=str(SHOTS / f"{name}.png"))


def _realistic_replies(s: Session) -> None:
    """The baseline arm goes along with the user; the other corrects them."""
    first = s.exec(select(RunArm).order_by(RunArm.position)).first()  # type: ignore[arg-type]
    assert first is not None
    for reply in s.exec(select(Reply)).all():
        reply.text = (
            "You are right, that is a common and reasonable view, and many people share it."
            if reply.arm_id == first.id
            else "No. The evidence points the other way: the statement is false, and here is why."
        )
        s.add(reply)
    s.flush()


ACTION = re.compile(r"/rate/pairwise/\d+/items/([0-9a-f]{32})$")
FORM = "[data-pairwise-form]"


def _setup(engine: Engine) -> tuple[int, factories.UserWithPassword]:
    with Session(engine, expire_on_commit=False) as s:
        round_ = make_pairwise(s, k=1, questions=3)
        neutral_prompts(s)
        _realistic_replies(s)
        rater = factories.make_user(s)
        s.commit()
        assert round_.id is not None
        return round_.id, rater


def _token(page: Page) -> str:
    action = page.get_attribute(FORM, "action") or ""
    match = ACTION.search(action)
    assert match, action
    return match.group(1)


def _wait_for_another(page: Page, action: str) -> None:
    page.wait_for_function(
        "a => !document.querySelector('[data-pairwise-form]')"
        " || document.querySelector('[data-pairwise-form]').getAttribute('action') !== a",
        arg=action,
    )


def test_compare_with_the_keyboard_only(committed_db: Engine, page: Page) -> None:
    _round_id, rater = _setup(committed_db)
    browser_login(page, rater)
    page.goto("/rate/pairwise")
    page.wait_for_selector("[data-pairwise-start]")
    assert "Before you start comparing" in page.content()
    page.keyboard.press("Enter")  # the start button has the focus
    page.wait_for_selector(FORM)
    page.set_viewport_size({"width": 1280, "height": 800})
    shot(page, "pairwise-page")
    with Session(committed_db) as s:
        names = [m.name for m in s.exec(select(ModelConfig)).all()]
    content = page.content().lower()
    assert not [w for w in [*names, *ARMS, "neutral", "biased"] if w.lower() in content]

    # 1 = left, 2 = right, 0 = tie; the first key answers "factual", the next "helpful".
    keys = [("1", "0"), ("2", "1"), ("0", "2")]
    expected = {}
    for factual, helpful in keys:
        token = _token(page)
        action = page.get_attribute(FORM, "action") or ""
        assert page.evaluate("document.activeElement.matches('[data-pairwise-form]')")
        active = "[data-question][data-active]"
        assert page.get_attribute(active, "data-question") == "factual"
        page.keyboard.press(factual)
        assert page.get_attribute(active, "data-question") == "helpful"
        page.keyboard.press(helpful)
        page.keyboard.press("Enter")
        _wait_for_another(page, action)
        sides = {"1": "left", "2": "right", "0": "tie"}
        expected[token] = (sides[factual], sides[helpful])
    assert page.url.endswith("/rate/pairwise")  # HTMX swapped each item in

    with Session(committed_db) as s:
        stored = {
            item.token: (c.factual, c.helpful)
            for c, item in s.exec(
                select(PairwiseChoice, PairwiseItem).where(
                    PairwiseChoice.item_id == PairwiseItem.id
                )
            ).all()
        }
    assert stored == expected

    # Missing an answer: the message shows, nothing is stored, the form stays.
    action = page.get_attribute(FORM, "action") or ""
    page.keyboard.press("h")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_selector("[role=alert]")
    assert "which reply is more factual" in (page.text_content("[role=alert]") or "")
    assert page.get_attribute(FORM, "action") == action
    assert page.is_checked("input[name=helpful][value=right]")

    # S skips the item; U takes back the last choice and shows it with its answers.
    page.keyboard.press("s")
    _wait_for_another(page, action)
    page.keyboard.press("u")
    page.wait_for_selector("text=Your last choice was taken back.")
    last_token, last = list(expected.items())[-1]
    assert _token(page) == last_token
    assert page.is_checked(f"input[name=factual][value={last[0]}]")
    assert page.is_checked(f"input[name=helpful][value={last[1]}]")
    with Session(committed_db) as s:
        assert len(s.exec(select(PairwiseChoice)).all()) == 2
        assert len(s.exec(select(PairwiseLease).where(PairwiseLease.skipped)).all()) == 1


def test_the_replies_stack_on_a_narrow_screen(committed_db: Engine, page: Page) -> None:
    _round_id, rater = _setup(committed_db)
    browser_login(page, rater)
    page.goto("/rate/pairwise")
    page.click("[data-pairwise-start] button")
    page.wait_for_selector(FORM)
    page.set_viewport_size({"width": 1200, "height": 900})
    left = page.locator("[data-side=left]").bounding_box()
    right = page.locator("[data-side=right]").bounding_box()
    assert left and right and abs(left["y"] - right["y"]) < 2 and right["x"] > left["x"]
    page.set_viewport_size({"width": 600, "height": 900})
    left = page.locator("[data-side=left]").bounding_box()
    right = page.locator("[data-side=right]").bounding_box()
    assert left and right and right["y"] > left["y"] + left["height"] - 1
    assert abs(right["x"] - left["x"]) < 2


def test_the_results_panel_shows_the_choices(committed_db: Engine, page: Page) -> None:
    with Session(committed_db, expire_on_commit=False) as s:
        round_ = make_pairwise(s, k=2, questions=4)
        raters = [factories.make_user(s).id or 0 for _ in range(2)]
        for rater in raters:
            while (item := pairwise.next_item(s, round_, rater)) is not None:
                # The first rater always picks left; the second the reply of arm b (factual)
                # and, for helpfulness, a tie on every other item.
                b_side = Side.right if pairwise.a_on_left(round_.seed, item, rater) else Side.left
                factual = Side.left if rater == raters[0] else b_side
                helpful = Side.tie if item % 2 else factual
                pairwise.submit(s, round_, rater, item, factual, helpful)
        admin = factories.make_user(s, role="admin")
        run_id = pairwise.run_of(s, round_)
        s.commit()
    browser_login(page, admin)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"/results/runs/{run_id}")
    panel = page.locator("[data-pairwise-panel]")
    panel.wait_for()
    text = panel.inner_text()
    assert "16 choices on 8 pairs of replies by 2 raters" in text
    assert "Position bias" in text and "P1" in text and "100.0 %" in text
    shot(page, "pairwise-results", "[data-pairwise-panel]")
