"""Pairwise rounds: items, order of sides, leases, k, submit, skip and undo."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.db import write_transaction
from app.models import (
    PairwiseChoice,
    PairwiseItem,
    PairwiseLease,
    RatingRound,
    Reply,
    RunArm,
    Side,
    utcnow,
)
from app.rating import pairwise, service
from app.rating.leases import RatingError
from tests import factories
from tests.rating.helpers import ARMS


def make_pairwise(
    session: Session, *, k: int = 2, questions: int = 3, arms: tuple[str, ...] = ARMS, seed: int = 0
) -> RatingRound:
    """A pairwise round over a finished run: questions x 2 kinds x pairs of arms."""
    run = factories.make_run(session, factories.make_question_set(session, n=questions), arms=arms)
    assert run.id is not None
    return pairwise.open_pairwise_round(
        session, run_id=run.id, name="pairs", raters_per_item=k, seed=seed
    )


def walk(session: Session, round_: RatingRound, rater_id: int) -> list[int]:
    seen = []
    while (item := pairwise.next_item(session, round_, rater_id)) is not None:
        pairwise.submit(session, round_, rater_id, item, Side.left, Side.tie)
        seen.append(item)
    return seen


def test_items_pair_two_arms_replies_to_the_same_prompt(db: Session) -> None:
    round_ = make_pairwise(db, questions=3, arms=("a", "b", "c"))
    items = db.exec(select(PairwiseItem).where(PairwiseItem.round_id == round_.id)).all()
    # 3 questions x 2 kinds, 3 pairs of arms each.
    assert len(items) == round_.item_count == 18
    positions = {arm.id: arm.position for arm in db.exec(select(RunArm)).all()}
    for item in items:
        a, b = db.get(Reply, item.reply_a_id), db.get(Reply, item.reply_b_id)
        assert a is not None and b is not None
        assert a.prompt_variant_id == b.prompt_variant_id
        assert a.sample_index == b.sample_index
        assert positions[a.arm_id] < positions[b.arm_id]
    assert round_.kind == "pairwise"


def test_a_run_with_one_arm_is_refused(db: Session) -> None:
    run = factories.make_run(db, arms=("only",))
    assert run.id is not None
    with pytest.raises(RatingError, match="two arms"):
        pairwise.open_pairwise_round(db, run_id=run.id, name="x")


def test_pending_replies_are_not_paired_until_done(db: Session) -> None:
    run = factories.make_run(db, factories.make_question_set(db, n=2), arms=ARMS)
    assert run.id is not None
    first = db.exec(select(Reply).where(Reply.run_id == run.id).order_by(Reply.id)).first()
    assert first is not None
    first.status = "pending"
    db.add(first)
    db.flush()
    round_ = pairwise.open_pairwise_round(db, run_id=run.id, name="x")
    assert round_.item_count == 3
    first.status = "done"
    db.add(first)
    db.flush()
    assert pairwise.take_in_new_pairs(db, round_) == 1
    assert pairwise.take_in_new_pairs(db, round_) == 0
    assert round_.item_count == 4


def test_single_reply_desk_ignores_pairwise_rounds(db: Session) -> None:
    round_ = make_pairwise(db)
    assert round_ not in service.rounds_for_rater(db)
    assert round_ in pairwise.open_rounds(db)


def test_sides_are_reproducible_and_balanced() -> None:
    # The same (seed, item, rater) always gives the same side...
    assert all(
        pairwise.a_on_left(7, item, rater) == pairwise.a_on_left(7, item, rater)
        for item in range(50)
        for rater in range(5)
    )
    # ...about half of each rater's items have reply a on the left...
    for rater in range(1, 21):
        lefts = sum(pairwise.a_on_left(3, item, rater) for item in range(1, 1001))
        assert 430 < lefts < 570  # binomial(1000, 1/2): +-4.4 sd
    # ...and raters differ on the same item, as do seeds.
    per_item = [pairwise.a_on_left(3, 42, rater) for rater in range(1, 101)]
    assert 30 < sum(per_item) < 70
    assert [pairwise.a_on_left(1, i, 1) for i in range(40)] != [
        pairwise.a_on_left(2, i, 1) for i in range(40)
    ]


def test_the_side_shown_is_stored_with_the_choice(db: Session) -> None:
    round_ = make_pairwise(db, k=1)
    rater = factories.make_user(db).id
    assert rater is not None
    walk(db, round_, rater)
    choices = db.exec(select(PairwiseChoice)).all()
    assert len(choices) == round_.item_count
    for choice in choices:
        assert choice.a_on_left == pairwise.a_on_left(round_.seed, choice.item_id, rater)
    assert len({c.a_on_left for c in choices}) == 2


def test_each_item_gets_k_raters_and_a_rater_never_sees_one_twice(db: Session) -> None:
    round_ = make_pairwise(db, k=2, questions=4)
    raters = [factories.make_user(db).id for _ in range(3)]
    done = {r: walk(db, round_, r or 0) for r in raters}
    for seen in done.values():
        assert len(seen) == len(set(seen))
    per_item = Counter(c.item_id for c in db.exec(select(PairwiseChoice)).all())
    assert set(per_item.values()) == {2} and len(per_item) == round_.item_count
    assert db.exec(select(func.max(PairwiseItem.taken))).one() == 2
    # Each rater walks the items in an order of their own.
    orders = list(done.values())
    assert orders[0][:4] != orders[1][:4] or orders[0][:4] != orders[2][:4]


def test_a_reload_gets_the_same_item(db: Session) -> None:
    round_ = make_pairwise(db)
    rater = factories.make_user(db).id or 0
    first = pairwise.next_item(db, round_, rater)
    assert pairwise.next_item(db, round_, rater) == first


def test_skip_hands_the_item_to_others_never_back(db: Session) -> None:
    round_ = make_pairwise(db, k=1, questions=1)
    me, other = factories.make_user(db).id or 0, factories.make_user(db).id or 0
    item = pairwise.next_item(db, round_, me)
    assert item is not None
    pairwise.skip(db, round_, me, item)
    assert db.get(PairwiseItem, item).taken == 0  # type: ignore[union-attr]
    seen = walk(db, round_, me)
    assert item not in seen
    assert item in walk(db, round_, other)


def test_undo_takes_back_the_last_choice_and_leases_it_again(db: Session) -> None:
    round_ = make_pairwise(db, k=1)
    rater = factories.make_user(db).id or 0
    item = pairwise.next_item(db, round_, rater)
    assert item is not None
    pairwise.submit(db, round_, rater, item, Side.right, Side.left)
    undone = pairwise.undo_last(db, round_, rater)
    assert undone == pairwise.Undone(item, "right", "left")
    assert db.exec(select(PairwiseChoice)).all() == []
    # Its slot passed to a new lease: still taken once, and the rater gets it next.
    assert db.get(PairwiseItem, item).taken == 1  # type: ignore[union-attr]
    assert pairwise.next_item(db, round_, rater) == item
    assert pairwise.undo_last(db, round_, rater) is None


def test_a_second_submit_changes_nothing(db: Session) -> None:
    round_ = make_pairwise(db)
    rater = factories.make_user(db).id or 0
    item = pairwise.next_item(db, round_, rater)
    assert item is not None
    first = pairwise.submit(db, round_, rater, item, Side.left, Side.left)
    again = pairwise.submit(db, round_, rater, item, Side.right, Side.right)
    assert first == again
    assert db.get(PairwiseChoice, first).factual == "left"  # type: ignore[union-attr]
    assert db.get(PairwiseItem, item).taken == 1  # type: ignore[union-attr]


def test_a_submit_without_lease_on_a_full_item_is_refused(db: Session) -> None:
    round_ = make_pairwise(db, k=1, questions=1)
    me, other = factories.make_user(db).id or 0, factories.make_user(db).id or 0
    item = pairwise.next_item(db, round_, other)
    assert item is not None
    with pytest.raises(RatingError, match="enough choices"):
        pairwise.submit(db, round_, me, item, Side.left, Side.left)
    assert db.exec(select(PairwiseChoice).where(PairwiseChoice.rater_id == me)).all() == []


def test_expired_leases_return_to_the_pool(db: Session) -> None:
    round_ = make_pairwise(db, k=1, questions=1)
    me = factories.make_user(db).id or 0
    item = pairwise.next_item(db, round_, me)
    lease = db.exec(select(PairwiseLease)).one()
    lease.expires_at = utcnow().replace(year=2000)
    db.add(lease)
    db.flush()
    assert pairwise.reclaim_expired(db, round_) == 1
    assert db.get(PairwiseItem, item).taken == 0  # type: ignore[union-attr]


def _rate_in_thread(engine: Engine, round_id: int, rater_id: int) -> list[int]:
    """One rater in its own connection: each lease and each choice its own transaction."""
    done = []
    while True:
        with write_transaction(engine) as s:
            round_ = s.get(RatingRound, round_id)
            assert round_ is not None
            item = pairwise.next_item(s, round_, rater_id)
        if item is None:
            return done
        with write_transaction(engine) as s:
            round_ = s.get(RatingRound, round_id)
            assert round_ is not None
            side = (Side.left, Side.right, Side.tie)[(item + rater_id) % 3]
            pairwise.submit(s, round_, rater_id, item, side, Side.tie)
        done.append(item)


@pytest.mark.slow
def test_fifty_raters_at_once_never_exceed_k_and_lose_nothing(committed_db: Engine) -> None:
    with Session(committed_db) as s:
        round_ = make_pairwise(s, k=3, questions=5, arms=("a", "b", "c"))
        raters = [factories.make_user(s).id or 0 for _ in range(50)]
        s.commit()
        round_id, items = round_.id or 0, round_.item_count
    # 16 at a time (within the connection pool); every rater runs until nothing is left.
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda r: _rate_in_thread(committed_db, round_id, r), raters))
    with Session(committed_db) as s:
        stored = set(s.exec(select(PairwiseChoice.rater_id, PairwiseChoice.item_id)).all())
        submitted = {(r, i) for r, done in zip(raters, results, strict=True) for i in done}
        assert stored == submitted
        assert len(stored) == 3 * items
        per_item = Counter(i for _r, i in stored)
        assert set(per_item.values()) == {3}
        taken = s.exec(select(func.max(PairwiseItem.taken), func.min(PairwiseItem.taken))).one()
        assert tuple(taken) == (3, 3)
        assert s.exec(select(PairwiseLease)).all() == []
