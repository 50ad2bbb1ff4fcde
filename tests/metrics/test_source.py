"""The results read from human ratings, from one judge, or from judge + humans by PPI++.

The fixture is small enough to count by hand: 6 statements (0, 2, 4 true; 1, 3, 5 false) x
(neutral, biased/asserts) x 2 arms. Erroneous premises: the biased prompts of 1, 3, 5; true
premises: the biased prompts of 0, 2, 4.

Humans (one rater) rate every reply but those of statement 5: "agree" with verdict "true" on
the biased prompt of statement 1, else "correct" with the statement's truth.
The judge (an LLM judge, rubric "r1") says "agree" / "true" on every biased prompt, "correct"
with the truth on every neutral one, except "evasive" / "none" on the sdi arm's neutral
prompt of statement 0.
"""

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.metrics import service, sources
from app.models import JudgeLabel, Run
from tests import factories
from tests.metrics import helpers
from tests.metrics.test_pages import Page

RUBRIC = "r1"


@pytest.fixture
def judged_run(db: Session) -> tuple[Run, str]:
    qs = factories.make_question_set(db, n=6)
    run = factories.make_run(db, qs, arms=("baseline", "sdi"))
    (rater,) = helpers.make_raters(db, 1)
    judge = factories.make_model_config(db, name="judge-gpt")
    index = {q: i for i, q in enumerate(sorted({s.question.id for s in helpers.slots(db, run)}))}
    for s in helpers.slots(db, run):
        i = index[s.question.id]
        truth = "true" if s.question.truth else "false"
        biased = s.variant.kind == "biased"
        if i != 5:
            if biased and i == 1:
                helpers.add_rating(db, s.response, rater, "agree", verdict="true")
            else:
                helpers.add_rating(db, s.response, rater, "correct", verdict=truth)
        if s.arm.label == "sdi" and i == 0 and not biased:
            label, verdict = "evasive", "none"
        elif biased:
            label, verdict = "agree", "true"
        else:
            label, verdict = "correct", truth
        db.add(
            JudgeLabel(
                reply_id=s.response.id,
                judge_model_id=judge.id,
                rubric_version=RUBRIC,
                label=label,
                verdict=verdict,
                helpfulness=4,
            )
        )
    db.flush()
    return run, f"model-{judge.id}-{RUBRIC}"


def _all(results, arm: str):  # type: ignore[no-untyped-def]
    return next(m for m in results.metrics if m.arm == arm and m.kind == "all")


def test_human_source_is_the_default(db: Session, judged_run: tuple[Run, str]) -> None:
    run, _ = judged_run
    assert run.id is not None
    r = service.run_results(db, run.id, resamples=200)
    assert r.source.kind == "human" and r.source.banner == "" and r.ppi == []
    base = _all(r, "baseline")
    # Erroneous premises rated: statements 1 and 3; agreed on 1.
    assert (base.sycophancy_erroneous.k, base.sycophancy_erroneous.n) == (1, 2)
    assert (base.agree_true_premise.k, base.agree_true_premise.n) == (0, 3)
    assert (base.evasion.k, base.evasion.n) == (0, 10)
    # Effective verdict: human where rated, the parser's "false" on statement 5 (false).
    assert (base.accuracy.k, base.accuracy.n) == (11, 12)
    assert base.helpfulness.value == pytest.approx(3.0)


def test_judge_source_counts_the_judges_labels(db: Session, judged_run: tuple[Run, str]) -> None:
    run, judge = judged_run
    assert run.id is not None
    r = service.run_results(db, run.id, resamples=200, source=sources.parse(f"judge:{judge}"))
    assert r.source.kind == "judge" and r.source.judge == "judge-gpt"
    assert r.source.validated is False and r.source.status == "not validated"
    assert "not validated" in r.source.banner and "judge-gpt" in r.source.banner
    base, sdi = _all(r, "baseline"), _all(r, "sdi")
    assert (base.sycophancy_erroneous.k, base.sycophancy_erroneous.n) == (3, 3)
    assert (base.agree_true_premise.k, base.agree_true_premise.n) == (3, 3)
    assert (base.evasion.k, base.evasion.n) == (0, 12)
    assert (sdi.evasion.k, sdi.evasion.n) == (1, 12)
    # Biased prompts: "true" is right on 0, 2, 4 only; neutral: right but sdi's evasive one.
    assert (base.accuracy.k, base.accuracy.n) == (9, 12)
    assert (sdi.accuracy.k, sdi.accuracy.n) == (8, 12)
    assert base.rated == 12 and base.unrated == 0
    assert base.helpfulness.value is None  # not a judge's figure here
    # Every figure says whose labels it counts.
    assert "judge judge-gpt" in base.sycophancy_erroneous.method
    assert all("not validated" in p.difference.method for p in r.paired)
    # The human-human agreement stays the humans'.
    assert r.agreement is not None and r.agreement.rated_replies == 20


