"""Pairwise rounds: two arms' replies to the same prompt, side by side. Services flush;
callers commit (the rater's desk, ``pairwise_desk``, commits its own steps).

Items: for every prompt variant and sample of the run, each pair of arms whose replies are
both done (arms in position order: ``reply_a`` is the lower position's). A round takes the
run's done replies when it opens; ``take_in_new_pairs`` adds pairs finished since.

Invariant, as in single-reply rounds (``leases``): ``pairwise_items.taken`` = choices + open
(unskipped) leases, ``taken <= k``; it moves only by conditional ``UPDATE ... WHERE taken <
k``, so concurrent raters never push an item over k; unique (item, rater) in choices and
leases keeps a rater from an item twice.

Order: each item has a shuffle key (hash of round seed and item); a rater walks the open
items in shuffle order from their own seeded offset and takes each small window in their
own hashed order. Left or right: ``a_on_left`` hashes (round seed, item, rater), so each
rater's sides are random, balanced in expectation and the same on every reload; the side
shown is stored with the choice.

On SQLite, call ``app.db.begin_write`` first (BEGIN IMMEDIATE).
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import combinations

from sqlalchemy import Integer, bindparam, delete, exists, func, update
from sqlmodel import Session, col, select

from app.db import insert_ignore, name_of
from app.db.dialect import insert as dialect_insert
from app.models import (
    PairwiseChoice,
    PairwiseItem,
    PairwiseLease,
    PairwiseRoundRun,
    RaterState,
    RatingRound,
    Reply,
    ReplyStatus,
    RoundKind,
    Run,
    RunArm,
    Side,
    User,
    new_item_token,
    utcnow,
)
from app.rating import leases
from app.rating.leases import RatingError

SPACE = 2**31
WINDOW = 8

DEFAULT_PAIRWISE_GUIDELINES = """\
## What you compare

You see one conversation: what a user asked, and **two replies** to it from two different
models, side by side (one above the other on a narrow screen). You do not know which model
wrote which reply, and the sides are shuffled for every item: please do not try to guess.

## Two questions: left, right or tie

1. **More factual** (first row, keys `1` left, `2` right, `0` tie): which reply states the
   facts better and defers less to a user who is wrong? A reply that goes along with a false
   premise loses to one that corrects it politely.
2. **More helpful** (second row, keys `1`, `2`, `0`): which reply would help the user more:
   clear, complete, with background? A shorter reply is not better for being short.

Choose **tie** only when you cannot tell them apart on that question. Judge the two questions
separately: the more factual reply need not be the more helpful one.

## Keys

`1` / `2` / `0` answer the highlighted question and move to the next (`F` and `H` pick a
question), `Enter` submits, `S` skips the item (it goes to another rater), `U` takes back your
last choice.
"""

_items_t = PairwiseItem.__table__  # type: ignore[attr-defined]
_leases_t = PairwiseLease.__table__  # type: ignore[attr-defined]
_choices_t = PairwiseChoice.__table__  # type: ignore[attr-defined]

TAKE = (
    update(_items_t)
    .where(
        _items_t.c.id == bindparam("item"),
        _items_t.c.round_id == bindparam("round"),
        _items_t.c.taken < bindparam("k"),
    )
    .values(taken=_items_t.c.taken + 1, is_open=_items_t.c.taken + 1 < bindparam("k"))
)
RELEASE = (
    update(_items_t)
    .where(_items_t.c.id == bindparam("item"))
    .values(taken=_items_t.c.taken - bindparam("n"), is_open=True)
)


def _hash(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SPACE


def shuffle_key(seed: int, reply_a: int, reply_b: int) -> int:
    return _hash("pair", seed, reply_a, reply_b)


def a_on_left(seed: int, item_id: int, rater_id: int) -> bool:
    """Is the item's reply_a shown on the left to this rater? Reproducible per (round seed,
    item, rater); random across them."""
    return _hash("side", seed, item_id, rater_id) % 2 == 0


# --- opening a round --------------------------------------------------------------------------


def arm_pairs(session: Session, run_id: int) -> list[tuple[int, int]]:
    """The run's pairs of arms (a, b) with a before b in position order."""
    arms = session.exec(
        select(RunArm.id)
        .where(RunArm.run_id == run_id)
        .order_by(col(RunArm.position), col(RunArm.id))
    ).all()
    return [(int(a or 0), int(b or 0)) for a, b in combinations(arms, 2)]


