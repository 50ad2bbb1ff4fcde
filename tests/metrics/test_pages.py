"""Results pages, CSV/JSON downloads and the export command."""

import io
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.metrics import exports
from tests import factories
from tests.metrics import helpers


@pytest.fixture
def rated_run(db: Session, admin: factories.UserWithPassword):  # type: ignore[no-untyped-def]
    """A finished run with three arms and a pushback variant, rated by three raters."""
    qs = factories.make_question_set(db, n=8)
    run = factories.make_run(
        db,
        qs,
        arms=("baseline", "sdi", "sdi-fewshot"),
        kinds=(("neutral", "none"), ("biased", "asserts"), ("pushback", "none")),
    )
    for s in helpers.slots(db, run):
        if s.variant.kind == "pushback":
            s.response.first_verdict = "true"
    raters = helpers.make_raters(db, 3)
    helpers.random_ratings(db, run, raters, admin.id, seed=4)
    # A reply whose text would be a formula in a spreadsheet.
    first = helpers.slots(db, run)[0].response
    first.text = '=HYPERLINK("http://evil")'
    db.flush()
    return run


class Page(HTMLParser):
    """Text, tags and attributes of a page, parsed (not string-matched)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(" ".join(data.split()))

    @property
    def all_text(self) -> str:
        return " ".join(self.text)

    def count(self, tag: str) -> int:
        return sum(1 for t, _ in self.tags if t == tag)


def test_results_page_shows_every_panel(
    admin_client: TestClient,
    rated_run,
    htmx_headers: dict[str, str],  # type: ignore[no-untyped-def]
) -> None:
    response = admin_client.get(f"/results/runs/{rated_run.id}", headers=htmx_headers)
    assert response.status_code == 200
    page = Page(response.text)
    text = page.all_text
    for expected in (
        "SR, erroneous",
        "SR, all (paper)",
        "Agree, true premise",
        "Helpfulness (1\u20135)",
        "Headline: did each arm reduce sycophancy without becoming contrarian or less accurate?",
        "Δ sycophancy rate (over erroneous premises)",
        "Δ agreement with true premises",
        "Δ accuracy",
        "Holm-adjusted over the",
        "sign-flip permutation test over statements",
        "statement bootstrap",
        "Fewer than 20 statements behind",
        "Flips against the neutral variant",
        "Pushback",
        "Krippendorff's \u03b1, label (nominal)",
        "Fleiss' \u03ba",
        "Cohen's \u03ba",
        "How to read this page",
        "sdi vs baseline, accuracy",
        "sdi-fewshot vs baseline, accuracy",
        "R1",
    ):
        assert expected in text, expected
    # Five bar charts and a forest plot per headline measure with a difference (random
    # ratings: which pairs are labelled in both arms depends on the database's ids).
    head = admin_client.get(f"/api/v1/runs/{rated_run.id}/metrics").json()["headline"]
    rows = head["rows"] + head["sdt_rows"]  # delta d' and delta c too
    drawn = {r["measure"] for r in rows if r["difference"]["value"] is not None}
    assert {"accuracy", "sycophancy_erroneous", "d_prime", "c"} <= drawn
    labels = [a.get("aria-label") or "" for t, a in page.tags if t == "svg"]
    assert len([x for x in labels if x.startswith("Forest plot")]) == len(drawn)
    assert len(labels) == 5 + len(drawn) and page.count("rect") > 10
    assert page.count("circle") == sum(r["difference"]["value"] is not None for r in rows)
    few = [r for r in rows if r["kind"] == "all" and r["verdict"] == "too few statements"]
    assert f"Fewer than 20 statements behind {len(few)} of these differences" in text
    assert page.count("details") >= 5
    # Eight statements: no significance is claimed anywhere, either way.
    data = admin_client.get(f"/api/v1/runs/{rated_run.id}/metrics").json()
    for sentence in [p["sentence"] for p in data["paired"]] + [r["sentence"] for r in rows]:
        assert "significant difference" not in sentence, sentence
        assert "too few to speak of significance" in sentence or "no paired" in sentence
    assert "significant" not in {p["verdict"] for p in data["paired"]}
    assert not any("style" in attrs for _, attrs in page.tags)
    assert page.count("script") == (0 if htmx_headers else 3)
    assert (page.count("html") == 1) is not bool(htmx_headers)


def test_helpfulness_is_never_a_percentage(admin_client: TestClient, rated_run) -> None:  # type: ignore[no-untyped-def]
    data = admin_client.get(f"/api/v1/runs/{rated_run.id}/metrics").json()
    for row in data["metrics"]:
        value = row["helpfulness"]["value"]
        assert value is None or 1 <= value <= 5


def test_results_are_admin_only(rater_client: TestClient, rated_run) -> None:  # type: ignore[no-untyped-def]
    assert rater_client.get(f"/results/runs/{rated_run.id}").status_code == 403
    assert rater_client.get(f"/results/runs/{rated_run.id}/ratings.csv").status_code == 403
    assert rater_client.get(f"/api/v1/runs/{rated_run.id}/metrics").status_code == 403


def test_missing_run_is_404(admin_client: TestClient) -> None:
    assert admin_client.get("/results/runs/999999").status_code == 404
    assert admin_client.get("/results/runs/999999/metrics.csv").status_code == 404
    assert admin_client.get("/results/compare?runs=x").status_code == 422


def test_compare_page_shows_each_run(
    admin_client: TestClient,
    db: Session,
    rated_run,
    htmx_headers: dict[str, str],  # type: ignore[no-untyped-def]
) -> None:
    other = factories.make_run(db)
    response = admin_client.get(
        f"/results/compare?runs={rated_run.id},{other.id}", headers=htmx_headers
    )
    assert response.status_code == 200
    text = Page(response.text).all_text
    assert f"Run {rated_run.id}:" in text and f"Run {other.id}:" in text


@pytest.mark.parametrize("what", ["metrics", "replies", "ratings"])
def test_csv_opens_in_pandas_with_the_documented_columns(
    admin_client: TestClient,
    rated_run,
    what: str,  # type: ignore[no-untyped-def]
) -> None:
    response = admin_client.get(f"/results/runs/{rated_run.id}/{what}.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(io.BytesIO(response.content), encoding="utf-8")
    assert list(frame.columns) == exports.COLUMNS[what]
    doc = exports.__doc__ or ""
    for column in exports.COLUMNS[what]:
        stem, _, suffix = column.rpartition("_")
        documented = column in doc or (
            (f"``{stem}``" in doc or stem in doc) and f"_{suffix}``" in doc
        )
        assert documented, f"{column} is not documented"
    assert len(frame) > 0
    if what == "replies":
        assert len(frame) == 8 * 3 * 3
        assert '\'=HYPERLINK("http://evil")' in set(frame["reply"])
        assert frame["mean_helpfulness"].dropna().between(1, 5).all()
    if what == "ratings":
        assert set(frame["rater"]) <= {"R1", "R2", "R3"}
    if what == "metrics":
        assert set(frame["kind"]) == {"neutral", "biased", "pushback", "all"}
        assert frame["helpfulness"].dropna().between(1, 5).all()


def test_columns_are_documented_on_the_page(admin_client: TestClient, rated_run) -> None:  # type: ignore[no-untyped-def]
    text = Page(admin_client.get(f"/results/runs/{rated_run.id}").text).all_text
    for cols in exports.COLUMNS.values():
        assert ", ".join(cols) in text


def test_json_rows_match_the_csv(admin_client: TestClient, rated_run) -> None:  # type: ignore[no-untyped-def]
    rows = admin_client.get(f"/api/v1/runs/{rated_run.id}/ratings?limit=1000").json()["items"]
    frame = pd.read_csv(
        io.BytesIO(admin_client.get(f"/results/runs/{rated_run.id}/ratings.csv").content)
    )
    assert len(rows) == len(frame)
    assert [r["rating_id"] for r in rows] == list(frame["rating_id"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("fine", "fine"),
        (-2, -2),
    ],
)
def test_formula_cells_are_neutralised(value: object, expected: object) -> None:
    assert exports.neutralise(value) == expected


def test_export_command_writes_the_csv(
    committed_db,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from typer.testing import CliRunner

    from app.cli import cli
    from app.db import session_scope

    with session_scope(committed_db) as session:
        admin = factories.make_user(session, role="admin")
        run = factories.make_run(session)
        helpers.random_ratings(session, run, helpers.make_raters(session, 3), admin.id)
        run_id = run.id
    out = tmp_path / "ratings.csv"
    result = CliRunner().invoke(
        cli, ["export", str(run_id), "--what", "ratings", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert list(frame.columns) == exports.RATINGS_COLUMNS and len(frame) > 0
    bad = CliRunner().invoke(cli, ["export", str(run_id), "--what", "nope"])
    assert bad.exit_code != 0
