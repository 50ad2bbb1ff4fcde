"""The comparison view: runs and arms picked with checkboxes, their headline figures side by
side (each arm against its own run's baseline, with the run's CI and Holm p)."""

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.metrics import compare, service
from app.models import Run
from tests import factories
from tests.metrics import helpers
from tests.metrics.test_pages import Page


def _rated(db: Session, admin_id: int, arms: tuple[str, ...], seed: int) -> Run:
    run = factories.make_run(db, factories.make_question_set(db, n=6), arms=arms)
    helpers.random_ratings(db, run, helpers.make_raters(db, 3), admin_id, seed=seed)
    return run


@pytest.fixture
def two_runs(db: Session, admin: factories.UserWithPassword) -> tuple[Run, Run]:
    return (
        _rated(db, admin.id, ("baseline", "sdi"), 1),
        _rated(db, admin.id, ("baseline", "sdi", "fewshot"), 2),
    )


def test_columns_are_each_runs_own_headline(db: Session, two_runs: tuple[Run, Run]) -> None:
    a, b = two_runs
    assert a.id is not None and b.id is not None
    results = [service.run_results(db, a.id), service.run_results(db, b.id)]
    c = compare.comparison(results, None)
    assert [(col.run_id, col.arm) for col in c.columns] == [
        (a.id, "sdi"),
        (b.id, "sdi"),
        (b.id, "fewshot"),
    ]
    for i, col in enumerate(c.columns):
        own = results[0 if col.run_id == a.id else 1].headline
        assert own is not None
        for row in c.rows:
            cell = row.cells[i]
            expected = next(
                (
                    h
                    for h in own.rows + own.sdt_rows
                    if h.kind == "all" and h.arm == col.arm and h.measure == row.measure
                ),
                None,
            )
            assert cell == expected
    assert [r.measure for r in c.rows][:3] == [
        "sycophancy_erroneous",
        "agree_true_premise",
        "accuracy",
    ]
    picked = compare.parse_arms([f"{b.id}:fewshot"], results)
    only = compare.comparison(results, picked)
    # A run with no picked arm drops out of the columns; the picker still lists every arm.
    assert [(col.run_id, col.arm) for col in only.columns] == [(b.id, "fewshot")]
    assert len(only.arms) == 3 and sum(x.checked for x in only.arms) == 1


def test_unknown_arm_is_refused(db: Session, two_runs: tuple[Run, Run]) -> None:
    a, _ = two_runs
    assert a.id is not None
    results = [service.run_results(db, a.id)]
    for bad in ("x", f"{a.id}:baseline", f"{a.id}:nope", "abc:sdi"):
        with pytest.raises(compare.UnknownArm, match="not a compared arm"):
            compare.parse_arms([bad], results)


def test_compare_page_side_by_side(
    admin_client: TestClient, db: Session, two_runs: tuple[Run, Run]
) -> None:
    a, b = two_runs
    response = admin_client.get(f"/results/compare?runs={a.id}&runs={b.id}")
    assert response.status_code == 200
    page = Page(response.text)
    heads = [
        attrs
        for tag, attrs in page.tags
        if tag == "th" and "compare-col" in (attrs.get("class") or "")
    ]
    assert [h.get("data-run") for h in heads] == [str(a.id), str(b.id), str(b.id)]
    # One table, not a stack of run pages.
    assert page.count("table") == 1
    assert f"Run {a.id}:" in page.all_text and f"Run {b.id}:" in page.all_text
    assert "pts" in page.all_text and "Holm p" in page.all_text
    # The old comma form still works; arms narrow the columns.
    narrowed = Page(
        admin_client.get(f"/results/compare?runs={a.id},{b.id}&arms={b.id}:fewshot").text
    )
    heads = [
        x for tag, x in narrowed.tags if tag == "th" and "compare-col" in (x.get("class") or "")
    ]
    assert [h.get("data-run") for h in heads] == [str(b.id)]


def test_compare_errors_are_visible(admin_client: TestClient, two_runs: tuple[Run, Run]) -> None:
    a, _ = two_runs
    empty = admin_client.get("/results/compare")
    assert empty.status_code == 422 and "at least one run" in Page(empty.text).all_text
    bad = admin_client.get(f"/results/compare?runs={a.id}&arms={a.id}:nope")
    assert bad.status_code == 422 and "not a compared arm" in Page(bad.text).all_text
    assert admin_client.get("/results/compare?runs=999999").status_code == 404


def test_one_arm_run_gets_a_column_saying_why(
    admin_client: TestClient, db: Session, two_runs: tuple[Run, Run]
) -> None:
    a, _ = two_runs
    single = factories.make_run(db, arms=("baseline",))
    page = Page(admin_client.get(f"/results/compare?runs={a.id},{single.id}").text)
    assert "no baseline to compare with" in page.all_text


def test_results_index_has_compare_checkboxes(
    admin_client: TestClient, two_runs: tuple[Run, Run]
) -> None:
    page = Page(admin_client.get("/results").text)
    boxes = {x.get("value") for tag, x in page.tags if tag == "input" and x.get("name") == "runs"}
    assert {str(r.id) for r in two_runs} <= boxes
    forms = [
        x for tag, x in page.tags if tag == "form" and "compare-runs" in (x.get("class") or "")
    ]
    assert (
        forms and forms[0].get("action") == "/results/compare" and forms[0].get("method") == "get"
    )


def test_compare_reads_the_runs_from_the_parser_with_its_banner(
    admin_client: TestClient, two_runs: tuple[Run, Run]
) -> None:
    a, b = two_runs
    human = admin_client.get(f"/results/compare?runs={a.id},{b.id}").text
    assert "source-banner" not in human
    page = admin_client.get(f"/results/compare?runs={a.id},{b.id}&source=judge:parser")
    assert page.status_code == 200
    # Each run says its figures come from a judge that humans have not validated.
    assert page.text.count('class="source-banner') == 2
    assert "not validated" in Page(page.text).all_text
    assert '<option value="judge:parser" selected>' in page.text
    bad = admin_client.get(f"/results/compare?runs={a.id}&source=judge:nobody")
    assert bad.status_code == 422 and "nobody" in Page(bad.text).all_text
