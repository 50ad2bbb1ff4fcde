"""The blind rating queue: lease the next reply to a rater, record, skip and undo ratings.

Invariant: for every queued reply, ``rating_items.taken`` = its ratings + its open (unskipped)
leases, and ``taken <= k``. Every increment is a conditional ``UPDATE ... WHERE taken < k`` on
the item row, so concurrent raters can never push a reply over k; unique constraints on
(response, rater) in ratings and leases keep a rater from getting a reply twice.

Order: each item has a ``shuffle`` key (hash of round seed and reply). A rater walks the open
items in shuffle order starting from their own seeded offset, and within each small window of
candidates takes them in their own hashed order, so every rater gets a different, reproducible
order that interleaves models and variant kinds. Their place (``cursor``) is remembered, so a
request reads a handful of index entries, not the rater's history.

On SQLite, call ``begin_write`` first: it takes the write lock up front (BEGIN IMMEDIATE).
"""

import hashlib
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, insert, literal, literal_column, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from app.accounts.service import begin_write
from app.models import (
    RaterState,
    Rating,
    RatingItem,
    RatingLease,
    RatingRound,
    Response,
    RunStatus,
    utcnow,
)
from app.models.run import Run
from app.rating import tallies
from app.rating.schemas import RatingInput

SHUFFLE_SPACE = 2**31
WINDOW = 8
RECLAIM_BATCH = 200
__all__ = ["RatingError", "begin_write", "next_for", "skip", "submit", "undo_last"]
SYNC_EVERY = timedelta(seconds=30)


class RatingError(ValueError):
    """A request the queue refuses (not in the round, already full, ...)."""


