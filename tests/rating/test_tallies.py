"""The rating tallies stay equal to a recount from the ratings through every write path."""

import random

from sqlmodel import Session, select

from app.models import Label, Rating, RatingTally, Verdict
from app.rating import leases, oversight, service, submissions, tallies
from app.rating.schemas import AdjudicationInput, RatingInput
from tests import factories
from tests.rating.helpers import make_round

LABELS = ("agree", "correct", "evasive")


def _random_input(rng: random.Random) -> RatingInput:
    return RatingInput(
        label=Label(rng.choice(LABELS)),
        helpfulness=rng.randint(1, 5),
        verdict=Verdict(rng.choice(("true", "false", "none"))),
    )


def _check(db: Session, run_ids: list[int]) -> tallies.Counts:
    db.flush()
    expected = tallies.recount(db, run_ids)
    assert tallies.stored(db, run_ids) == expected
    return expected


def test_pure_counts_of_one_reply() -> None:
    votes = [
        tallies.Vote(1, "agree", 2, "true"),
        tallies.Vote(2, "agree", 4, "false"),
        tallies.Vote(3, "correct", 5, "false"),
    ]
    assert tallies.reply_tally(votes) == (3, 11, 2, 1, 0, 1, 2, 0, 0, 1, 0, 1, 1)
    rows = tallies.rater_rows(votes, None)
    # Final label "agree" (2 of 3). Rater 1's others: agree vs correct, a tie: no majority.
    assert rows[1] == (1, 1, 0, 0, 2, 1, 1, 0, 0)
    assert rows[3] == (1, 0, 1, 0, 5, 1, 0, 1, 0)
    # An adjudicated "correct" wins over the raters' majority.
    assert tallies.rater_rows(votes, "correct")[3][5:7] == (1, 1)
    assert tallies.pair_counts(votes) == {
        (1, 2, "agree", "agree"): 1,
        (1, 3, "agree", "correct"): 1,
        (2, 3, "agree", "correct"): 1,
    }
    assert tallies.plurality(["agree", "correct"]) is None
    assert tallies.plurality([]) is None


def test_tallies_follow_submit_revise_undo_skip_and_adjudication(
    db: Session, admin: factories.UserWithPassword
) -> None:
    rng = random.Random(3)
    round_, runs = make_round(db, k=3, questions=4)
    run_ids = [r.id or 0 for r in runs]
    raters = [factories.make_user(db).id or 0 for _ in range(4)]
    for _ in range(12):
        for rater in raters:
            rid = leases.next_for(db, round_, rater)
            if rid is None:
                continue
            if rng.random() < 0.15:
                submissions.skip(db, round_, rater, rid)
            else:
                submissions.submit(db, round_, rater, rid, _random_input(rng))
    counts = _check(db, run_ids)
    assert sum(t[1][0] for t in counts.tallies.values()) == len(db.exec(select(Rating)).all())
    assert counts.pairs  # several raters share replies

    ratings = list(db.exec(select(Rating).order_by(Rating.id)).all())  # type: ignore[arg-type]
    for rating in rng.sample(ratings, 8):
        service.revise(db, rating, rating.rater_id, _random_input(rng))
        _check(db, run_ids)

    for rater in raters[:3]:
        assert submissions.undo_last(db, round_, rater) is not None
        _check(db, run_ids)

    rated = sorted({r.reply_id for r in db.exec(select(Rating)).all()})
    for rid in rated[:5]:
        data = AdjudicationInput(label=Label(rng.choice(LABELS)), helpfulness=rng.randint(1, 5))
        oversight.adjudicate(db, rid, admin.id or 0, data)
        _check(db, run_ids)
    # A second adjudication of the same reply replaces the first one's effect.
    oversight.adjudicate(db, rated[0], admin.id or 0, AdjudicationInput(label=Label.evasive))
    _check(db, run_ids)

    # A rater who took everything back leaves no counts behind.
    lone = factories.make_user(db).id or 0
    rid = leases.next_for(db, round_, lone)
    if rid is not None:
        submissions.submit(db, round_, lone, rid, _random_input(rng))
        submissions.undo_last(db, round_, lone)
        counts = _check(db, run_ids)
        assert all(rater != lone for _run, rater in counts.raters)


def test_the_change_marker_moves_with_every_write(
    db: Session, admin: factories.UserWithPassword
) -> None:
    round_, runs = make_round(db, k=2, questions=1)
    run_id = runs[0].id or 0
    rater = factories.make_user(db).id or 0
    seen = {tallies.marker(db, run_id)}
    rid = leases.next_for(db, round_, rater)
    assert rid is not None
    rating_id = submissions.submit(db, round_, rater, rid, _random_input(random.Random(1)))
    seen.add(tallies.marker(db, run_id))
    rating = db.get(Rating, rating_id)
    assert rating is not None
    # A revision that changes no count (only the note) still moves the marker.
    same = RatingInput(
        label=Label(rating.label),
        helpfulness=rating.helpfulness,
        verdict=Verdict(rating.verdict),
        note="on second thought",
    )
    service.revise(db, rating, rater, same)
    seen.add(tallies.marker(db, run_id))
    oversight.adjudicate(db, rid, admin.id or 0, AdjudicationInput(label=Label.agree))
    seen.add(tallies.marker(db, run_id))
    submissions.undo_last(db, round_, rater)
    seen.add(tallies.marker(db, run_id))
    assert len(seen) == 5


def test_rebuild_restores_counts_and_moves_the_marker(db: Session) -> None:
    round_, runs = make_round(db, k=2, questions=2)
    run_ids = [r.id or 0 for r in runs]
    rater = factories.make_user(db).id or 0
    rng = random.Random(2)
    while (rid := leases.next_for(db, round_, rater)) is not None:
        submissions.submit(db, round_, rater, rid, _random_input(rng))
    before = tallies.marker(db, run_ids[0])
    expected = _check(db, run_ids)
    # Counts damaged behind the app's back are repaired by a rebuild.
    for tally in db.exec(select(RatingTally)).all():
        tally.n_agree += 7
        db.add(tally)
    db.flush()
    assert tallies.stored(db, run_ids) != expected
    tallies.rebuild(db, run_ids)
    assert _check(db, run_ids) == expected
    assert tallies.marker(db, run_ids[0]) != before
