"""The Judges page of a run, its JSON and CSV: the parser and LLM judges side by side, the
human consensus read as the results read it, and unvalidated judges labelled everywhere."""

import csv
import io
import random

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.judging import report
from app.judging.data import load_replies
from app.metrics import service as metrics
from app.models import JudgeLabel, Run
from tests import factories
from tests.metrics import helpers


def _rated_run(db: Session, *, questions: int = 30, seed: int = 3) -> Run:
    """A run whose replies two raters labelled (mostly alike), with two LLM judges: one
    copying the first rater, one labelling at random."""
    rng = random.Random(seed)
    qs = factories.make_question_set(db, n=questions)
    run = factories.make_run(
        db, qs, kinds=(("neutral", "none"), ("biased", "asserts"), ("biased", "negates"))
    )
    raters = helpers.make_raters(db, 2)
    good = factories.make_model_config(db, name="judge-good")
    noisy = factories.make_model_config(db, name="judge-noisy")
    labels = ("agree", "correct", "evasive")
    for slot in helpers.slots(db, run):
        first = rng.choice(labels)
        second = first if rng.random() < 0.85 else rng.choice(labels)
        verdict = "true" if slot.question.truth else "false"
        helpers.add_rating(db, slot.response, raters[0], first, 4, verdict)
        helpers.add_rating(db, slot.response, raters[1], second, 4, verdict)
        db.add(
            JudgeLabel(
                reply_id=slot.response.id,
                judge_model_id=good.id,
                rubric_version="v1",
                label=first,
                verdict=verdict,
                confidence=0.9,
            )
        )
        db.add(
            JudgeLabel(
                reply_id=slot.response.id,
                judge_model_id=noisy.id,
                rubric_version="v1",
                label=rng.choice(labels),
                verdict=rng.choice(["true", "false"]),
            )
        )
    db.flush()
    return run


def test_human_consensus_is_the_results_label(db: Session) -> None:
    run = _rated_run(db, questions=12)
    assert run.id is not None
    replies = load_replies(db, run.id)
    results = metrics.run_results(db, run.id, resamples=50, use_snapshot=False)
    rows = [m for m in results.metrics if m.kind == "all"]
    for row in rows:
        arm = next(a for a, name in replies.arms.items() if name == row.arm)
        at = replies.arm == arm
        assert int((replies.human_label[at] >= 0).sum()) == row.sycophancy_all.n
        agree_err = (replies.human_label[at] == 0) & replies.erroneous[at]
        assert int(agree_err.sum()) == row.sycophancy_all.k


def test_report_ranks_the_judges_and_gates_validation(db: Session) -> None:
    run = _rated_run(db)
    figures = report.judges_report(db, run, min_compared=50)
    by_name = {j.name: j for j in figures.judges}
    assert list(by_name) == [report.PARSER_NAME, "judge-good", "judge-noisy"]
    good, noisy, parser = by_name["judge-good"], by_name["judge-noisy"], by_name[report.PARSER_NAME]
    assert good.validated and good.status == "validated"
    assert not noisy.validated and noisy.status == "not validated"
    assert good.label.kappa.value > noisy.label.kappa.value  # type: ignore[operator]
    assert good.mean_confidence == pytest.approx(0.9) and good.with_confidence == good.labelled
    assert parser.kind == "parser" and parser.version.startswith("offline default")
    assert parser.labelled == figures.done_replies
    # Every arm x rate has PPI, judge-only and human-only estimates; humans labelled every
    # reply with a consensus, so the human-only estimate is the full rate.
    assert {e.rate for e in good.estimates} == set(report.RATES)
    assert len(good.estimates) == 2 * len(report.RATES)
    for e in good.estimates:
        assert e.ppi.value is not None and e.human_only.value is not None
        assert e.judge_status == "validated"
    assert all(e.judge_status == "not validated" for e in noisy.estimates)
    # Not enough compared replies: nobody is validated.
    strict = report.judges_report(db, run, min_compared=10_000)
    assert not any(j.validated for j in strict.judges)
    assert "at least 10000 needed" in strict.judges[1].reason
    only = report.judges_report(db, run, judge="judge-noisy")
    assert [j.name for j in only.judges] == ["judge-noisy"]


def test_page_api_and_csv_label_unvalidated_judges(admin_client: TestClient, db: Session) -> None:
    run = _rated_run(db)
    page = admin_client.get(f"/results/runs/{run.id}/judges")
    assert page.status_code == 200
    assert "judge-good" in page.text and "judge-noisy" in page.text
    assert page.text.count("not validated") >= 1 + 2 * len(report.RATES)
    assert report.PARSER_NAME in page.text
    api = admin_client.get(f"/api/v1/runs/{run.id}/judges").json()
    statuses = {j["name"]: j["status"] for j in api["judges"]}
    assert statuses["judge-noisy"] == "not validated" and statuses["judge-good"] == "validated"
    body = admin_client.get(f"/results/runs/{run.id}/judges/figures.csv?min_compared=10000")
    rows = list(csv.DictReader(io.StringIO(body.text)))
    assert rows and {r["status"] for r in rows} == {"not validated"}
    assert {r["judge"] for r in rows} == {report.PARSER_NAME, "judge-good", "judge-noisy"}
    assert admin_client.get("/results/runs/999999/judges").status_code == 404
    assert admin_client.get(f"/results/runs/{run.id}/judges?min_compared=0").status_code == 422


def test_judge_panel_links_the_judges_page(admin_client: TestClient, db: Session) -> None:
    run = factories.make_run(db)
    page = admin_client.get(f"/results/runs/{run.id}/judge")
    assert f'href="/results/runs/{run.id}/judges"' in page.text


def test_raters_cannot_see_the_judges_page(rater_client: TestClient, db: Session) -> None:
    run = factories.make_run(db)
    for url in (
        f"/results/runs/{run.id}/judges",
        f"/api/runs/{run.id}/judges/figures",
        f"/api/v1/runs/{run.id}/judges",
        f"/results/runs/{run.id}/judges/figures.csv",
    ):
        assert rater_client.get(url).status_code in (302, 303, 403)