def test_ppi_source_gives_ppi_rates(db: Session, judged_run: tuple[Run, str]) -> None:
    run, judge = judged_run
    assert run.id is not None
    r = service.run_results(db, run.id, resamples=200, source=sources.parse(f"ppi:{judge}"))
    assert r.source.kind == "ppi" and r.metrics == [] and r.paired == [] and r.headline is None
    assert r.not_available
    rates = {(e.arm, e.rate): e for e in r.ppi}
    assert set(rates) == {(a, x) for a in ("baseline", "sdi") for x in sources.PPI_RATES}
    sr = rates[("baseline", "sycophancy_erroneous")]
    # Erroneous replies 1, 3, 5: the judge says agree on all; humans 1 of the 2 they rated.
    # theta = lam * 1 + 1/2 - lam * 1 = 1/2 whatever lam.
    assert (sr.replies, sr.judged, sr.human_labelled) == (3, 3, 2)
    assert sr.ppi.value == pytest.approx(0.5)
    assert sr.human_only.value == pytest.approx(0.5)
    assert sr.judge_only.value == pytest.approx(1.0)
    acc = rates[("baseline", "accuracy")]
    # Judge right on 9 of 12 (8 of the 10 rated); humans right on 9 of 10.
    assert acc.lam is not None
    assert acc.ppi.value == pytest.approx(acc.lam * 0.75 + 0.9 - acc.lam * 0.8)
    assert acc.human_only.value == pytest.approx(0.9)
    assert acc.judge_only.value == pytest.approx(0.75)
    assert acc.ppi.low is not None and acc.ppi.high is not None
    assert acc.ppi.low <= acc.ppi.value <= acc.ppi.high
    # Clustered by statement: 6 statements behind the arm's 12 replies.
    assert acc.statements == 6
    assert acc.effective_n is not None and acc.effective_n > 0
    ev = rates[("sdi", "evasion")]
    assert ev.judge_only.value == pytest.approx(1 / 12)
    assert ev.human_only.value == pytest.approx(0.0)


def test_unknown_judge_is_an_error(db: Session, judged_run: tuple[Run, str]) -> None:
    run, _ = judged_run
    assert run.id is not None
    with pytest.raises(sources.BadSource, match=r"no judge 'model-999-x'.*parser"):
        service.run_results(db, run.id, source=sources.parse("judge:model-999-x"))
    for bad in ("judge", "judge:", "humans", "ppi"):
        with pytest.raises(sources.BadSource, match="is not one of"):
            sources.parse(bad)


def test_page_banner_and_selector(admin_client: TestClient, judged_run: tuple[Run, str]) -> None:
    run, judge = judged_run
    human = Page(admin_client.get(f"/results/runs/{run.id}").text)
    assert "Source:" not in human.all_text
    options = [a.get("value") for tag, a in human.tags if tag == "option"]
    assert {"human", "judge:parser", f"judge:{judge}", f"ppi:{judge}"} <= set(options)
    response = admin_client.get(f"/results/runs/{run.id}", params={"source": f"judge:{judge}"})
    assert response.status_code == 200
    page = Page(response.text)
    assert "Source: judge judge-gpt (r1) (not validated:" in page.all_text
    assert any(
        tag == "p"
        and "source-banner" in (a.get("class") or "")
        and "warn" in (a.get("class") or "")
        for tag, a in page.tags
    )
    assert any(
        tag == "option" and a.get("value") == f"judge:{judge}" and "selected" in a
        for tag, a in page.tags
    )
    ppi_page = Page(admin_client.get(f"/results/runs/{run.id}?source=ppi:{judge}").text)
    assert "Rates by PPI++" in ppi_page.all_text
    assert "Not available from PPI" in ppi_page.all_text


def test_api_and_csv_carry_the_source(
    admin_client: TestClient, judged_run: tuple[Run, str]
) -> None:
    run, judge = judged_run
    data = admin_client.get(f"/api/v1/runs/{run.id}/metrics", params={"source": f"judge:{judge}"})
    body = data.json()
    assert body["source"]["validated"] is False
    assert body["source"]["banner"].startswith("Source: judge judge-gpt")
    assert admin_client.get(f"/api/v1/runs/{run.id}/metrics").json()["source"]["kind"] == "human"

    text = admin_client.get(
        f"/results/runs/{run.id}/metrics.csv", params={"source": f"judge:{judge}"}
    ).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and {r["source_status"] for r in rows} == {"not validated"}
    assert {r["source"] for r in rows} == {f"judge:{judge}"}
    base = next(r for r in rows if r["arm"] == "baseline" and r["kind"] == "all")
    assert float(base["accuracy"]) == pytest.approx(0.75)

    text = admin_client.get(f"/results/runs/{run.id}/metrics.csv?source=ppi:{judge}").text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["arm"] for r in rows] == ["baseline", "sdi"]
    assert float(rows[0]["sycophancy_erroneous"]) == pytest.approx(0.5)
    assert "PPI++" in rows[0]["sycophancy_erroneous_method"]
    assert rows[0]["source_status"] == "not validated"

    human = list(
        csv.DictReader(io.StringIO(admin_client.get(f"/results/runs/{run.id}/metrics.csv").text))
    )
    assert {r["source"] for r in human} == {"human"} and {r["source_status"] for r in human} == {""}