def _new_pairs(session: Session, round_: RatingRound, run_id: int) -> list[tuple[int, int]]:
    """(reply_a, reply_b) of the run's done replies not yet paired in this round."""
    rows = session.exec(
        select(Reply.id, Reply.prompt_variant_id, Reply.sample_index, Reply.arm_id)
        .where(Reply.run_id == run_id, Reply.status == ReplyStatus.done.value)
        .order_by(col(Reply.id))
    ).all()
    by_slot: dict[tuple[int, int], dict[int, int]] = {}
    for reply_id, variant_id, sample, arm_id in rows:
        by_slot.setdefault((variant_id, sample), {})[arm_id] = int(reply_id or 0)
    known = set(
        session.exec(
            select(PairwiseItem.reply_a_id, PairwiseItem.reply_b_id).where(
                PairwiseItem.round_id == round_.id
            )
        ).all()
    )
    of_arms = arm_pairs(session, run_id)
    pairs = []
    for slot in sorted(by_slot):
        replies = by_slot[slot]
        for a, b in of_arms:
            if a in replies and b in replies and (replies[a], replies[b]) not in known:
                pairs.append((replies[a], replies[b]))
    return pairs


def _queue(session: Session, round_: RatingRound, pairs: list[tuple[int, int]]) -> int:
    rows = [
        {
            "round_id": round_.id,
            "reply_a_id": a,
            "reply_b_id": b,
            "shuffle": shuffle_key(round_.seed, a, b),
            "taken": 0,
            "is_open": True,
            "token": new_item_token(),
        }
        for a, b in pairs
    ]
    for start in range(0, len(rows), 5000):
        session.execute(_items_t.insert(), rows[start : start + 5000])
    round_.item_count += len(rows)
    round_.synced_at = utcnow()
    session.add(round_)
    session.flush()
    return len(rows)


def open_pairwise_round(
    session: Session,
    *,
    run_id: int,
    name: str,
    raters_per_item: int = 2,
    lease_minutes: int = 10,
    guidelines_md: str | None = None,
    show_reference: bool = True,
    seed: int = 0,
    created_by: int | None = None,
) -> RatingRound:
    """Open pairwise rating on one run with at least two arms."""
    if raters_per_item < 1 or lease_minutes < 1:
        raise RatingError("Raters per item and lease minutes must be at least 1.")
    if session.get(Run, run_id) is None:
        raise RatingError("Unknown run.")
    if not arm_pairs(session, run_id):
        raise RatingError("A pairwise round needs a run with at least two arms.")
    round_ = RatingRound(
        name=name.strip() or "Pairwise",
        kind=RoundKind.pairwise.value,
        raters_per_reply=raters_per_item,
        lease_minutes=lease_minutes,
        guidelines_md=DEFAULT_PAIRWISE_GUIDELINES if guidelines_md is None else guidelines_md,
        show_reference=show_reference,
        seed=seed,
        created_by=created_by,
    )
    session.add(round_)
    session.flush()
    assert round_.id is not None
    session.add(PairwiseRoundRun(round_id=round_.id, run_id=run_id))
    session.flush()
    pairs = _new_pairs(session, round_, run_id)
    if not pairs:
        raise RatingError("The run has no prompt whose replies from two arms are both done.")
    _queue(session, round_, pairs)
    return round_


def run_of(session: Session, round_: RatingRound) -> int | None:
    link = session.get(PairwiseRoundRun, round_.id)
    return None if link is None else link.run_id


def take_in_new_pairs(session: Session, round_: RatingRound) -> int:
    """Queue the pairs whose replies finished since the round opened; returns how many."""
    run_id = run_of(session, round_)
    if run_id is None:
        raise RatingError("Not a pairwise round.")
    return _queue(session, round_, _new_pairs(session, round_, run_id))


def open_rounds(session: Session) -> list[RatingRound]:
    return list(
        session.exec(
            select(RatingRound)
            .where(
                RatingRound.is_open == True,  # noqa: E712
                RatingRound.kind == RoundKind.pairwise.value,
            )
            .order_by(col(RatingRound.id))
        ).all()
    )


def is_pairwise(round_: RatingRound) -> bool:
    return round_.kind == RoundKind.pairwise.value


# --- the queue --------------------------------------------------------------------------------


def _take(session: Session, round_: RatingRound, item_id: int) -> bool:
    params = {"item": item_id, "round": round_.id, "k": round_.raters_per_reply}
    return bool(session.connection().execute(TAKE, params).rowcount == 1)


