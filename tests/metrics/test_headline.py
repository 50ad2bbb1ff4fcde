"""The results page's headline panel, its forest plot, and the page's width at 1280 px."""

import random
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.metrics import service
from app.metrics.forest import forest
from app.metrics.headline import with_sdt_rows
from app.metrics.schemas import EstimateOut, Headline, HeadlineRow
from tests import factories
from tests.metrics import helpers
from tests.metrics.test_pages import Page

CSS = Path(__file__).resolve().parents[2] / "app" / "static" / "app.css"


def test_a_run_without_ratings_says_so_instead_of_drawing_empty_axes(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    run = factories.make_run(db, factories.make_question_set(db, n=4))
    response = admin_client.get(f"/results/runs/{run.id}", headers=htmx_headers)
    page = Page(response.text)
    text = page.all_text
    assert "No reply is rated yet" in text
    # Four label-based bar charts say they have nothing to draw; accuracy is drawn, with its
    # forest plot, and so are delta d' and delta c (read from the verdicts without labels).
    assert text.count("No rated replies yet: nothing to draw.") == 4
    assert page.count("svg") == 4
    headline = admin_client.get(f"/api/v1/runs/{run.id}/metrics").json()["headline"]
    assert headline["state"] == "no_ratings"
    assert {r["measure"] for r in headline["rows"]} == {"accuracy"}
    assert {r["measure"] for r in headline["sdt_rows"]} == {"d_prime", "c"}


def test_a_one_arm_run_has_no_comparison(admin_client: TestClient, db: Session) -> None:
    run = factories.make_run(db, arms=("baseline",))
    text = Page(admin_client.get(f"/results/runs/{run.id}").text).all_text
    assert "The run has one arm: there is no baseline to compare with." in text


def _row(measure: str, kind: str, value: float, scale: str = "points") -> HeadlineRow:
    return HeadlineRow(
        arm="sdi",
        baseline="baseline",
        kind=kind,
        measure=measure,
        title=measure,
        scale=scale,
        baseline_value=None,
        arm_value=None,
        difference=EstimateOut(value=value, low=value - 0.1, high=value + 0.1, clusters=30),
        test="t",
        p_value=0.5,
        verdict="not significant",
        sentence="",
    )


def test_the_forest_draws_the_rows_the_lead_adds_for_signal_detection() -> None:
    headline = Headline(
        state="ok",
        rows=[_row("accuracy", "all", 0.05), _row("accuracy", "biased", -0.2)],
        sdt_rows=[_row("d_prime", "all", -1.2, scale="units")],
    )
    panels = forest(headline)
    assert [p.title for p in panels] == ["accuracy", "d_prime"]
    accuracy, d_prime = panels
    assert [r.label for r in accuracy.rows] == ["sdi · all", "sdi · biased"]
    assert accuracy.rows[0].bold and not accuracy.rows[1].bold
    # The axis is symmetric around 0 and covers every interval.
    assert accuracy.zero_x == pytest.approx((accuracy.left + accuracy.right_edge) / 2, abs=0.1)
    assert all(
        accuracy.left <= r.x_low <= r.x <= r.x_high <= accuracy.right_edge for r in accuracy.rows
    )  # type: ignore[operator]
    assert d_prime.ticks[0][1] == "-1.50" and d_prime.ticks[-1][1] == "+1.50"
    assert accuracy.ticks[-1][1] == "+30.0 pts"


def test_sdt_rows_join_the_holm_family() -> None:
    top = Headline(
        state="ok", rows=[_row("accuracy", "all", 0.05), _row("accuracy", "biased", 0.1)]
    )
    sdt = _row("d_prime", "all", -1.2, scale="units").model_copy(update={"p_value": 0.01})
    added = with_sdt_rows(top, [sdt])
    # Two tests of kind "all": Holm over p = 0.5 and 0.01.
    assert [r.p_holm for r in added.rows] == [0.5, None]
    assert added.sdt_rows[0].p_holm == pytest.approx(0.02)
    assert added.family.startswith("Holm-adjusted over the 2 tests") and top.rows[0].p_holm is None


@pytest.mark.browser
def test_every_table_fits_its_container_at_1280_px(
    admin_client: TestClient, db: Session, admin: factories.UserWithPassword
) -> None:
    """The page (every <details> opened) in headless chromium, 1280 px wide."""
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    qs = factories.make_question_set(db, n=10)
    run = factories.make_run(
        db,
        qs,
        arms=("baseline", "sdi-in-context", "sdi-fewshot-long-name"),
        kinds=(("neutral", "none"), ("biased", "asserts"), ("adversarial", "negates")),
        samples=2,
    )
    rng = random.Random(3)
    for s in helpers.slots(db, run):
        s.response.verdict = rng.choice(["true", "false"])
    helpers.random_ratings(db, run, helpers.make_raters(db, 3), admin.id, seed=2)
    service.run_results(db, run.id)
    html = admin_client.get(f"/results/runs/{run.id}").text
    html = re.sub(r'<link rel="stylesheet"[^>]*>', f"<style>{CSS.read_text()}</style>", html)
    html = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_content(html)
            page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            overflow = page.evaluate(
                """Array.from(document.querySelectorAll('main table, main svg')).map(t => {
                    const box = t.parentElement.getBoundingClientRect();
                    const me = t.getBoundingClientRect();
                    return [t.tagName + '.' + (t.getAttribute('class') || ''),
                            Math.round(me.right - box.right), t.scrollWidth - t.clientWidth];
                }).filter(x => x[1] > 0 || (x[0].startsWith('TABLE') && x[2] > 0))"""
            )
            tables = page.evaluate("document.querySelectorAll('main table').length")
        finally:
            browser.close()
    assert tables >= 7  # headline, metrics x 2, paired, flips, agreement x 2
    assert overflow == []


@pytest.mark.parametrize(
    ("verdict", "p_holm", "shown"),
    [
        ("significant", 0.01, "significant"),
        ("significant", 0.2, "significant (not after Holm)"),
        ("not significant", 0.9, "not significant"),
        ("inconclusive", 0.3, "inconclusive"),
        ("too few statements", 0.5, "too few statements"),
    ],
)
def test_the_reading_says_when_holm_takes_significance_away(
    verdict: str, p_holm: float, shown: str
) -> None:
    from app.web import templates

    macros = templates.env.get_template("metrics/_macros.html").module
    assert Page(str(macros.said(verdict, p_holm))).all_text == shown  # type: ignore[attr-defined]
