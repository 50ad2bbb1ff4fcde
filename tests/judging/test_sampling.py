"""Sampled rating rounds: a stratified random sample of a run's replies with each reply's
inclusion probability stored, and PPI weighting the humans' replies by it."""

from collections import Counter

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.judging import report
from app.models import PromptVariant, RatingItem, Reply
from app.rating import leases, service
from app.rating.leases import RatingError
from tests import factories
from tests.metrics import helpers

KINDS = (("neutral", "none"), ("biased", "asserts"), ("biased", "negates"), ("noise", "asserts"))


def _strata(db: Session, run_id: int) -> Counter[tuple[int, str]]:
    rows = db.exec(
        select(Reply.arm_id, PromptVariant.kind)
        .join(PromptVariant, col(PromptVariant.id) == col(Reply.prompt_variant_id))
        .where(Reply.run_id == run_id)
    ).all()
    return Counter((int(a), str(k)) for a, k in rows)


def _items(db: Session, round_id: int) -> list[tuple[RatingItem, int, str]]:
    rows = db.exec(
        select(RatingItem, Reply.arm_id, PromptVariant.kind)
        .join(Reply, col(Reply.id) == col(RatingItem.reply_id))
        .join(PromptVariant, col(PromptVariant.id) == col(Reply.prompt_variant_id))
        .where(RatingItem.round_id == round_id)
    ).all()
    return [(item, int(arm), str(kind)) for item, arm, kind in rows]


def test_a_sampled_round_is_stratified_and_keeps_inclusion_probabilities(db: Session) -> None:
    run = factories.make_run(db, factories.make_question_set(db, n=20), kinds=KINDS)
    assert run.id is not None
    strata = _strata(db, run.id)  # 2 arms x 3 kinds: 20, 20, 40 replies per arm
    round_ = service.open_round(db, run_ids=[run.id], name="sample", sample_size=30, seed=4)
    items = _items(db, round_.id or 0)
    assert round_.item_count == len(items) == 30 and round_.sample_size == 30
    drawn = Counter((arm, kind) for _, arm, kind in items)
    assert set(drawn) == set(strata)
    for key, n in drawn.items():
        exact = 30 * strata[key] / sum(strata.values())
        assert abs(n - exact) < 1  # proportional allocation, largest remainders
    for item, arm, kind in items:
        assert item.inclusion_probability == pytest.approx(drawn[(arm, kind)] / strata[(arm, kind)])
    # The sum of the inverse probabilities estimates the number of replies exactly here.
    assert sum(1 / (i.inclusion_probability or 1) for i, _, _ in items) == pytest.approx(
        sum(strata.values())
    )
    # A sampled round takes in no later reply, even when asked to.
    assert leases.sync_round(db, round_) == 0
    assert len(_items(db, round_.id or 0)) == 30


def test_the_same_seed_draws_the_same_sample_and_bad_sizes_are_refused(db: Session) -> None:
    drawn = []
    for _ in range(2):
        run = factories.make_run(db, factories.make_question_set(db, n=10))
        round_ = service.open_round(db, run_ids=[run.id or 0], name="s", sample_size=8, seed=9)
        replies = db.exec(select(Reply.id).where(Reply.run_id == run.id).order_by(col(Reply.id)))
        position = {rid: i for i, rid in enumerate(replies.all())}
        drawn.append(sorted(position[i.reply_id] for i, _, _ in _items(db, round_.id or 0)))
    assert drawn[0] == drawn[1]
    run = factories.make_run(db, factories.make_question_set(db, n=3))
    with pytest.raises(RatingError, match="runs have 12 done"):
        service.open_round(db, run_ids=[run.id or 0], name="s", sample_size=13)
    with pytest.raises(RatingError, match="at least 4 replies"):
        service.open_round(db, run_ids=[run.id or 0], name="s", sample_size=3)
    with pytest.raises(RatingError, match="at least one"):
        service.open_round(db, run_ids=[run.id or 0], name="s", sample_size=0)


def test_round_form_opens_a_sampled_round(admin_client: TestClient, db: Session) -> None:
    run = factories.make_run(db, factories.make_question_set(db, n=10))
    page = admin_client.get("/rating/rounds")
    assert 'name="sample_size"' in page.text
    bad = admin_client.post(
        "/rating/rounds", data={"name": "s", "run_ids": [run.id], "sample_size": "abc"}
    )
    assert bad.status_code == 422
    made = admin_client.post(
        "/rating/rounds",
        data={"name": "s", "run_ids": [run.id], "sample_size": "10"},
        follow_redirects=False,
    )
    assert made.status_code in (200, 303)
    items = db.exec(select(RatingItem)).all()
    # 4 strata (2 arms x 2 kinds) of 10 replies: shares 3, 3, 2, 2.
    assert len(items) == 10
    assert sorted(i.inclusion_probability or 0 for i in items) == [0.2] * 4 + [0.3] * 6


def test_ppi_weights_the_sampled_replies(db: Session) -> None:
    run = factories.make_run(db, factories.make_question_set(db, n=30), kinds=KINDS)
    round_ = service.open_round(db, run_ids=[run.id or 0], name="s", sample_size=60, seed=2)
    raters = helpers.make_raters(db, 2)
    sampled = {i.reply_id for i, _, _ in _items(db, round_.id or 0)}
    for slot in helpers.slots(db, run):
        if slot.response.id in sampled:
            for rater in raters:
                helpers.add_rating(db, slot.response, rater, "correct", 4, "false")
    figures = report.judges_report(db, run, min_compared=10)
    assert figures.sampled and figures.human_labelled == 60
    parser = figures.judges[0]
    assert all(e.weighted and e.human_labelled <= 60 for e in parser.estimates)
    assert sum(e.human_labelled for e in parser.estimates if e.rate == "evasion") == 60