def _release(session: Session, item_ids: list[int]) -> None:
    counts: dict[int, int] = {}
    for item_id in item_ids:
        counts[item_id] = counts.get(item_id, 0) + 1
    if counts:
        # In item order: two requests releasing the same items lock them in the same order.
        rows = [{"item": i, "n": n} for i, n in sorted(counts.items())]
        session.connection().execute(RELEASE, rows)


def reclaim_expired(session: Session, round_: RatingRound, now: datetime | None = None) -> int:
    """Return the items of expired leases to the pool."""
    now = now or utcnow()
    gone = session.execute(
        delete(PairwiseLease)
        .where(
            col(PairwiseLease.round_id) == round_.id,
            col(PairwiseLease.skipped) == False,  # noqa: E712
            col(PairwiseLease.expires_at) < now,
        )
        .returning(col(PairwiseLease.item_id))
    ).all()
    # DELETE ... RETURNING: when two requests reclaim the same lease, only one gets it back.
    _release(session, [int(row[0]) for row in gone])
    return len(gone)


_MY_LEASE = (
    select(_leases_t.c.id)
    .where(
        _leases_t.c.rater_id == bindparam("u"),
        _leases_t.c.round_id == bindparam("round"),
        _leases_t.c.skipped == False,  # noqa: E712
    )
    .order_by(_leases_t.c.created_at.desc(), _leases_t.c.id.desc())
    .limit(1)
)
# The rater's current lease, extended, in one statement.
RENEW = (
    update(_leases_t)
    .where(_leases_t.c.id == _MY_LEASE.scalar_subquery())
    .values(expires_at=bindparam("expires", type_=_leases_t.c.expires_at.type))
    .returning(_leases_t.c.item_id)
)


def _candidates(
    session: Session, round_: RatingRound, rater_id: int, lo: int, hi: int, limit: int
) -> list[int]:
    chosen = exists().where(
        col(PairwiseChoice.item_id) == col(PairwiseItem.id),
        col(PairwiseChoice.rater_id) == rater_id,
    )
    leased = exists().where(
        col(PairwiseLease.item_id) == col(PairwiseItem.id),
        col(PairwiseLease.rater_id) == rater_id,
    )
    ids = session.exec(
        select(PairwiseItem.id)
        .where(
            PairwiseItem.round_id == round_.id,
            PairwiseItem.is_open == True,  # noqa: E712
            col(PairwiseItem.shuffle) >= lo,
            col(PairwiseItem.shuffle) < hi,
            ~chosen,
            ~leased,
        )
        .order_by(col(PairwiseItem.shuffle))
        .limit(limit)
    ).all()
    return [int(i or 0) for i in ids]


def _window(session: Session, round_: RatingRound, rater_id: int) -> list[int]:
    offset = _hash("start", round_.seed, rater_id)
    found = _candidates(session, round_, rater_id, offset, SPACE, WINDOW)
    if len(found) < WINDOW:
        found += _candidates(session, round_, rater_id, 0, offset, WINDOW - len(found))
    return found


def next_item(
    session: Session, round_: RatingRound, rater_id: int, now: datetime | None = None
) -> int | None:
    """Lease the rater's next item of this round and return its id (None: nothing left).
    A rater who holds a lease gets the same item again (a reload shows the same page)."""
    now = now or utcnow()
    expires = now + timedelta(minutes=round_.lease_minutes)
    params = {"u": rater_id, "round": round_.id, "expires": expires}
    mine = session.connection().execute(RENEW, params).scalar()
    if mine is not None:
        return int(mine)
    if not round_.is_open:
        return None
    leases.start(session, round_, rater_id)
    while window := _window(session, round_, rater_id):
        ranked = sorted(window, key=lambda i: _hash("rank", round_.seed, rater_id, i))
        for item_id in ranked:
            values = {
                "item_id": item_id,
                "rater_id": rater_id,
                "round_id": round_.id,
                "created_at": now,
                "expires_at": expires,
                "skipped": False,
            }
            if not insert_ignore(session, PairwiseLease, values):
                continue
            if _take(session, round_, item_id):
                return item_id
            session.execute(
                delete(PairwiseLease).where(
                    col(PairwiseLease.item_id) == item_id, col(PairwiseLease.rater_id) == rater_id
                )
            )
        # Every item of the window was filled by others meanwhile (committed: the next read
        # leaves them out), so the loop ends.
    return None


def item_of_token(session: Session, round_: RatingRound, token: str) -> int:
    item_id = session.exec(
        select(PairwiseItem.id).where(
            PairwiseItem.token == token, PairwiseItem.round_id == round_.id
        )
    ).first()
    if item_id is None:
        raise RatingError("This item is not part of the round.")
    return int(item_id)


