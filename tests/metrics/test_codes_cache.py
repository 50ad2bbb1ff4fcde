"""Reply codes kept between results computations: after any change the results equal a fresh
computation, and only the changed replies are read again."""

import random

import numpy as np
import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from app.metrics import codes_cache, service
from app.metrics.codes_cache import CodesCache
from app.metrics.replies import codes_cache as process_cache
from app.models import Rating
from app.rating import tallies
from tests import factories
from tests.metrics import helpers

# --- the cache alone ------------------------------------------------------------------------


def _rows(*ids: int, value: int = 0) -> np.ndarray:
    return np.array([[i, value] for i in ids], dtype=np.int64).reshape(-1, 2)


class _Source:
    """Rows by id, and which ids changed when (a fake database)."""

    def __init__(self) -> None:
        self.rows = {3: 30, 1: 10, 2: 20}
        self.changed: dict[int, float] = {}
        self.now = 100.0
        self.reads: list[str] = []

    def read_all(self) -> np.ndarray:
        self.reads.append("all")
        return np.array(sorted(self.rows.items()), dtype=np.int64)

    def read_changed(self, since: float) -> np.ndarray:
        self.reads.append(f"since {since:g}")
        ids = [i for i, t in self.changed.items() if t >= since and i in self.rows]
        return np.array([[i, self.rows[i]] for i in ids], dtype=np.int64).reshape(-1, 2)

    def codes(self, cache: CodesCache, base: object = "b", key: object = "run") -> np.ndarray:
        return cache.codes(
            key,
            base,
            clock=lambda: self.now,
            read_all=self.read_all,
            read_changed=self.read_changed,
        )


def test_only_rows_changed_since_the_last_read_are_read_again() -> None:
    src, cache = _Source(), CodesCache(max_runs=2)
    assert src.codes(cache).tolist() == [[1, 10], [2, 20], [3, 30]]
    src.rows[2] = 21
    src.changed[2] = src.now + 1
    src.now += 10
    assert src.codes(cache).tolist() == [[1, 10], [2, 21], [3, 30]]
    lookback = 100.0 - codes_cache.LOOKBACK_S
    assert src.reads == ["all", f"since {lookback:g}"]
    assert (cache.full_reads, cache.partial_reads) == (1, 1)


def test_a_row_stamped_before_the_previous_read_but_committed_after_is_seen() -> None:
    src, cache = _Source(), CodesCache(max_runs=2)
    src.codes(cache)
    # Written by a transaction that stamped its row before that read and committed after it.
    src.rows[1] = 11
    src.changed[1] = src.now - 5
    src.now += 1
    assert src.codes(cache)[0].tolist() == [1, 11]


def test_a_changed_base_or_an_unknown_reply_reads_everything_again() -> None:
    src, cache = _Source(), CodesCache(max_runs=2)
    src.codes(cache, base="one")
    src.rows[4] = 40
    src.codes(cache, base="two")
    assert src.reads[-1] == "all"
    src.rows[5] = 50
    src.changed[5] = src.now
    assert src.codes(cache, base="two")[-1].tolist() == [5, 50]
    assert src.reads[-2:] == [f"since {src.now - codes_cache.LOOKBACK_S:g}", "all"]


def test_returned_codes_are_the_callers_own() -> None:
    src, cache = _Source(), CodesCache(max_runs=2)
    first = src.codes(cache)
    first[:] = -1
    assert src.codes(cache).tolist() == [[1, 10], [2, 20], [3, 30]]


def test_least_recently_used_runs_are_dropped_and_zero_keeps_none() -> None:
    src, cache = _Source(), CodesCache(max_runs=2)
    for key in ("a", "b", "a", "c", "a", "b"):
        src.codes(cache, key=key)
    # a: full, b: full, a: partial, c: full (drops b), a: partial, b: full again
    assert (cache.full_reads, cache.partial_reads) == (4, 2)
    src.reads.clear()
    off = CodesCache(max_runs=0)
    src.codes(off)
    src.codes(off)
    assert src.reads == ["all", "all"]


# --- through the results ----------------------------------------------------------------------


def _json(db: Session, run_id: int, **kw: object) -> str:
    return service.run_results(db, run_id, resamples=40, **kw).model_dump_json()  # type: ignore[arg-type]


