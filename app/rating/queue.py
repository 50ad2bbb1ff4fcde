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

from sqlalchemy import bindparam, delete, exists, func, insert, literal_column, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from app.db import begin_write
from app.models import (
    RaterState,
    Rating,
    RatingItem,
    RatingLease,
    RatingRound,
    Reply,
    ReplyStatus,
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


def shuffle_key(seed: int, reply_id: int) -> int:
    return _hash("item", seed, reply_id)


def rater_offset(seed: int, rater_id: int) -> int:
    return _hash("start", seed, rater_id)


def rater_rank(seed: int, rater_id: int, reply_id: int) -> int:
    return _hash("rank", seed, rater_id, reply_id)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _insert_ignore(session: Session, table: Any, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when the row was inserted."""
    module = postgresql if _dialect(session) == "postgresql" else sqlite
    stmt = module.insert(table).values(**values).on_conflict_do_nothing()
    # rowcount is not reliable for INSERT on every driver; RETURNING is.
    return session.execute(stmt.returning(literal_column("1"))).first() is not None


# --- prebuilt statements for the hot paths ---------------------------------------------------
# Built once with bind parameters and run on the session's connection: no ORM objects, no
# per-request expression building (their compiled forms are cached by SQLAlchemy).

items_t = RatingItem.__table__  # type: ignore[attr-defined]
leases_t = RatingLease.__table__  # type: ignore[attr-defined]
states_t = RaterState.__table__  # type: ignore[attr-defined]
ratings_t = Rating.__table__  # type: ignore[attr-defined]

_TAKE = (
    update(items_t)
    .where(
        items_t.c.reply_id == bindparam("r"),
        items_t.c.round_id == bindparam("round"),
        items_t.c.taken < bindparam("k"),
    )
    .values(taken=items_t.c.taken + 1, is_open=items_t.c.taken + 1 < bindparam("k"))
)
_RELEASE = (
    update(items_t)
    .where(items_t.c.reply_id == bindparam("r"))
    .values(taken=items_t.c.taken - bindparam("n"), is_open=True)
)
_RECLAIM = (
    delete(leases_t)
    .where(
        leases_t.c.id.in_(
            select(leases_t.c.id)
            .where(
                leases_t.c.round_id == bindparam("round"),
                leases_t.c.skipped == False,  # noqa: E712
                leases_t.c.expires_at < bindparam("now", type_=leases_t.c.expires_at.type),
            )
            .limit(RECLAIM_BATCH)
            .scalar_subquery()
        )
    )
    .returning(leases_t.c.reply_id)
)
_MY_LEASE = (
    select(leases_t.c.id)
    .where(
        leases_t.c.rater_id == bindparam("u"),
        leases_t.c.round_id == bindparam("round"),
        leases_t.c.skipped == False,  # noqa: E712
    )
    .order_by(leases_t.c.created_at.desc(), leases_t.c.id.desc())
    .limit(1)
)
# The rater's current lease, extended; one statement.
_RENEW = (
    update(leases_t)
    .where(leases_t.c.id == _MY_LEASE.scalar_subquery())
    .values(expires_at=bindparam("expires", type_=leases_t.c.expires_at.type))
    .returning(leases_t.c.reply_id)
)
_DROP_LEASE = delete(leases_t).where(
    leases_t.c.reply_id == bindparam("r"), leases_t.c.rater_id == bindparam("u")
)
_HELD_LEASE = (
    delete(leases_t)
    .where(
        leases_t.c.reply_id == bindparam("r"),
        leases_t.c.rater_id == bindparam("u"),
        leases_t.c.round_id == bindparam("round"),
        leases_t.c.skipped == False,  # noqa: E712
    )
    .returning(leases_t.c.id)
)
_CURSOR = select(states_t.c.cursor).where(
    states_t.c.round_id == bindparam("round"), states_t.c.rater_id == bindparam("u")
)
_SET_CURSOR = (
    update(states_t)
    .where(states_t.c.round_id == bindparam("round"), states_t.c.rater_id == bindparam("u"))
    .values(cursor=bindparam("cursor"))
)
_RATED_BY = exists().where(
    ratings_t.c.reply_id == items_t.c.reply_id, ratings_t.c.rater_id == bindparam("u")
)
_LEASED_BY = exists().where(
    leases_t.c.reply_id == items_t.c.reply_id, leases_t.c.rater_id == bindparam("u")
)
_CANDIDATES = (
    select(items_t.c.reply_id, items_t.c.shuffle)
    .where(
        items_t.c.round_id == bindparam("round"),
        items_t.c.is_open == True,  # noqa: E712
        items_t.c.shuffle >= bindparam("lo"),
        items_t.c.shuffle < bindparam("hi"),
        ~_RATED_BY,
        ~_LEASED_BY,
    )
    .order_by(items_t.c.shuffle)
    .limit(bindparam("limit"))
)
# Rows another rater is claiming right now are skipped rather than waited for (Postgres). A
# skipped row is not necessarily taken, though: every rater locks a whole window while choosing
# one reply from it, so when few replies are left, all of a rater's may be locked by others for
# a moment. ``next_for`` then reads them again with ``_CANDIDATES`` and waits (``_wait_for_one``).
_CANDIDATES_PG = _CANDIDATES.with_for_update(skip_locked=True, of=items_t)
_RATING_COLUMNS = (
    "reply_id",
    "rater_id",
    "round_id",
    "label",
    "helpfulness",
    "verdict",
    "note",
    "flagged",
    "created_at",
    "updated_at",
)
_LEASE_COLUMNS = ("reply_id", "rater_id", "round_id", "created_at", "expires_at", "skipped")
_BY_DIALECT: dict[tuple[str, str], Any] = {}


def _conn(session: Session) -> Connection:
    return session.connection()


def _prepared(session: Session, name: str) -> Any:
    """Dialect-specific statements (INSERT ... ON CONFLICT), built once per dialect."""
    dialect = _dialect(session)
    key = (dialect, name)
    if key not in _BY_DIALECT:
        module: Any = postgresql if dialect == "postgresql" else sqlite
        params = {
            c: bindparam(c, type_=t.c[c].type)
            for t, cols in ((ratings_t, _RATING_COLUMNS), (leases_t, _LEASE_COLUMNS))
            for c in cols
        }
        if name == "rating":
            # Only a reply queued in this round; nothing when the rater rated it already.
            rows = select(*[params[c] for c in _RATING_COLUMNS]).where(
                items_t.c.reply_id == params["reply_id"],
                items_t.c.round_id == params["round_id"],
            )
            stmt = module.insert(ratings_t).from_select(list(_RATING_COLUMNS), rows)
            stmt = stmt.on_conflict_do_nothing().returning(ratings_t.c.id)
        elif name == "lease":
            stmt = module.insert(leases_t).values({c: params[c] for c in _LEASE_COLUMNS})
            stmt = stmt.on_conflict_do_nothing().returning(leases_t.c.id)
        else:  # "state"
            stmt = module.insert(states_t).values(
                round_id=bindparam("round"),
                rater_id=bindparam("u"),
                cursor=0,
                done=0,
                skipped=0,
                started_at=bindparam("now", type_=states_t.c.started_at.type),
            )
            stmt = stmt.on_conflict_do_nothing()
        _BY_DIALECT[key] = stmt
    return _BY_DIALECT[key]


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


def _synced_lately(round_: RatingRound) -> bool:
    return round_.synced_at is not None and utcnow() - round_.synced_at < SYNC_EVERY


def sync_round(session: Session, round_: RatingRound, *, force: bool = True) -> int:
    """Queue the done replies of the round's runs that are not queued yet; returns how many."""
    assert round_.id is not None
    from app.models import RatingRoundRun

    if not force and _synced_lately(round_):
        return 0
    if _dialect(session) == "postgresql":
        # One sync at a time per round; the others wait, then find nothing left to add. NO KEY
        # UPDATE: a plain FOR UPDATE would also wait for, and block, every rating and lease
        # being inserted in the round (their foreign keys take KEY SHARE locks on it).
        session.execute(
            select(RatingRound.id)
            .where(RatingRound.id == round_.id)
            .with_for_update(key_share=True)
        )
    session.refresh(round_)
    if not force and _synced_lately(round_):
        return 0
    run_ids = select(RatingRoundRun.run_id).where(RatingRoundRun.round_id == round_.id)
    queued = exists().where(col(RatingItem.reply_id) == col(Reply.id))
    added = 0
    last_id = 0
    while True:
        ids = session.exec(
            select(Reply.id)
            .where(
                col(Reply.run_id).in_(run_ids),
                Reply.status == ReplyStatus.done.value,
                col(Reply.id) > last_id,
                ~queued,
            )
            .order_by(col(Reply.id))
            .limit(5000)
        ).all()
        if not ids:
            break
        rows = [
            {
                "reply_id": rid,
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


def _take(session: Session, round_: RatingRound, reply_id: int) -> bool:
    """Count one more rating-or-lease on the item, unless it already has k."""
    params = {"r": reply_id, "round": round_.id, "k": round_.raters_per_reply}
    return bool(_conn(session).execute(_TAKE, params).rowcount == 1)


def _release(session: Session, counts: Counter[int]) -> None:
    if counts:
        # In reply order: two requests releasing the same items lock them in the same order.
        rows = [{"r": r, "n": n} for r, n in sorted(counts.items())]
        _conn(session).execute(_RELEASE, rows)


def reclaim_expired(session: Session, round_: RatingRound, now: datetime | None = None) -> int:
    """Return the replies of expired leases to the pool (a batch per call)."""
    now = now or utcnow()
    # DELETE ... RETURNING: when two requests reclaim the same lease, only one gets it back.
    gone = _conn(session).execute(_RECLAIM, {"round": round_.id, "now": now}).all()
    counts = Counter(row[0] for row in gone)
    _release(session, counts)
    return sum(counts.values())


def current_lease(session: Session, round_: RatingRound, rater_id: int) -> RatingLease | None:
    lease_id = _conn(session).execute(_MY_LEASE, {"u": rater_id, "round": round_.id}).scalar()
    return None if lease_id is None else session.get(RatingLease, lease_id)


def _candidates(
    session: Session,
    round_: RatingRound,
    rater_id: int,
    lo: int,
    hi: int,
    limit: int,
    *,
    skip_locked: bool = True,
) -> list[tuple[int, int]]:
    pg = skip_locked and _dialect(session) == "postgresql"
    stmt = _CANDIDATES_PG if pg else _CANDIDATES
    params = {"round": round_.id, "u": rater_id, "lo": lo, "hi": hi, "limit": limit}
    return [(int(r), int(s)) for r, s in _conn(session).execute(stmt, params)]


def _window(
    session: Session, round_: RatingRound, rater_id: int, cursor: int, *, skip_locked: bool = True
) -> list[tuple[int, int]]:
    """The next few eligible items in the rater's cycle, from ``cursor`` on."""
    offset = rater_offset(round_.seed, rater_id)
    start_at = offset + cursor
    kw = {"skip_locked": skip_locked}
    if start_at < SHUFFLE_SPACE:
        found = _candidates(session, round_, rater_id, start_at, SHUFFLE_SPACE, WINDOW, **kw)
        if len(found) < WINDOW:
            found += _candidates(session, round_, rater_id, 0, offset, WINDOW - len(found), **kw)
        return found
    return _candidates(session, round_, rater_id, start_at - SHUFFLE_SPACE, offset, WINDOW, **kw)


def _cycle_position(round_: RatingRound, rater_id: int, shuffle: int) -> int:
    return (shuffle - rater_offset(round_.seed, rater_id)) % SHUFFLE_SPACE


def _cursor(session: Session, round_: RatingRound, rater_id: int, now: datetime) -> int:
    """The rater's place in the round's cycle (their state row is made if missing)."""
    conn = _conn(session)
    cursor = conn.execute(_CURSOR, {"round": round_.id, "u": rater_id}).scalar()
    if cursor is None:
        conn.execute(_prepared(session, "state"), {"round": round_.id, "u": rater_id, "now": now})
        return 0
    return int(cursor)


def next_for(
    session: Session, round_: RatingRound, rater_id: int, now: datetime | None = None
) -> int | None:
    """Lease the rater's next reply in this round and return its id (None: nothing left).

    A rater who already holds a lease gets the same reply again (a reload shows the same page).
    """
    assert round_.id is not None
    now = now or utcnow()
    conn = _conn(session)
    expires = now + timedelta(minutes=round_.lease_minutes)
    mine = conn.execute(_RENEW, {"u": rater_id, "round": round_.id, "expires": expires}).scalar()
    if mine is not None:
        return int(mine)
    if not round_.is_open:
        return None
    state_cursor = _cursor(session, round_, rater_id, now)
    reclaim_expired(session, round_, now)
    for cursor in (state_cursor, 0, -1):
        if cursor == -1:
            if _dialect(session) == "postgresql":
                leased = _wait_for_one(session, round_, rater_id, now, expires)
                if leased is not None:
                    return leased
            # Nothing left: perhaps the runs finished more replies since the last sync.
            if not _runs_still_running(session, round_) or not sync_round(
                session, round_, force=False
            ):
                return None
            cursor = 0
        window = _window(session, round_, rater_id, cursor)
        leased = _lease_one(session, round_, rater_id, window, now, expires)
        if leased is not None:
            return leased
    return None


def _wait_for_one(
    session: Session, round_: RatingRound, rater_id: int, now: datetime, expires: datetime
) -> int | None:
    """Postgres, when the skip-locked reads found nothing: read the rater's open replies
    without skipping the locked ones, and wait for their locks (``_TAKE`` waits, then counts on
    the committed row). Other raters only choosing from their windows let them go within
    milliseconds. None only when no reply is open for the rater."""
    while window := _window(session, round_, rater_id, 0, skip_locked=False):
        leased = _lease_one(session, round_, rater_id, window, now, expires)
        if leased is not None:
            return leased
        # Every reply of the window was filled by others meanwhile (committed, so the next
        # read leaves them out): the loop ends.
    return None


def _lease_one(
    session: Session,
    round_: RatingRound,
    rater_id: int,
    window: list[tuple[int, int]],
    now: datetime,
    expires: datetime,
) -> int | None:
    """Lease the first reply of the window that still has room, in the rater's own order."""
    if not window:
        return None
    conn = _conn(session)
    lease = _prepared(session, "lease")
    ranked = sorted(window, key=lambda c: rater_rank(round_.seed, rater_id, c[0]))
    for reply_id, _shuffle in ranked:
        values = {
            "reply_id": reply_id,
            "rater_id": rater_id,
            "round_id": round_.id,
            "created_at": now,
            "expires_at": expires,
            "skipped": False,
        }
        if conn.execute(lease, values).first() is None:
            continue
        if not _take(session, round_, reply_id):
            conn.execute(_DROP_LEASE, {"r": reply_id, "u": rater_id})
            continue
        # Everything before the window's first item is ineligible for this rater now.
        position = min(_cycle_position(round_, rater_id, s) for _r, s in window)
        conn.execute(_SET_CURSOR, {"round": round_.id, "u": rater_id, "cursor": position})
        return reply_id
    return None


def _own_lease(session: Session, reply_id: int, rater_id: int) -> RatingLease | None:
    return session.exec(
        select(RatingLease).where(
            RatingLease.reply_id == reply_id, RatingLease.rater_id == rater_id
        )
    ).first()


_COUNT = (
    update(states_t)
    .where(states_t.c.round_id == bindparam("round"), states_t.c.rater_id == bindparam("u"))
    .values(
        done=states_t.c.done + bindparam("done"),
        skipped=states_t.c.skipped + bindparam("skipped"),
        last_rated_at=func.coalesce(
            bindparam("last", type_=states_t.c.last_rated_at.type), states_t.c.last_rated_at
        ),
    )
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
    params = {
        "round": round_.id,
        "u": rater_id,
        "done": done,
        "skipped": skipped,
        "last": last_rated_at,
    }
    if not _conn(session).execute(_COUNT, params).rowcount:
        start(session, round_, rater_id)
        _conn(session).execute(_COUNT, params)


def started(session: Session, round_: RatingRound, rater_id: int) -> bool:
    """Has the rater begun this round (read its guidelines)?"""
    return _conn(session).execute(_CURSOR, {"round": round_.id, "u": rater_id}).first() is not None


def submit(
    session: Session,
    round_: RatingRound,
    rater_id: int,
    reply_id: int,
    data: RatingInput,
    now: datetime | None = None,
) -> int:
    """Record a rating; returns its id. A second submit of the same reply returns the first
    rating's id and changes nothing."""
    now = now or utcnow()
    values = {
        "reply_id": reply_id,
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
    conn = _conn(session)
    rating_id = conn.execute(_prepared(session, "rating"), values).scalar()
    if rating_id is None:
        existing = session.execute(
            select(Rating.id).where(Rating.reply_id == reply_id, Rating.rater_id == rater_id)
        ).scalar()
        if existing is None:
            raise RatingError("This reply is not part of the rating round.")
        return int(existing)
    # An unskipped lease of this round already holds this rater's slot.
    who = {"r": reply_id, "u": rater_id}
    held = conn.execute(_HELD_LEASE, {**who, "round": round_.id}).first()
    if held is None:
        if not _take(session, round_, reply_id):
            conn.execute(delete(ratings_t).where(ratings_t.c.id == rating_id))
            raise RatingError("This reply already has enough ratings; it went to other raters.")
        # A skipped lease, if any, is replaced by the rating.
        conn.execute(_DROP_LEASE, who)
    tallies.changed(
        session,
        reply_id,
        rater_id,
        added=tallies.Vote(rater_id, data.label.value, data.helpfulness, data.verdict.value),
    )
    _count(session, round_, rater_id, done=1, last_rated_at=now)
    return int(rating_id)


def skip(session: Session, round_: RatingRound, rater_id: int, reply_id: int) -> None:
    """The rater passes on this reply: it goes back to the pool, never to them again."""
    rated = session.exec(
        select(Rating.id).where(Rating.reply_id == reply_id, Rating.rater_id == rater_id)
    ).first()
    if rated is not None:
        return
    lease = _own_lease(session, reply_id, rater_id)
    if lease is not None and lease.skipped:
        return
    if lease is not None:
        released = session.execute(
            update(RatingLease)
            .where(col(RatingLease.id) == lease.id, col(RatingLease.skipped) == False)  # noqa: E712
            .values(skipped=True)
        ).rowcount  # type: ignore[attr-defined]
        if released:
            _release(session, Counter({reply_id: 1}))
    else:
        item = session.get(RatingItem, reply_id)
        if item is None or item.round_id != round_.id:
            raise RatingError("This reply is not part of the rating round.")
        _insert_ignore(
            session,
            RatingLease,
            {
                "reply_id": reply_id,
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
            col(Rating.reply_id),
            col(Rating.label),
            col(Rating.helpfulness),
            col(Rating.verdict),
        )
    ).first()
    if gone is None:
        return None
    rating_id, reply_id, label, helpfulness, verdict = gone
    # The ORM must not keep a deleted rating in its identity map.
    cached = session.identity_map.get(session.identity_key(Rating, rating_id))
    if cached is not None:
        session.expunge(cached)
    # The rating's slot passes to the new lease: ``taken`` does not change.
    session.execute(
        insert(RatingLease).values(
            reply_id=reply_id,
            rater_id=rater_id,
            round_id=round_.id,
            created_at=now,
            expires_at=now + timedelta(minutes=round_.lease_minutes),
            skipped=False,
        )
    )
    tallies.changed(
        session,
        reply_id,
        rater_id,
        removed=tallies.Vote(rater_id, str(label), int(helpfulness), str(verdict)),
    )
    _count(session, round_, rater_id, done=-1)
    return int(reply_id)


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
