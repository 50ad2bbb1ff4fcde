"""Per-reply, per-rater and per-rater-pair counts of ratings, kept with every rating write.

Results read these small tables instead of grouping every rating: ``rating_tallies`` (a
reply's label, verdict and helpfulness counts), ``rating_rater_tallies`` (a rater's counts in
a run, and how often they matched the final label and the other raters' majority) and
``rating_pair_tallies`` (two raters' labels on the replies they share).

Every write to ratings or adjudications calls ``changed`` in the same transaction, after the
write: it locks the reply (Postgres; SQLite writers are serialised already), reads the reply's
ratings and adjudication as they now are, rebuilds the state before the write from the change
it is told about, and applies the difference. The final label and the majority of the other
raters depend on the whole reply, so deltas are computed from both states, never guessed.

``rebuild`` recounts runs from the ratings themselves (after bulk loads, or to repair).
"""

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import TextClause, bindparam, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select
from sqlmodel import Session

from app.db import clock_sql, is_postgres
from app.models import LABELS, VERDICTS, RatingTally

SCORES = (1, 2, 3, 4, 5)
TALLY_COLUMNS = (
    "n_ratings",
    "help_sum",
    *[f"n_{x}" for x in LABELS],
    *[f"v_{x}" for x in VERDICTS],
    *[f"h{x}" for x in SCORES],
)
RATER_COLUMNS = (
    "ratings",
    *[f"n_{x}" for x in LABELS],
    "help_sum",
    "final_n",
    "final_same",
    "others_n",
    "others_same",
)
UNCHANGED = "\x00unchanged"


@dataclass(frozen=True)
class Vote:
    """One rating as far as the counts are concerned."""

    rater_id: int
    label: str
    helpfulness: int
    verdict: str


@dataclass
class ReplyState:
    run_id: int | None
    votes: list[Vote] = field(default_factory=list)
    adjudicated: str | None = None


# --- counting (pure) ------------------------------------------------------------------------