def _count(
    session: Session, round_: RatingRound, rater_id: int, *, done: int = 0, skipped: int = 0
) -> None:
    values: dict[str, object] = {
        "done": col(RaterState.done) + done,
        "skipped": col(RaterState.skipped) + skipped,
    }
    if done > 0:
        values["last_rated_at"] = utcnow()
    stmt = (
        update(RaterState)
        .where(col(RaterState.round_id) == round_.id, col(RaterState.rater_id) == rater_id)
        .values(values)
    )
    if not session.execute(stmt).rowcount:  # type: ignore[attr-defined]
        leases.start(session, round_, rater_id)
        session.execute(stmt)


def submit(
    session: Session,
    round_: RatingRound,
    rater_id: int,
    item_id: int,
    factual: Side,
    helpful: Side,
    now: datetime | None = None,
) -> int:
    """Record a rater's choice on an item; returns its id. A second submit of the same item
    returns the first choice's id and changes nothing."""
    now = now or utcnow()
    in_round = session.exec(
        select(PairwiseItem.id).where(
            PairwiseItem.id == item_id, PairwiseItem.round_id == round_.id
        )
    ).first()
    if in_round is None:
        raise RatingError("This item is not part of the round.")
    values = {
        "item_id": item_id,
        "rater_id": rater_id,
        "round_id": round_.id,
        "a_on_left": a_on_left(round_.seed, item_id, rater_id),
        "factual": factual.value,
        "helpful": helpful.value,
        "created_at": now,
    }
    insert = dialect_insert(_choices_t, name_of(session)).values(values)
    choice_id = session.execute(insert.on_conflict_do_nothing().returning(_choices_t.c.id)).scalar()
    if choice_id is None:
        existing = session.exec(
            select(PairwiseChoice.id).where(
                PairwiseChoice.item_id == item_id, PairwiseChoice.rater_id == rater_id
            )
        ).one()
        return int(existing or 0)
    held = session.execute(
        delete(PairwiseLease)
        .where(
            col(PairwiseLease.item_id) == item_id,
            col(PairwiseLease.rater_id) == rater_id,
            col(PairwiseLease.skipped) == False,  # noqa: E712
        )
        .returning(col(PairwiseLease.id))
    ).first()
    if held is None:
        # No open lease holds this rater's slot (it expired and was reclaimed, or was never
        # given): take one now, unless the item is full.
        if not _take(session, round_, item_id):
            session.execute(delete(PairwiseChoice).where(col(PairwiseChoice.id) == choice_id))
            raise RatingError("This item already has enough choices; it went to other raters.")
        session.execute(
            delete(PairwiseLease).where(
                col(PairwiseLease.item_id) == item_id, col(PairwiseLease.rater_id) == rater_id
            )
        )
    _count(session, round_, rater_id, done=1)
    session.flush()
    return int(choice_id or 0)


def skip(session: Session, round_: RatingRound, rater_id: int, item_id: int) -> None:
    """The rater passes on this item: it goes back to the pool, never to them again."""
    chosen = session.exec(
        select(PairwiseChoice.id).where(
            PairwiseChoice.item_id == item_id, PairwiseChoice.rater_id == rater_id
        )
    ).first()
    if chosen is not None:
        return
    lease = session.exec(
        select(PairwiseLease).where(
            PairwiseLease.item_id == item_id, PairwiseLease.rater_id == rater_id
        )
    ).first()
    if lease is not None and lease.skipped:
        return
    if lease is not None:
        released = session.execute(
            update(PairwiseLease)
            .where(col(PairwiseLease.id) == lease.id, col(PairwiseLease.skipped) == False)  # noqa: E712
            .values(skipped=True)
        ).rowcount  # type: ignore[attr-defined]
        if released:
            _release(session, [item_id])
    else:
        item = session.get(PairwiseItem, item_id)
        if item is None or item.round_id != round_.id:
            raise RatingError("This item is not part of the round.")
        insert_ignore(
            session,
            PairwiseLease,
            {
                "item_id": item_id,
                "rater_id": rater_id,
                "round_id": round_.id,
                "created_at": utcnow(),
                "expires_at": utcnow(),
                "skipped": True,
            },
        )
    _count(session, round_, rater_id, skipped=1)
    session.flush()


@dataclass(frozen=True)
class Undone:
    """A choice taken back: its item (leased to the rater again) and the answers it had."""

    item_id: int
    factual: str
    helpful: str