@pytest.fixture()
def cache() -> CodesCache:
    process_cache().clear()
    return process_cache()


def test_results_after_random_changes_equal_a_fresh_computation(
    db: Session, admin: factories.UserWithPassword, cache: CodesCache
) -> None:
    run = factories.make_run(
        db,
        factories.make_question_set(db, n=6),
        kinds=(("neutral", "none"), ("biased", "asserts"), ("adversarial", "negates")),
    )
    assert run.id is not None
    raters = helpers.make_raters(db, 3)
    helpers.random_ratings(db, run, raters, admin.id, seed=5)
    slots = helpers.slots(db, run)
    rng = random.Random(7)
    assert _json(db, run.id) == _json(db, run.id, use_snapshot=False)
    full, partial = cache.full_reads, cache.partial_reads
    for step in range(12):
        slot = rng.choice(slots)
        action = step % 3
        if action == 0:
            rated = {
                r.rater_id
                for r in db.exec(select(Rating).where(Rating.reply_id == slot.response.id))
            }
            free = [r for r in raters if r not in rated]
            if free:
                helpers.add_rating(db, slot.response, free[0], rng.choice(["agree", "evasive"]), 2)
        elif action == 1:
            rating = db.exec(select(Rating).where(Rating.reply_id == slot.response.id)).first()
            if rating is not None:
                helpers.revise(db, rating, label="correct", helpfulness=5, verdict="false")
        else:
            helpers.adjudicate(db, slot.response, admin.id, rng.choice(["agree", "correct"]), 4)
        assert _json(db, run.id) == _json(db, run.id, use_snapshot=False), f"step {step}"
    assert cache.full_reads == full
    assert cache.partial_reads == partial + 12


def test_an_adjudication_of_an_unrated_reply_is_seen(
    db: Session, admin: factories.UserWithPassword, cache: CodesCache
) -> None:
    run = factories.make_run(db, factories.make_question_set(db, n=3))
    assert run.id is not None
    before = service.run_results(db, run.id, resamples=20)
    assert sum(row.rated for row in before.metrics if row.kind == "all") == 0
    helpers.adjudicate(db, helpers.slots(db, run)[0].response, admin.id, "agree", 2)
    after = service.run_results(db, run.id, resamples=20)
    assert sum(row.rated for row in after.metrics if row.kind == "all") == 1
    assert cache.partial_reads == 1


def test_a_recount_after_ratings_deleted_behind_the_apps_back_is_seen(
    db: Session, admin: factories.UserWithPassword, cache: CodesCache
) -> None:
    run = factories.make_run(db, factories.make_question_set(db, n=4))
    assert run.id is not None
    raters = helpers.make_raters(db, 3)
    helpers.random_ratings(db, run, raters, admin.id, seed=3, adjudicate_share=0)
    _json(db, run.id)
    db.execute(text("DELETE FROM ratings WHERE rater_id = :r"), {"r": raters[0]})
    tallies.rebuild(db, [run.id])
    assert _json(db, run.id) == _json(db, run.id, use_snapshot=False)
    assert cache.partial_reads == 1


def test_a_tally_committed_late_within_the_lookback_is_seen(
    db: Session, admin: factories.UserWithPassword, cache: CodesCache
) -> None:
    run = factories.make_run(db, factories.make_question_set(db, n=3))
    assert run.id is not None
    raters = helpers.make_raters(db, 1)
    reply = helpers.slots(db, run)[0].response
    helpers.add_rating(db, reply, raters[0], "agree", 2)
    _json(db, run.id)
    rating = db.exec(select(Rating).where(Rating.reply_id == reply.id)).one()
    helpers.revise(db, rating, label="evasive")
    # As if that write had been stamped a minute before the previous read and committed after.
    db.execute(
        text("UPDATE rating_tallies SET changed_at = changed_at - 60 WHERE reply_id = :r"),
        {"r": reply.id},
    )
    assert _json(db, run.id) == _json(db, run.id, use_snapshot=False)
    evasive = [m.evasion.k for m in service.run_results(db, run.id, resamples=20).metrics]
    assert max(evasive) == 1