@pytest.mark.parametrize("bad", ["bogus", "judge:", "judge:model-999-x", "ppi:nobody"])
def test_bad_source_is_a_visible_422(
    admin_client: TestClient, judged_run: tuple[Run, str], bad: str
) -> None:
    run, _ = judged_run
    page = admin_client.get(f"/results/runs/{run.id}", params={"source": bad})
    assert page.status_code == 422
    text = Page(page.text).all_text
    assert "source" in text.lower() or "judge" in text.lower()
    api = admin_client.get(f"/api/v1/runs/{run.id}/metrics", params={"source": bad})
    assert api.status_code == 422 and api.json()["detail"]
    csv_response = admin_client.get(f"/results/runs/{run.id}/metrics.csv", params={"source": bad})
    assert csv_response.status_code == 422
    replies = admin_client.get(f"/results/runs/{run.id}/replies.csv", params={"source": bad})
    assert replies.status_code == 422


def test_judge_results_are_stored_until_labels_or_ratings_change(
    db: Session, judged_run: tuple[Run, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, judge = judged_run
    assert run.id is not None
    source = sources.parse(f"judge:{judge}")
    first = service.run_results(db, run.id, resamples=200, source=source)
    resolve = sources.resolve

    def no_read(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("read again although nothing changed")

    monkeypatch.setattr(sources, "resolve", no_read)
    again = service.run_results(db, run.id, resamples=200, source=source)
    assert again.metrics == first.metrics and again.source == first.source
    # The human results are stored apart: they do not serve the judge's.
    assert service.run_results(db, run.id, resamples=200).source.kind == "human"
    monkeypatch.setattr(sources, "resolve", resolve)
    slot = next(s for s in helpers.slots(db, run) if s.arm.label == "baseline")
    (other,) = helpers.make_raters(db, 1)
    helpers.add_rating(db, slot.response, other, "correct")
    changed = service.run_results(db, run.id, resamples=200, source=source)
    assert changed.agreement is not None
    assert changed.agreement.rated_replies == first.agreement.rated_replies  # type: ignore[union-attr]
    assert changed.agreement.multi_rated_replies == 1


def test_export_command_takes_a_source(committed_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from app.cli import cli
    from app.db import session_scope

    with session_scope(committed_db) as session:
        run = factories.make_run(session)
        (rater,) = helpers.make_raters(session, 1)
        for s in helpers.slots(session, run):
            helpers.add_rating(session, s.response, rater, "correct")
        run_id = run.id
    out = tmp_path / "metrics.csv"
    result = CliRunner().invoke(
        cli, ["export", str(run_id), "--source", "judge:parser", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows and {r["source"] for r in rows} == {"judge:parser"}
    assert {r["source_status"] for r in rows} == {"not validated"}
    for bad in (["--source", "bogus"], ["--source", "judge:nobody"]):
        failed = CliRunner().invoke(cli, ["export", str(run_id), *bad])
        assert failed.exit_code != 0
    nope = CliRunner().invoke(cli, ["export", str(run_id), "--source", "judge:nobody"])
    assert "no judge 'nobody'" in nope.output


def test_a_judge_that_agrees_with_humans_as_they_agree_is_validated(
    admin_client: TestClient, db: Session
) -> None:
    """Two raters who agree on every one of 104 replies, and a judge that says what they
    say: kappa 1 reaches the human-human alpha, so the figures are not marked unvalidated."""
    run = factories.make_run(db, factories.make_question_set(db, n=26), arms=("baseline", "sdi"))
    raters = helpers.make_raters(db, 2)
    judge = factories.make_model_config(db, name="good-judge")
    cycle = ("agree", "correct", "evasive")
    for i, s in enumerate(helpers.slots(db, run)):
        label = cycle[i % 3]
        for rater in raters:
            helpers.add_rating(db, s.response, rater, label, verdict="true")
        db.add(
            JudgeLabel(
                reply_id=s.response.id,
                judge_model_id=judge.id,
                rubric_version=RUBRIC,
                label=label,
                verdict="true",
            )
        )
    db.flush()
    assert run.id is not None
    slug = f"model-{judge.id}-{RUBRIC}"
    r = service.run_results(db, run.id, resamples=200, source=sources.parse(f"judge:{slug}"))
    assert r.source.validated is True and r.source.status == "validated" and not r.source.warn
    assert r.source.banner.startswith("Source: judge good-judge (r1) (validated:")
    human = service.run_results(db, run.id, resamples=200)
    for mine, theirs in zip(r.metrics, human.metrics, strict=True):
        assert (mine.sycophancy_erroneous.k, mine.evasion.k, mine.accuracy.k) == (
            theirs.sycophancy_erroneous.k,
            theirs.evasion.k,
            theirs.accuracy.k,
        )
    page = Page(admin_client.get(f"/results/runs/{run.id}?source=judge:{slug}").text)
    banner = [a for tag, a in page.tags if tag == "p" and "source-banner" in (a.get("class") or "")]
    assert banner and "warn" not in (banner[0].get("class") or "")
    assert banner[0].get("data-validated") == "true"
