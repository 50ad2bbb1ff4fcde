"""Stored results: served while nothing they count changed, recomputed after any change."""

from sqlmodel import Session, select

from app.metrics import service
from app.models import Rating, ResultsSnapshot
from tests import factories
from tests.metrics import helpers


def _results_json(db: Session, run_id: int, **kw: object) -> str:
    return service.run_results(db, run_id, resamples=50, **kw).model_dump_json()  # type: ignore[arg-type]


def test_stored_results_equal_a_fresh_computation_until_a_rating_changes(
    db: Session, admin: factories.UserWithPassword
) -> None:
    run = factories.make_run(db, factories.make_question_set(db, n=4))
    assert run.id is not None
    raters = helpers.make_raters(db, 2)
    slots = helpers.slots(db, run)
    for slot in slots[:6]:
        helpers.add_rating(db, slot.response, raters[0], "agree", 2)
        helpers.add_rating(db, slot.response, raters[1], "correct", 4)
    first = _results_json(db, run.id)
    (stored,) = db.exec(select(ResultsSnapshot).where(ResultsSnapshot.run_id == run.id)).all()
    assert stored.payload == first
    # Served from the snapshot: a payload changed behind its back shows (then is restored).
    assert '"replies_not_done":0,' in first
    stored.payload = first.replace('"replies_not_done":0,', '"replies_not_done":99,')
    db.add(stored)
    db.flush()
    assert service.run_results(db, run.id, resamples=50).replies_not_done == 99
    assert _results_json(db, run.id, use_snapshot=False) == first
    stored.payload = first
    db.add(stored)
    db.flush()

    changes = [
        lambda: helpers.add_rating(db, slots[7].response, raters[0], "evasive", 1),
        lambda: helpers.revise(db, db.exec(select(Rating)).first(), label="evasive"),
        lambda: helpers.adjudicate(db, slots[0].response, admin.id, "correct", 5),
    ]
    seen = {first}
    for change in changes:
        change()
        cached = _results_json(db, run.id)
        assert cached == _results_json(db, run.id, use_snapshot=False)
        seen.add(cached)
    assert len(seen) == 1 + len(changes)


def test_a_reply_status_change_makes_stored_results_stale(db: Session) -> None:
    run = factories.make_run(db, arms=("baseline",))
    assert run.id is not None
    before = service.run_results(db, run.id, resamples=20)
    reply = helpers.slots(db, run)[0].response
    reply.status = "failed"
    db.add(reply)
    db.flush()
    after = service.run_results(db, run.id, resamples=20)
    assert (before.replies_done, after.replies_done) == (12, 11)
