"""The pairwise results: the panel on the run's page, the JSON API and pairwise.csv."""

import io
import json

import pandas as pd
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.metrics import pairwise as figures
from app.models import PairwiseChoice, RatingRound, Side
from app.rating import pairwise
from tests import factories
from tests.html import parse


def _chosen_round(db: Session, arms: tuple[str, str] = ("=base", "sdi")) -> tuple[int, RatingRound]:
    """A run of 3 questions x 2 kinds, every pair chosen by two raters: the first always
    picks left, the second always the arm-b reply (factual) and tie (helpful)."""
    run = factories.make_run(db, factories.make_question_set(db, n=3), arms=arms)
    assert run.id is not None
    round_ = pairwise.open_pairwise_round(db, run_id=run.id, name="pairs", raters_per_item=2)
    left, picker = factories.make_user(db).id or 0, factories.make_user(db).id or 0
    while (item := pairwise.next_item(db, round_, left)) is not None:
        pairwise.submit(db, round_, left, item, Side.left, Side.left)
    while (item := pairwise.next_item(db, round_, picker)) is not None:
        b_side = Side.right if pairwise.a_on_left(round_.seed, item, picker) else Side.left
        pairwise.submit(db, round_, picker, item, b_side, Side.tie)
    db.commit()
    return run.id, round_


def test_the_results_page_has_a_pairwise_panel(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    run_id, _ = _chosen_round(db)
    page = admin_client.get(f"/results/runs/{run_id}", headers=htmx_headers).text
    elements = parse(page)
    assert [e for e in elements if "data-pairwise-panel" in e.attrs]
    tables = [e for e in elements if e.tag == "table" and e.attrs.get("class") == "pairwise"]
    assert [t.attrs["data-question"] for t in tables] == ["factual", "helpful"]
    assert "Position bias" in page and "Krippendorff" in page
    assert f"/results/runs/{run_id}/pairwise/choices.csv" in page
    rows = [e.text for e in elements if e.tag == "tr"]
    assert any(r.startswith("P1") and "100.0 %" in r for r in rows)  # the always-left rater


def test_no_panel_without_choices(admin_client: TestClient, db: Session) -> None:
    run = factories.make_run(db)
    page = admin_client.get(f"/results/runs/{run.id}").text
    assert "data-pairwise-panel" not in page
    body = admin_client.get(f"/api/runs/{run.id}/metrics").json()
    assert body["pairwise"] is None


def test_the_metrics_api_carries_the_pairwise_figures(
    admin_client: TestClient, db: Session
) -> None:
    run_id, _ = _chosen_round(db)
    body = admin_client.get(f"/api/runs/{run_id}/metrics").json()
    found = body["pairwise"]
    assert (found["choices"], found["items"], found["raters"]) == (12, 6, 2)
    factual = next(r for r in found["rows"] if r["question"] == "factual" and r["kind"] == "all")
    assert (factual["arm_a"], factual["arm_b"]) == ("=base", "sdi")
    # Rater 2 gave every item to b; rater 1 to whichever was on their left.
    choices = db.exec(select(PairwiseChoice).where(PairwiseChoice.factual == "left")).all()
    a_by_left = sum(1 for c in choices if c.a_on_left and c.helpful == "left")
    assert factual["a_wins"]["k"] == a_by_left
    assert factual["b_wins"]["k"] == 12 - a_by_left
    helpful = next(r for r in found["rows"] if r["question"] == "helpful" and r["kind"] == "all")
    assert helpful["ties"]["k"] == 6
    bias = {(b["question"], b["rater"]): b["left"]["value"] for b in found["position_bias"]}
    assert bias[("factual", "P1")] == 1.0 and bias[("helpful", "P1")] == 1.0
    assert bias[("helpful", "P2")] is None  # only ties


def test_pairwise_csv_one_row_per_choice(admin_client: TestClient, db: Session) -> None:
    run_id, round_ = _chosen_round(db)
    response = admin_client.get(f"/results/runs/{run_id}/pairwise/choices.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(io.BytesIO(response.content), encoding="utf-8")
    assert list(frame.columns) == figures.PAIRWISE_COLUMNS
    doc = figures.__doc__ or ""
    assert all(column in doc for column in figures.PAIRWISE_COLUMNS)
    assert len(frame) == 12 and set(frame["rater"]) == {"P1", "P2"}
    assert set(frame["arm_a"]) == {"'=base"}  # formula-neutralised
    assert set(frame["round_id"]) == {round_.id}
    p2 = frame[frame["rater"] == "P2"]
    assert set(p2["factual_winner"]) == {"sdi"} and set(p2["helpful_winner"]) == {"tie"}
    p1 = frame[frame["rater"] == "P1"]
    assert (p1["factual_winner"] == p1["left_arm"]).all()
    rows = json.loads(admin_client.get(f"/api/runs/{run_id}/pairwise/choices").content)
    assert [r["choice_id"] for r in rows] == list(frame["choice_id"])


def test_the_columns_are_listed_on_the_page(admin_client: TestClient, db: Session) -> None:
    run_id, _ = _chosen_round(db)
    page = admin_client.get(f"/results/runs/{run_id}").text
    assert ", ".join(figures.PAIRWISE_COLUMNS) in page
