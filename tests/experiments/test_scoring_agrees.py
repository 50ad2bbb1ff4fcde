"""The CLI scorer, the results page, its JSON API and metrics.csv give the same figures."""

import io
import random

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.experiments.scoring import score_run, to_markdown
from app.models import Reply, RunArm
from tests import factories
from tests.metrics.test_pages import Page


@pytest.fixture
def parsed_run(db: Session):  # type: ignore[no-untyped-def]
    """24 statements x 2 kinds x 2 samples x 2 arms, verdicts only (no rating, no pushback)."""
    qs = factories.make_question_set(db, n=24)
    run = factories.make_run(db, qs, samples=2)
    rng = random.Random(7)
    rows = db.exec(
        select(Reply, RunArm.label)
        .join(RunArm, RunArm.id == Reply.arm_id)  # type: ignore[arg-type]
        .where(Reply.run_id == run.id)
    ).all()
    for reply, label in rows:
        weights = [0.7, 0.3] if label == "sdi" else [0.45, 0.55]
        reply.verdict = rng.choices(["true", "false"], weights)[0] if rng.random() > 0.1 else "none"
        db.add(reply)
    db.flush()
    return run


def test_cli_page_api_and_csv_give_the_same_accuracy(
    admin_client: TestClient, db: Session, parsed_run
) -> None:  # type: ignore[no-untyped-def]
    scores = score_run(db, parsed_run.id)
    api = admin_client.get(f"/api/v1/runs/{parsed_run.id}/metrics").json()
    csv = pd.read_csv(
        io.BytesIO(admin_client.get(f"/results/runs/{parsed_run.id}/metrics.csv").content)
    )
    page = Page(admin_client.get(f"/results/runs/{parsed_run.id}").text).all_text
    markdown = to_markdown(scores)
    for arm in ("baseline", "sdi"):
        cli = scores.rates[arm]["accuracy"]
        assert cli.low is not None and cli.high is not None and cli.value is not None
        row = next(m for m in api["metrics"] if m["arm"] == arm and m["kind"] == "all")
        rate = row["accuracy"]
        assert (rate["value"], rate["low"], rate["high"]) == (cli.value, cli.low, cli.high)
        assert (rate["n"], rate["statements"], rate["method"]) == (cli.n, 24, cli.method)
        assert rate["design_effect"] == pytest.approx(cli.design_effect, rel=1e-12)
        line = csv[(csv["arm"] == arm) & (csv["kind"] == "all")].iloc[0]
        assert (line["accuracy"], line["accuracy_low"], line["accuracy_high"]) == (
            cli.value,
            cli.low,
            cli.high,
        )
        assert line["accuracy_method"] == cli.method
        shown = f"{100 * cli.low:.1f}\u2013{100 * cli.high:.1f}"
        assert shown in page
        assert (
            f"{100 * cli.value:.1f} % [{100 * cli.low:.1f} %, {100 * cli.high:.1f} %]" in markdown
        )

    cli_diff = next(p for p in scores.paired if p.arm == "sdi" and p.measure == "accuracy")
    d = cli_diff.difference
    assert d.low is not None and d.high is not None and d.value is not None
    paired = next(
        p
        for p in api["paired"]
        if p["arm"] == "sdi" and p["kind"] == "all" and p["measure"] == "accuracy"
    )
    diff = paired["difference"]
    assert (diff["value"], diff["low"], diff["high"]) == (d.value, d.low, d.high)
    assert (paired["p_value"], paired["test"]) == (cli_diff.p_value, cli_diff.test)
    head = next(
        r for r in api["headline"]["rows"] if r["kind"] == "all" and r["measure"] == "accuracy"
    )
    assert head["difference"] == diff and head["p_value"] == cli_diff.p_value
    assert f"{100 * d.value:+.1f} pts ({100 * d.low:+.1f} to {100 * d.high:+.1f})" in page
    assert f"{100 * d.value:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}]" in markdown
    # 24 statements: the difference is read, and both say the same thing.
    assert api["headline"]["state"] == "no_ratings"
    assert head["verdict"] in ("significant", "not significant", "inconclusive")
    assert f"| {head['verdict']} |" in markdown