def plurality(values: Iterable[str]) -> str | None:
    """The value strictly more frequent than every other; None on a tie or no value."""
    top = Counter(values).most_common(2)
    if not top or (len(top) > 1 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


def reply_tally(votes: Sequence[Vote]) -> tuple[int, ...]:
    """The reply's row of ``rating_tallies`` (in TALLY_COLUMNS order)."""
    labels = Counter(v.label for v in votes)
    verdicts = Counter(v.verdict for v in votes)
    scores = Counter(v.helpfulness for v in votes)
    return (
        len(votes),
        sum(v.helpfulness for v in votes),
        *[labels[x] for x in LABELS],
        *[verdicts[x] for x in VERDICTS],
        *[scores[x] for x in SCORES],
    )


def rater_rows(votes: Sequence[Vote], adjudicated: str | None) -> dict[int, tuple[int, ...]]:
    """Each rater's contribution to ``rating_rater_tallies`` from this reply."""
    final = adjudicated or plurality(v.label for v in votes)
    out = {}
    for vote in votes:
        others = plurality(o.label for o in votes if o is not vote)
        out[vote.rater_id] = (
            1,
            *[int(vote.label == x) for x in LABELS],
            vote.helpfulness,
            int(final is not None),
            int(final is not None and vote.label == final),
            int(others is not None),
            int(others is not None and vote.label == others),
        )
    return out


def pair_counts(votes: Sequence[Vote]) -> Counter[tuple[int, int, str, str]]:
    """(rater_a, rater_b, label_a, label_b) with rater_a < rater_b, once per reply."""
    ordered = sorted(votes, key=lambda v: v.rater_id)
    out: Counter[tuple[int, int, str, str]] = Counter()
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            out[(a.rater_id, b.rater_id, a.label, b.label)] += 1
    return out


# --- SQL -------------------------------------------------------------------------------------

_STATE = text(
    "SELECT 1, rater_id, label, helpfulness, verdict FROM ratings WHERE reply_id = :r "
    "UNION ALL SELECT 2, admin_id, label, 0, '' FROM adjudications WHERE reply_id = :r "
    "UNION ALL SELECT 0, run_id, '', 0, '' FROM replies WHERE id = :r"
)
_LOCK = text("SELECT run_id FROM replies WHERE id = :r FOR NO KEY UPDATE")
_TALLY_COLS = ", ".join(TALLY_COLUMNS)


def _upsert_tally(conn: Connection) -> TextClause:
    return text(
        f"INSERT INTO rating_tallies (reply_id, run_id, {_TALLY_COLS}, changed_at) "
        f"VALUES (:reply_id, :run_id, {', '.join(':' + c for c in TALLY_COLUMNS)}, "
        f"{clock_sql(conn)}) ON CONFLICT (reply_id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in (*TALLY_COLUMNS, "changed_at"))
    )


_RATER_DELTA_COLS = (*RATER_COLUMNS, "changes")
_ADD_RATERS = text(
    f"INSERT INTO rating_rater_tallies (run_id, rater_id, {', '.join(_RATER_DELTA_COLS)}) "
    f"VALUES (:run_id, :rater_id, {', '.join(':' + c for c in _RATER_DELTA_COLS)}) "
    "ON CONFLICT (run_id, rater_id) DO UPDATE SET "
    + ", ".join(f"{c} = rating_rater_tallies.{c} + excluded.{c}" for c in _RATER_DELTA_COLS)
)
_ADD_PAIRS = text(
    "INSERT INTO rating_pair_tallies (run_id, rater_a, rater_b, label_a, label_b, count) "
    "VALUES (:run_id, :rater_a, :rater_b, :label_a, :label_b, :count) "
    "ON CONFLICT (run_id, rater_a, rater_b, label_a, label_b) DO UPDATE SET "
    "count = rating_pair_tallies.count + excluded.count"
)
_RUN_COUNT_TABLES = ("rating_rater_tallies", "rating_pair_tallies")
_MARKER = text(
    "SELECT coalesce(sum(changes), 0), count(*) FROM rating_rater_tallies WHERE run_id = :r"
)


def _conn(session: Session) -> Connection:
    return session.connection()


def lock(session: Session, reply_id: int) -> None:
    """Serialise writers of one reply's judgements (Postgres); SQLite serialises all writers.

    NO KEY UPDATE does not conflict with the KEY SHARE locks that inserting a rating takes
    on the reply, so two raters of one reply queue here instead of deadlocking.
    """
    conn = _conn(session)
    if is_postgres(conn):
        conn.execute(_LOCK, {"r": reply_id})


def read_state(session: Session, reply_id: int) -> ReplyState:
    state = ReplyState(run_id=None)
    for kind, who, label, helpfulness, verdict in _conn(session).execute(_STATE, {"r": reply_id}):
        if kind == 0:
            state.run_id = int(who)
        elif kind == 1:
            state.votes.append(Vote(int(who), str(label), int(helpfulness), str(verdict)))
        else:
            state.adjudicated = str(label)
    return state


def changed(
    session: Session,
    reply_id: int,
    actor_id: int,
    *,
    added: Vote | None = None,
    removed: Vote | None = None,
    adjudicated_before: str | None = UNCHANGED,
) -> None:
    """Apply a write that has just been made to a reply's ratings or adjudication.

    ``added``: a rating inserted (or a revision's new values); ``removed``: a rating deleted
    (or a revision's old values); ``adjudicated_before``: the adjudicated label before an
    adjudication was written (None: there was none).
    """
    lock(session, reply_id)
    after = read_state(session, reply_id)
    if after.run_id is None:
        return
    before_votes = [v for v in after.votes if added is None or v.rater_id != added.rater_id]
    if removed is not None:
        before_votes.append(removed)
    before_adj = after.adjudicated if adjudicated_before == UNCHANGED else adjudicated_before
    apply(session, after.run_id, reply_id, actor_id, before_votes, before_adj, after)


def apply(
    session: Session,
    run_id: int,
    reply_id: int,
    actor_id: int,
    before_votes: Sequence[Vote],
    before_adj: str | None,
    after: ReplyState,
) -> None:
    conn = _conn(session)
    old = rater_rows(before_votes, before_adj)
    new = rater_rows(after.votes, after.adjudicated)
    zero = (0,) * len(RATER_COLUMNS)
    # Rater and pair rows are written in key order: a rating changes other raters' rows too,
    # and two writers of different replies that share raters must lock them in one order.
    raters = []
    for rater_id in sorted(old.keys() | new.keys() | {actor_id}):
        pairs_ = zip(new.get(rater_id, zero), old.get(rater_id, zero), strict=True)
        delta = [a - b for a, b in pairs_]
        is_actor = rater_id == actor_id
        if any(delta) or is_actor:
            values = dict(zip(RATER_COLUMNS, delta, strict=True), changes=int(is_actor))
            raters.append({"run_id": run_id, "rater_id": rater_id, **values})
    conn.execute(_ADD_RATERS, raters)
    pairs = pair_counts(after.votes)
    pairs.subtract(pair_counts(before_votes))
    rows = [
        dict(run_id=run_id, rater_a=a, rater_b=b, label_a=la, label_b=lb, count=n)
        for (a, b, la, lb), n in sorted(pairs.items())
        if n
    ]
    if rows:
        conn.execute(_ADD_PAIRS, rows)
    # Written even when only the adjudication changed: its changed_at tells results to re-read
    # the reply. Last, so the stamp precedes the commit by as little as possible (the rater
    # and pair rows above can wait on other raters' locks); see metrics/codes_cache.py.
    row = dict(zip(TALLY_COLUMNS, reply_tally(after.votes), strict=True))
    conn.execute(_upsert_tally(conn), {"reply_id": reply_id, "run_id": run_id, **row})


def marker(session: Session, run_id: int) -> str:
    """Changes whenever a rating or adjudication of the run is written."""
    total, rows = _conn(session).execute(_MARKER, {"r": run_id}).one()
    return f"{int(total)}.{int(rows)}"


def clock(session: Session) -> float:
    """The database clock that ``changed_at`` is stamped with (Unix seconds)."""
    conn = _conn(session)
    return float(conn.execute(text(f"SELECT {clock_sql(conn)}")).scalar_one())


def changed_since(run_id: int, since: float) -> Select[Any]:
    """The ids of the run's replies whose tally was written at or after ``since``."""
    t = RatingTally.__table__  # type: ignore[attr-defined]
    return select(t.c.reply_id).where(t.c.run_id == run_id, t.c.changed_at >= since)


# --- recount from the ratings ---------------------------------------------------------------


@dataclass
class Counts:
    """Everything the three tables hold for some runs, counted from the ratings."""

    tallies: dict[int, tuple[int, tuple[int, ...]]] = field(default_factory=dict)
    raters: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    pairs: Counter[tuple[int, int, int, str, str]] = field(default_factory=Counter)
    replies: int = 0


_RUN_RATINGS = text(
    "SELECT resp.run_id, r.reply_id, r.rater_id, r.label, r.helpfulness, r.verdict "
    "FROM ratings r JOIN replies resp ON resp.id = r.reply_id "
    "WHERE resp.run_id IN :runs ORDER BY r.reply_id"
).bindparams(bindparam("runs", expanding=True))
_RUN_ADJUDICATIONS = text(
    "SELECT a.reply_id, a.label FROM adjudications a "
    "JOIN replies resp ON resp.id = a.reply_id WHERE resp.run_id IN :runs"
).bindparams(bindparam("runs", expanding=True))


def _replies(
    session: Session, run_ids: Sequence[int]
) -> Iterator[tuple[int, int, list[Vote], str | None]]:
    """(run, reply, its votes, its adjudicated label) for every rated reply of the runs."""
    conn = _conn(session)
    adjudicated = {
        int(r): str(label) for r, label in conn.execute(_RUN_ADJUDICATIONS, {"runs": list(run_ids)})
    }
    current: tuple[int, int] | None = None
    votes: list[Vote] = []
    result = conn.execute(
        _RUN_RATINGS, {"runs": list(run_ids)}, execution_options={"yield_per": 10_000}
    )
    for run_id, reply_id, rater_id, label, helpfulness, verdict in result:
        if current is not None and current[1] != reply_id:
            yield (*current, votes, adjudicated.get(current[1]))
            votes = []
        current = (int(run_id), int(reply_id))
        votes.append(Vote(int(rater_id), str(label), int(helpfulness), str(verdict)))
    if current is not None:
        yield (*current, votes, adjudicated.get(current[1]))


def _add(counts: "Counts", run_id: int, votes: list[Vote], adjudicated: str | None) -> None:
    for rater_id, row in rater_rows(votes, adjudicated).items():
        total = counts.raters.setdefault((run_id, rater_id), [0] * len(RATER_COLUMNS))
        for i, x in enumerate(row):
            total[i] += x
    for (a, b, la, lb), n in pair_counts(votes).items():
        counts.pairs[(run_id, a, b, la, lb)] += n


def recount(session: Session, run_ids: Sequence[int]) -> Counts:
    """Count from scratch, streaming the runs' ratings reply by reply."""
    counts = Counts()
    for run_id, reply_id, votes, adjudicated in _replies(session, run_ids):
        counts.tallies[reply_id] = (run_id, reply_tally(votes))
        _add(counts, run_id, votes, adjudicated)
    return counts


def stored(session: Session, run_ids: Sequence[int]) -> Counts:
    """What the tables hold now (rows that count nothing are left out)."""
    conn = _conn(session)
    runs = {"runs": list(run_ids)}
    counts = Counts()
    query = text(
        f"SELECT reply_id, run_id, {_TALLY_COLS} FROM rating_tallies WHERE run_id IN :runs"
    ).bindparams(bindparam("runs", expanding=True))
    for row in conn.execute(query, runs):
        if any(row[2:]):
            counts.tallies[int(row[0])] = (int(row[1]), tuple(int(x) for x in row[2:]))
    query = text(
        f"SELECT run_id, rater_id, {', '.join(RATER_COLUMNS)} FROM rating_rater_tallies "
        "WHERE run_id IN :runs"
    ).bindparams(bindparam("runs", expanding=True))
    for row in conn.execute(query, runs):
        if any(row[2:]):
            counts.raters[(int(row[0]), int(row[1]))] = [int(x) for x in row[2:]]
    query = text(
        "SELECT run_id, rater_a, rater_b, label_a, label_b, count FROM rating_pair_tallies "
        "WHERE run_id IN :runs AND count <> 0"
    ).bindparams(bindparam("runs", expanding=True))
    for run_id, a, b, la, lb, n in conn.execute(query, runs):
        counts.pairs[(int(run_id), int(a), int(b), str(la), str(lb))] = int(n)
    return counts


def rebuild(session: Session, run_ids: Sequence[int], *, batch: int = 5000) -> Counts:
    """Replace the runs' counts with a recount; the change marker still moves forward.

    Reply tallies are written as they are counted; the returned Counts holds the rater and
    pair counts only (and how many replies were counted, as ``replies``).
    """
    conn = _conn(session)
    runs = {"runs": list(run_ids)}
    if is_postgres(conn):
        # Raters writing meanwhile wait for the rebuild instead of deadlocking with it (it
        # rewrites rows in no order a rater's transaction could share); SQLite serialises
        # writers already.
        conn.execute(
            text(
                "LOCK TABLE rating_tallies, rating_rater_tallies, rating_pair_tallies "
                "IN SHARE ROW EXCLUSIVE MODE"
            )
        )
    previous = {
        (int(run), int(rater)): int(n)
        for run, rater, n in conn.execute(
            text(
                "SELECT run_id, rater_id, changes FROM rating_rater_tallies WHERE run_id IN :runs"
            ).bindparams(bindparam("runs", expanding=True)),
            runs,
        )
    }
    # Reply tallies are zeroed, not deleted: results find changed replies by their rows.
    zeroed = ", ".join(f"{c} = 0" for c in TALLY_COLUMNS)
    statements = [f"UPDATE rating_tallies SET {zeroed} WHERE run_id IN :runs"]
    statements += [f"DELETE FROM {t} WHERE run_id IN :runs" for t in _RUN_COUNT_TABLES]
    for statement in statements:
        conn.execute(text(statement).bindparams(bindparam("runs", expanding=True)), runs)
    insert_tally = _upsert_tally(conn)
    counts = Counts()
    rows: list[dict[str, int]] = []
    for run_id, reply_id, votes, adjudicated in _replies(session, run_ids):
        values = dict(zip(TALLY_COLUMNS, reply_tally(votes), strict=True))
        rows.append({"reply_id": reply_id, "run_id": run_id, **values})
        _add(counts, run_id, votes, adjudicated)
        counts.replies += 1
        if len(rows) >= batch:
            conn.execute(insert_tally, rows)
            rows = []
    if rows:
        conn.execute(insert_tally, rows)
    keys = counts.raters.keys() | previous.keys()
    zero = [0] * len(RATER_COLUMNS)
    rater_rows_ = [
        {
            "run_id": run_id,
            "rater_id": rater_id,
            **dict(zip(RATER_COLUMNS, counts.raters.get((run_id, rater_id), zero), strict=True)),
            # One more change than before, so a stored result counted earlier is stale.
            "changes": previous.get((run_id, rater_id), 0) + 1,
        }
        for run_id, rater_id in sorted(keys)
    ]
    if rater_rows_:
        conn.execute(_ADD_RATERS, rater_rows_)
    pair_rows = [
        dict(run_id=r, rater_a=a, rater_b=b, label_a=la, label_b=lb, count=n)
        for (r, a, b, la, lb), n in sorted(counts.pairs.items())
    ]
    for i in range(0, len(pair_rows), batch):
        conn.execute(_ADD_PAIRS, pair_rows[i : i + batch])
    # Stamped last, so the stamp is no older than the commit by more than this statement.
    conn.execute(
        text(
            f"UPDATE rating_tallies SET changed_at = {clock_sql(conn)} WHERE run_id IN :runs"
        ).bindparams(bindparam("runs", expanding=True)),
        runs,
    )
    return counts
