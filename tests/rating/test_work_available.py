"""A rater is never told "nothing to rate" while a reply is free for them.

On Postgres a rater reads their window of candidates with FOR UPDATE SKIP LOCKED, so that
raters choosing at the same moment do not queue behind one another. A reply locked by another
rater who is only choosing (or whose lease will not fill it) is still free, though: it must be
waited for, not reported as nothing. bench/rating_load.py lost ratings this way under load.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.db import write_transaction
from app.models import RatingRound
from app.rating import leases, submissions
from tests import factories
from tests.conftest import IS_POSTGRES
from tests.rating.helpers import make_round, rating_input

LOCK_ALL = text("SELECT reply_id FROM rating_items WHERE round_id = :r FOR UPDATE")
FILL_ALL = text("UPDATE rating_items SET taken = taken + 1, is_open = false WHERE round_id = :r")


def _round_and_rater(engine: Engine, k: int) -> tuple[int, int]:
    with Session(engine, expire_on_commit=False) as s:
        round_, _ = make_round(s, k=k, questions=1)
        rater = factories.make_user(s).id
        s.commit()
    assert round_.id is not None and rater is not None
    return round_.id, rater


def _next_in_thread(
    engine: Engine, round_id: int, rater_id: int
) -> tuple[threading.Thread, list[int | None]]:
    """next_for in its own transaction on a thread; the list gets its answer."""
    answer: list[int | None] = []

    def lease() -> None:
        with write_transaction(engine) as s:
            round_ = s.get(RatingRound, round_id)
            assert round_ is not None
            answer.append(leases.next_for(s, round_, rater_id))

    thread = threading.Thread(target=lease)
    thread.start()
    return thread, answer


@pytest.mark.skipif(not IS_POSTGRES, reason="row locks and SKIP LOCKED are Postgres'")
@pytest.mark.parametrize("other_fills", [False, True], ids=["other-lets-go", "other-fills-all"])
def test_replies_locked_by_another_rater_are_waited_for(
    committed_db: Engine, other_fills: bool
) -> None:
    round_id, rater = _round_and_rater(committed_db, k=1)
    with committed_db.connect() as other:
        # Another request holds every reply of the round locked (as raters choosing from their
        # windows do until they commit).
        other.execute(LOCK_ALL, {"r": round_id})
        thread, answer = _next_in_thread(committed_db, round_id, rater)
        time.sleep(0.5)
        assert answer == [], "the rater must wait for the locked replies, not answer at once"
        if other_fills:
            other.execute(FILL_ALL, {"r": round_id})
        other.commit()
        thread.join(timeout=30)
    if other_fills:
        # Every reply went to the other rater: now "nothing" is the right answer.
        assert answer == [None]
    else:
        assert len(answer) == 1 and answer[0] is not None


@pytest.mark.slow
def test_every_rater_reaches_their_share_while_work_remains(committed_db: Engine) -> None:
    """Raters at once, each rating a share that leaves room to spare: none is ever told
    "nothing to rate" before their share is done (SQLite and Postgres)."""
    with Session(committed_db, expire_on_commit=False) as s:
        # Three rounds, rated one after the other: three chances for the race.
        rounds = [make_round(s, k=2, questions=12)[0] for _ in range(3)]
        raters = [factories.make_user(s).id for _ in range(8)]
        s.commit()
    # 48 replies x 2 = 96 places a round; 8 raters x 10 ratings + 8 leases at most = 88.
    share = 10
    assert all(len(raters) * (share + 1) <= r.item_count * 2 for r in rounds)

    def rate_share(round_id: int, rater_id: int | None) -> int:
        assert rater_id is not None
        done = 0
        while done < share:
            with write_transaction(committed_db) as s:
                round_ = s.get(RatingRound, round_id)
                assert round_ is not None
                rid = leases.next_for(s, round_, rater_id)
            if rid is None:
                return done
            with write_transaction(committed_db) as s:
                round_ = s.get(RatingRound, round_id)
                assert round_ is not None
                submissions.submit(s, round_, rater_id, rid, rating_input())
            done += 1
        return done

    for round_ in rounds:
        assert round_.id is not None
        with ThreadPoolExecutor(max_workers=len(raters)) as pool:
            shares = list(pool.map(rate_share, [round_.id] * len(raters), raters))
        assert shares == [share] * len(raters)