def _hash(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SHUFFLE_SPACE


def shuffle_key(seed: int, response_id: int) -> int:
    return _hash("item", seed, response_id)


def rater_offset(seed: int, rater_id: int) -> int:
    return _hash("start", seed, rater_id)


def rater_rank(seed: int, rater_id: int, response_id: int) -> int:
    return _hash("rank", seed, rater_id, response_id)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _insert_ignore(session: Session, table: Any, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when the row was inserted."""
    module = postgresql if _dialect(session) == "postgresql" else sqlite
    stmt = module.insert(table).values(**values).on_conflict_do_nothing()
    # rowcount is not reliable for INSERT on every driver; RETURNING is.
    return session.execute(stmt.returning(literal_column("1"))).first() is not None


def _insert_rating(session: Session, round_: RatingRound, values: dict[str, Any]) -> int | None:
    """Insert the rating if its reply is queued in this round and the rater has not rated it
    yet; its id, or None."""
    table = Rating.__table__  # type: ignore[attr-defined]
    item = RatingItem.__table__  # type: ignore[attr-defined]
    module = postgresql if _dialect(session) == "postgresql" else sqlite
    rows = select(*[literal(v, table.c[k].type) for k, v in values.items()]).where(
        item.c.response_id == values["response_id"], item.c.round_id == round_.id
    )
    stmt = module.insert(table).from_select(list(values), rows).on_conflict_do_nothing()
    row = session.execute(stmt.returning(table.c.id)).first()
    return None if row is None else int(row[0])


# --- the queue's rows -----------------------------------------------------------------------


def get_state(session: Session, round_: RatingRound, rater_id: int) -> RaterState | None:
    return session.get(RaterState, (round_.id, rater_id))


def start(session: Session, round_: RatingRound, rater_id: int) -> RaterState:
    """The rater has read the guidelines and begins this round."""
    assert round_.id is not None
    state = session.get(RaterState, (round_.id, rater_id))
    if state is not None:
        return state
    _insert_ignore(session, RaterState, {"round_id": round_.id, "rater_id": rater_id})
    state = session.get(RaterState, (round_.id, rater_id))
    assert state is not None
    return state


def sync_round(session: Session, round_: RatingRound, *, force: bool = True) -> int:
    """Queue the done replies of the round's runs that are not queued yet; returns how many."""
    assert round_.id is not None
    from app.models import RatingRoundRun

    if _dialect(session) == "postgresql":
        # One sync at a time per round; the others wait, then find nothing left to add.
        session.execute(select(RatingRound.id).where(RatingRound.id == round_.id).with_for_update())
    session.refresh(round_)
    if not force and round_.synced_at and utcnow() - round_.synced_at < SYNC_EVERY:
        return 0
    run_ids = select(RatingRoundRun.run_id).where(RatingRoundRun.round_id == round_.id)
    queued = exists().where(col(RatingItem.response_id) == col(Response.id))
    added = 0
    last_id = 0
    while True:
        ids = session.exec(
            select(Response.id)
            .where(
                col(Response.run_id).in_(run_ids),
                Response.status == "done",
                col(Response.id) > last_id,
                ~queued,
            )
            .order_by(col(Response.id))
            .limit(5000)
        ).all()
        if not ids:
            break
        rows = [
            {
                "response_id": rid,
                "round_id": round_.id,
                "shuffle": shuffle_key(round_.seed, int(rid or 0)),
                "taken": 0,
                "is_open": True,
            }
            for rid in ids
        ]
        session.execute(RatingItem.__table__.insert(), rows)  # type: ignore[attr-defined]
        added += len(rows)
        last_id = max(i for i in ids if i is not None)
    round_.item_count += added
    round_.synced_at = utcnow()
    session.add(round_)
    session.flush()
    return added


def _runs_still_running(session: Session, round_: RatingRound) -> bool:
    from app.models import RatingRoundRun

    return (
        session.exec(
            select(Run.id)
            .join(RatingRoundRun, col(RatingRoundRun.run_id) == col(Run.id))
            .where(RatingRoundRun.round_id == round_.id, Run.status == RunStatus.running.value)
            .limit(1)
        ).first()
        is not None
    )


def _take(session: Session, round_: RatingRound, response_id: int) -> bool:
    """Count one more rating-or-lease on the item, unless it already has k."""
    k = round_.raters_per_reply
    result = session.execute(
        update(RatingItem)
        .where(
            col(RatingItem.response_id) == response_id,
            col(RatingItem.round_id) == round_.id,
            col(RatingItem.taken) < k,
        )
        .values(
            {RatingItem.taken: RatingItem.taken + 1, RatingItem.is_open: RatingItem.taken + 1 < k}
        )
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _release(session: Session, counts: Counter[int]) -> None:
    for response_id, n in counts.items():
        session.execute(
            update(RatingItem)
            .where(col(RatingItem.response_id) == response_id)
            .values({RatingItem.taken: RatingItem.taken - n, RatingItem.is_open: True})
        )


def reclaim_expired(session: Session, round_: RatingRound, now: datetime | None = None) -> int:
    """Return the replies of expired leases to the pool (a batch per call)."""
    now = now or utcnow()
    expired = (
        select(RatingLease.id)
        .where(
            RatingLease.round_id == round_.id,
            RatingLease.skipped == False,  # noqa: E712
            col(RatingLease.expires_at) < now,
        )
        .limit(RECLAIM_BATCH)
    )
    # DELETE ... RETURNING: when two requests reclaim the same lease, only one gets it back.
    gone = session.execute(
        delete(RatingLease)
        .where(col(RatingLease.id).in_(expired.scalar_subquery()))
        .returning(col(RatingLease.response_id))
    ).all()
    counts = Counter(row[0] for row in gone)
    _release(session, counts)
    return sum(counts.values())


def current_lease(session: Session, round_: RatingRound, rater_id: int) -> RatingLease | None:
    return session.exec(
        select(RatingLease)
        .where(
            RatingLease.rater_id == rater_id,
            RatingLease.round_id == round_.id,
            RatingLease.skipped == False,  # noqa: E712
        )
        .order_by(col(RatingLease.created_at).desc(), col(RatingLease.id).desc())
        .limit(1)
    ).first()


def _candidates(
    session: Session, round_: RatingRound, rater_id: int, lo: int, hi: int, limit: int
) -> list[tuple[int, int]]:
    rated = exists().where(
        col(Rating.response_id) == col(RatingItem.response_id), col(Rating.rater_id) == rater_id
    )
    leased = exists().where(
        col(RatingLease.response_id) == col(RatingItem.response_id),
        col(RatingLease.rater_id) == rater_id,
    )
    stmt = (
        select(RatingItem.response_id, RatingItem.shuffle)
        .where(
            RatingItem.round_id == round_.id,
            RatingItem.is_open == True,  # noqa: E712
            col(RatingItem.shuffle) >= lo,
            col(RatingItem.shuffle) < hi,
            ~rated,
            ~leased,
        )
        .order_by(col(RatingItem.shuffle))
        .limit(limit)
    )
    if _dialect(session) == "postgresql":
        # Rows another rater is claiming right now are skipped rather than waited for.
        stmt = stmt.with_for_update(skip_locked=True, of=RatingItem)
    return [(int(r), int(s)) for r, s in session.execute(stmt).all()]


def _window(
    session: Session, round_: RatingRound, rater_id: int, cursor: int
) -> list[tuple[int, int]]:
    """The next few eligible items in the rater's cycle, from ``cursor`` on."""
    offset = rater_offset(round_.seed, rater_id)
    start_at = offset + cursor
    if start_at < SHUFFLE_SPACE:
        found = _candidates(session, round_, rater_id, start_at, SHUFFLE_SPACE, WINDOW)
        if len(found) < WINDOW:
            found += _candidates(session, round_, rater_id, 0, offset, WINDOW - len(found))
        return found
    return _candidates(session, round_, rater_id, start_at - SHUFFLE_SPACE, offset, WINDOW)


def _cycle_position(round_: RatingRound, rater_id: int, shuffle: int) -> int:
    return (shuffle - rater_offset(round_.seed, rater_id)) % SHUFFLE_SPACE


def next_for(
    session: Session, round_: RatingRound, rater_id: int, now: datetime | None = None
) -> int | None:
    """Lease the rater's next reply in this round and return its id (None: nothing left).

    A rater who already holds a lease gets the same reply again (a reload shows the same page).
    """
    assert round_.id is not None
    now = now or utcnow()
    lease_time = timedelta(minutes=round_.lease_minutes)
    mine = current_lease(session, round_, rater_id)
    if mine is not None:
        mine.expires_at = now + lease_time
        session.add(mine)
        session.flush()
        return mine.response_id
    if not round_.is_open:
        return None
    state = start(session, round_, rater_id)
    reclaim_expired(session, round_, now)
    for cursor in (state.cursor, 0, -1):
        if cursor == -1:
            # Nothing left: perhaps the runs finished more replies since the last sync.
            if not _runs_still_running(session, round_) or not sync_round(
                session, round_, force=False
            ):
                return None
            cursor = 0
        window = _window(session, round_, rater_id, cursor)
        if not window:
            continue
        ranked = sorted(window, key=lambda c: rater_rank(round_.seed, rater_id, c[0]))
        for response_id, _shuffle in ranked:
            if not _insert_ignore(
                session,
                RatingLease,
                {
                    "response_id": response_id,
                    "rater_id": rater_id,
                    "round_id": round_.id,
                    "created_at": now,
                    "expires_at": now + lease_time,
                    "skipped": False,
                },
            ):
                continue
            if not _take(session, round_, response_id):
                session.execute(
                    delete(RatingLease).where(
                        col(RatingLease.response_id) == response_id,
                        col(RatingLease.rater_id) == rater_id,
                    )
                )
                continue
            # Everything before the window's first item is ineligible for this rater now.
            state.cursor = min(_cycle_position(round_, rater_id, s) for _r, s in window)
            session.add(state)
            session.flush()
            return response_id
    return None


def _own_lease(session: Session, response_id: int, rater_id: int) -> RatingLease | None:
    return session.exec(
        select(RatingLease).where(
            RatingLease.response_id == response_id, RatingLease.rater_id == rater_id
        )
    ).first()


def _bump(session: Session, round_: RatingRound, n: int) -> None:
    session.execute(
        update(RatingRound)
        .where(col(RatingRound.id) == round_.id)
        .values({RatingRound.rating_count: RatingRound.rating_count + n})
    )


def _count(
    session: Session,
    round_: RatingRound,
    rater_id: int,
    *,
    done: int = 0,
    skipped: int = 0,
    last_rated_at: datetime | None = None,
) -> None:
    values: dict[Any, Any] = {
        RaterState.done: RaterState.done + done,
        RaterState.skipped: RaterState.skipped + skipped,
    }
    if last_rated_at is not None:
        values[RaterState.last_rated_at] = last_rated_at
    stmt = (
        update(RaterState)
        .where(col(RaterState.round_id) == round_.id, col(RaterState.rater_id) == rater_id)
        .values(values)
    )
    if not session.execute(stmt).rowcount:  # type: ignore[attr-defined]
        start(session, round_, rater_id)
        session.execute(stmt)


def submit(
    session: Session,
    round_: RatingRound,
    rater_id: int,
    response_id: int,
    data: RatingInput,
    now: datetime | None = None,
) -> int:
    """Record a rating; returns its id. A second submit of the same reply returns the first
    rating's id and changes nothing."""
    now = now or utcnow()
    values = {
        "response_id": response_id,
        "rater_id": rater_id,
        "round_id": round_.id,
        "label": data.label.value,
        "helpfulness": data.helpfulness,
        "verdict": data.verdict.value,
        "note": data.note.strip(),
        "flagged": data.flagged,
        "created_at": now,
        "updated_at": now,
    }
    # Insert first (only a reply of this round): a concurrent duplicate waits on the unique
    # key, then inserts nothing.
    rating_id = _insert_rating(session, round_, values)
    if rating_id is None:
        existing = session.execute(
            select(Rating.id).where(Rating.response_id == response_id, Rating.rater_id == rater_id)
        ).scalar()
        if existing is None:
            raise RatingError("This reply is not part of the rating round.")
        return int(existing)
    # An unskipped lease of this round already holds this rater's slot.
    held = session.execute(
        delete(RatingLease)
        .where(
            col(RatingLease.response_id) == response_id,
            col(RatingLease.rater_id) == rater_id,
            col(RatingLease.round_id) == round_.id,
            col(RatingLease.skipped) == False,  # noqa: E712
        )
        .returning(col(RatingLease.id))
    ).first()
    if held is None:
        if not _take(session, round_, response_id):
            session.execute(delete(Rating).where(col(Rating.id) == rating_id))
            raise RatingError("This reply already has enough ratings; it went to other raters.")
        # A skipped lease, if any, is replaced by the rating.
        session.execute(
            delete(RatingLease).where(
                col(RatingLease.response_id) == response_id, col(RatingLease.rater_id) == rater_id
            )
        )
    tallies.changed(
        session,
        response_id,
        rater_id,
        added=tallies.Vote(rater_id, data.label.value, data.helpfulness, data.verdict.value),
    )
    _bump(session, round_, 1)
    _count(session, round_, rater_id, done=1, last_rated_at=now)
    return rating_id


def skip(session: Session, round_: RatingRound, rater_id: int, response_id: int) -> None:
    """The rater passes on this reply: it goes back to the pool, never to them again."""
    rated = session.exec(
        select(Rating.id).where(Rating.response_id == response_id, Rating.rater_id == rater_id)
    ).first()
    if rated is not None:
        return
    lease = _own_lease(session, response_id, rater_id)
    if lease is not None and lease.skipped:
        return
    if lease is not None:
        released = session.execute(
            update(RatingLease)
            .where(col(RatingLease.id) == lease.id, col(RatingLease.skipped) == False)  # noqa: E712
            .values(skipped=True)
        ).rowcount  # type: ignore[attr-defined]
        if released:
            _release(session, Counter({response_id: 1}))
    else:
        item = session.get(RatingItem, response_id)
        if item is None or item.round_id != round_.id:
            raise RatingError("This reply is not part of the rating round.")
        _insert_ignore(
            session,
            RatingLease,
            {
                "response_id": response_id,
                "rater_id": rater_id,
                "round_id": round_.id,
                "expires_at": utcnow(),
                "skipped": True,
            },
        )
    _count(session, round_, rater_id, skipped=1)


def undo_last(
    session: Session, round_: RatingRound, rater_id: int, now: datetime | None = None
) -> int | None:
    """Take back the rater's last rating in the round; the reply is leased to them again."""
    now = now or utcnow()
    last = (
        select(Rating.id)
        .where(Rating.rater_id == rater_id, Rating.round_id == round_.id)
        .order_by(col(Rating.created_at).desc(), col(Rating.id).desc())
        .limit(1)
        .scalar_subquery()
    )
    gone = session.execute(
        delete(Rating)
        .where(col(Rating.id) == last)
        .returning(
            col(Rating.id),
            col(Rating.response_id),
            col(Rating.label),
            col(Rating.helpfulness),
            col(Rating.verdict),
        )
    ).first()
    if gone is None:
        return None
    rating_id, response_id, label, helpfulness, verdict = gone
    # The ORM must not keep a deleted rating in its identity map.
    cached = session.identity_map.get(session.identity_key(Rating, rating_id))
    if cached is not None:
        session.expunge(cached)
    # The rating's slot passes to the new lease: ``taken`` does not change.
    session.execute(
        insert(RatingLease).values(
            response_id=response_id,
            rater_id=rater_id,
            round_id=round_.id,
            created_at=now,
            expires_at=now + timedelta(minutes=round_.lease_minutes),
            skipped=False,
        )
    )
    tallies.changed(
        session,
        response_id,
        rater_id,
        removed=tallies.Vote(rater_id, str(label), int(helpfulness), str(verdict)),
    )
    _bump(session, round_, -1)
    _count(session, round_, rater_id, done=-1)
    return int(response_id)


def open_leases(
    session: Session, round_: RatingRound, now: datetime | None = None
) -> dict[int, int]:
    """Open leases per rater (their replies in progress)."""
    now = now or utcnow()
    rows = session.execute(
        select(RatingLease.rater_id, func.count())
        .where(
            RatingLease.round_id == round_.id,
            RatingLease.skipped == False,  # noqa: E712
            col(RatingLease.expires_at) >= now,
        )
        .group_by(col(RatingLease.rater_id))
    ).all()
    return {int(r): int(n) for r, n in rows}