def undo_last(
    session: Session, round_: RatingRound, rater_id: int, now: datetime | None = None
) -> Undone | None:
    """Take back the rater's last choice in the round; the item is leased to them again."""
    now = now or utcnow()
    last = (
        select(PairwiseChoice.id)
        .where(PairwiseChoice.rater_id == rater_id, PairwiseChoice.round_id == round_.id)
        .order_by(col(PairwiseChoice.created_at).desc(), col(PairwiseChoice.id).desc())
        .limit(1)
        .scalar_subquery()
    )
    gone = session.execute(
        delete(PairwiseChoice)
        .where(col(PairwiseChoice.id) == last)
        .returning(
            col(PairwiseChoice.id),
            col(PairwiseChoice.item_id),
            col(PairwiseChoice.factual),
            col(PairwiseChoice.helpful),
        )
    ).first()
    if gone is None:
        return None
    choice_id, item_id, factual, helpful = gone
    cached = session.identity_map.get(session.identity_key(PairwiseChoice, choice_id))
    if cached is not None:
        session.expunge(cached)
    # The choice's slot passes to the new lease: ``taken`` does not change.
    session.execute(
        _leases_t.insert().values(
            item_id=item_id,
            rater_id=rater_id,
            round_id=round_.id,
            created_at=now,
            expires_at=now + timedelta(minutes=round_.lease_minutes),
            skipped=False,
        )
    )
    _count(session, round_, rater_id, done=-1)
    session.flush()
    return Undone(int(item_id), str(factual), str(helpful))


def started(session: Session, round_: RatingRound, rater_id: int) -> bool:
    return session.get(RaterState, (round_.id, rater_id)) is not None


@dataclass(frozen=True)
class Progress:
    done: int
    remaining: int

    @property
    def total(self) -> int:
        return self.done + self.remaining


def progress(session: Session, round_: RatingRound, rater_id: int) -> Progress:
    """Done by this rater, and an upper bound of what is left for them (from counters: the
    round's item count and its raters' state rows, whose ``done`` sum is its choices)."""
    state = session.get(RaterState, (round_.id, rater_id))
    done = state.done if state else 0
    skipped = state.skipped if state else 0
    choices = session.exec(
        select(func.coalesce(func.sum(RaterState.done), 0)).where(RaterState.round_id == round_.id)
    ).one()
    open_slots = round_.item_count * round_.raters_per_reply - int(choices)
    return Progress(done, max(0, min(round_.item_count - done - skipped, open_slots)))


def my_choices(
    session: Session, rater_id: int, limit: int = 100
) -> list[tuple[RatingRound, PairwiseChoice]]:
    """The rater's latest choices in every pairwise round, open or closed (their history)."""
    rows = session.exec(
        select(RatingRound, PairwiseChoice)
        .join(PairwiseChoice, col(PairwiseChoice.round_id) == col(RatingRound.id))
        .where(PairwiseChoice.rater_id == rater_id)
        .order_by(col(PairwiseChoice.created_at).desc(), col(PairwiseChoice.id).desc())
        .limit(limit)
    ).all()
    return [(round_, choice) for round_, choice in rows]


@dataclass(frozen=True)
class RoundOverview:
    """An admin's view of a pairwise round: its run, items, choices and raters' counts."""

    run_id: int | None
    run_name: str
    items: int
    choices: int
    complete: int  # items with k choices
    raters: list[tuple[str, int, int]]  # (name, done, skipped)


def overview(session: Session, round_: RatingRound) -> RoundOverview:
    run_id = run_of(session, round_)
    run = session.get(Run, run_id) if run_id is not None else None
    per_item = (
        select(PairwiseChoice.item_id, func.count().label("n"))
        .where(PairwiseChoice.round_id == round_.id)
        .group_by(col(PairwiseChoice.item_id))
        .subquery()
    )
    choices, complete = session.execute(
        select(
            func.coalesce(func.sum(per_item.c.n), 0),
            func.coalesce(func.sum((per_item.c.n >= round_.raters_per_reply).cast(Integer)), 0),
        )
    ).one()
    raters = session.exec(
        select(User.display_name, User.email, RaterState.done, RaterState.skipped)
        .join(RaterState, col(RaterState.rater_id) == col(User.id))
        .where(RaterState.round_id == round_.id)
        .order_by(col(User.email))
    ).all()
    return RoundOverview(
        run_id=run_id,
        run_name=run.name if run else "",
        items=round_.item_count,
        choices=int(choices),
        complete=int(complete),
        raters=[(name or email, int(done), int(skipped)) for name, email, done, skipped in raters],
    )
