"""Rating rounds, what a rater sees, progress and adjudication. Services flush; callers commit.

The queue itself: leases (who rates which reply next) in ``leases``, submit, skip and undo
in ``submissions``.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, distinct, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.models import (
    Adjudication,
    PromptVariant,
    Question,
    RaterState,
    Rating,
    RatingItem,
    RatingRevision,
    RatingRound,
    RatingRoundRun,
    RatingTally,
    Reply,
    ReplyStatus,
    Run,
    User,
    utcnow,
)
from app.rating import leases, tallies
from app.rating.guidelines import DEFAULT_GUIDELINES
from app.rating.leases import RatingError
from app.rating.schemas import AdjudicationInput, RatingInput

__all__ = ["DEFAULT_GUIDELINES", "RatingError", "open_round"]


def open_round(
    session: Session,
    *,
    run_ids: list[int],
    name: str,
    raters_per_reply: int = 2,
    lease_minutes: int = 10,
    guidelines_md: str | None = None,
    show_reference: bool = True,
    seed: int = 0,
    created_by: int | None = None,
) -> RatingRound:
    """Open rating on one or more runs (their done replies mixed in one blind queue)."""
    run_ids = sorted(set(run_ids))
    if not run_ids:
        raise RatingError("Choose at least one run.")
    if raters_per_reply < 1 or lease_minutes < 1:
        raise RatingError("Raters per reply and lease minutes must be at least 1.")
    found = session.exec(select(Run.id).where(col(Run.id).in_(run_ids))).all()
    if len(found) != len(run_ids):
        raise RatingError("Unknown run.")
    taken = session.exec(
        select(RatingRoundRun.run_id).where(col(RatingRoundRun.run_id).in_(run_ids))
    ).all()
    if taken:
        raise RatingError(f"Run(s) {', '.join(map(str, taken))} are already in a rating round.")
    round_ = RatingRound(
        name=name.strip() or "Rating",
        raters_per_reply=raters_per_reply,
        lease_minutes=lease_minutes,
        guidelines_md=DEFAULT_GUIDELINES if guidelines_md is None else guidelines_md,
        show_reference=show_reference,
        seed=seed,
        created_by=created_by,
    )
    session.add(round_)
    session.flush()
    assert round_.id is not None
    for run_id in run_ids:
        session.add(RatingRoundRun(round_id=round_.id, run_id=run_id))
    session.flush()
    leases.sync_round(session, round_)
    return round_


def list_rounds(session: Session) -> list[RatingRound]:
    return list(session.exec(select(RatingRound).order_by(col(RatingRound.id).desc())).all())


def ratings_per_round(session: Session) -> dict[int, int]:
    """Ratings given in each round, from its raters' counters (rounds without any left out)."""
    rows = session.execute(
        select(RaterState.round_id, func.sum(RaterState.done)).group_by(col(RaterState.round_id))
    ).all()
    return {int(round_id): int(done or 0) for round_id, done in rows}


def get_round(session: Session, round_id: int) -> RatingRound | None:
    return session.get(RatingRound, round_id)


def round_run_ids(session: Session, round_id: int) -> list[int]:
    return list(
        session.exec(select(RatingRoundRun.run_id).where(RatingRoundRun.round_id == round_id)).all()
    )


def runs_without_round(session: Session) -> list[tuple[Run, int]]:
    """Runs that can be opened for rating, with their count of done replies."""
    in_round = select(RatingRoundRun.run_id)
    runs = session.exec(
        select(Run).where(col(Run.id).not_in(in_round)).order_by(col(Run.id).desc())
    ).all()
    counts = dict(
        session.execute(
            select(Reply.run_id, func.count())
            .where(Reply.status == ReplyStatus.done.value, col(Reply.run_id).not_in(in_round))
            .group_by(col(Reply.run_id))
        ).all()
    )
    return [(run, int(counts.get(run.id, 0))) for run in runs]


def update_round(
    session: Session,
    round_: RatingRound,
    *,
    guidelines_md: str | None = None,
    is_open: bool | None = None,
    show_reference: bool | None = None,
) -> RatingRound:
    if guidelines_md is not None:
        round_.guidelines_md = guidelines_md
    if is_open is not None:
        round_.is_open = is_open
    if show_reference is not None:
        round_.show_reference = show_reference
    session.add(round_)
    session.flush()
    return round_


def rounds_for_rater(session: Session) -> list[RatingRound]:
    return list(
        session.exec(
            select(RatingRound)
            .where(RatingRound.is_open == True)  # noqa: E712
            .order_by(col(RatingRound.id))
        ).all()
    )


# --- what the rater sees --------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    text: str


@dataclass(frozen=True)
class Reference:
    statement: str
    truth: bool
    explanation: str


@dataclass(frozen=True)
class ReplyView:
    """A reply as the rater sees it: no model, arm, run, variant kind or others' labels."""

    reply_id: int
    turns: list[Turn]
    reply: str
    verdict: str
    reference: Reference | None


_resp_t = Reply.__table__  # type: ignore[attr-defined]
_pv_t = PromptVariant.__table__  # type: ignore[attr-defined]
_q_t = Question.__table__  # type: ignore[attr-defined]
_REPLY = (
    sa_select(
        _resp_t.c.text,
        _resp_t.c.first_text,
        _resp_t.c.verdict,
        _pv_t.c.messages,
        _pv_t.c.followup,
        _q_t.c.statement,
        _q_t.c.truth,
        _q_t.c.explanation,
    )
    .select_from(
        _resp_t.join(_pv_t, _pv_t.c.id == _resp_t.c.prompt_variant_id).join(
            _q_t, _q_t.c.id == _pv_t.c.question_id
        )
    )
    .where(_resp_t.c.id == bindparam("r"))
)


def reply_view(session: Session, round_: RatingRound, reply_id: int) -> ReplyView:
    row = session.connection().execute(_REPLY, {"r": reply_id}).first()
    if row is None:
        raise RatingError("Unknown reply.")
    # Only the user's turns and the model's answers: a system prompt could reveal the arm.
    turns = [
        Turn(role=m["role"], text=str(m.get("content", "")))
        for m in row.messages
        if m.get("role") in ("user", "assistant")
    ]
    if row.followup:
        if row.first_text:
            turns.append(Turn(role="assistant", text=row.first_text))
        turns.append(Turn(role="user", text=row.followup))
    reference = (
        Reference(row.statement, row.truth, row.explanation) if round_.show_reference else None
    )
    return ReplyView(reply_id, turns, row.text, row.verdict, reference)


@dataclass(frozen=True)
class RaterProgress:
    done: int
    remaining: int

    @property
    def total(self) -> int:
        return self.done + self.remaining


_rounds_t = RatingRound.__table__  # type: ignore[attr-defined]
_states_t = RaterState.__table__  # type: ignore[attr-defined]
_round_states_t = _states_t.alias("round_states")
# The round's ratings: each rater's own counter, summed (one row per rater of the round).
_ROUND_RATINGS = (
    sa_select(func.coalesce(func.sum(_round_states_t.c.done), 0))
    .where(_round_states_t.c.round_id == _rounds_t.c.id)
    .scalar_subquery()
)
_PROGRESS = (
    sa_select(
        _rounds_t.c.item_count,
        _rounds_t.c.raters_per_reply,
        _ROUND_RATINGS,
        _states_t.c.done,
        _states_t.c.skipped,
    )
    .select_from(
        _rounds_t.outerjoin(
            _states_t,
            (_states_t.c.round_id == _rounds_t.c.id) & (_states_t.c.rater_id == bindparam("u")),
        )
    )
    .where(_rounds_t.c.id == bindparam("round"))
)


def rater_progress(session: Session, round_: RatingRound, rater_id: int) -> RaterProgress:
    """Done by this rater, and an upper bound of what is left for them (from counters: the
    round's item count and its raters' state rows)."""
    row = session.connection().execute(_PROGRESS, {"u": rater_id, "round": round_.id}).one()
    items, k, ratings, done, skipped = row
    done, skipped = done or 0, skipped or 0
    open_slots = items * k - ratings
    remaining = max(0, min(items - done - skipped, open_slots))
    return RaterProgress(done=done, remaining=remaining)


# --- revising one's own ratings -------------------------------------------------------------


def my_ratings(
    session: Session, rater_id: int, *, limit: int = 50, offset: int = 0
) -> list[Rating]:
    return list(
        session.exec(
            select(Rating)
            .where(Rating.rater_id == rater_id)
            .order_by(col(Rating.created_at).desc(), col(Rating.id).desc())
            .limit(limit)
            .offset(offset)
        ).all()
    )


def own_rating(session: Session, rater_id: int, rating_id: int) -> Rating | None:
    rating = session.get(Rating, rating_id)
    return rating if rating is not None and rating.rater_id == rater_id else None


def revise(session: Session, rating: Rating, changed_by: int, data: RatingInput) -> Rating:
    """Change a rating, keeping its previous values in rating_revisions."""
    before = {
        "label": rating.label,
        "helpfulness": rating.helpfulness,
        "verdict": rating.verdict,
        "note": rating.note,
        "flagged": rating.flagged,
        "updated_at": rating.updated_at.isoformat(),
    }
    assert rating.id is not None
    old = tallies.Vote(rating.rater_id, rating.label, rating.helpfulness, rating.verdict)
    session.add(RatingRevision(rating_id=rating.id, changed_by=changed_by, before=before))
    rating.label = data.label.value
    rating.helpfulness = data.helpfulness
    rating.verdict = data.verdict.value
    rating.note = data.note.strip()
    rating.flagged = data.flagged
    rating.updated_at = utcnow()
    session.add(rating)
    session.flush()
    new = tallies.Vote(rating.rater_id, rating.label, rating.helpfulness, rating.verdict)
    tallies.changed(session, rating.reply_id, changed_by, added=new, removed=old)
    return rating


def revisions(session: Session, rating_id: int) -> list[RatingRevision]:
    return list(
        session.exec(
            select(RatingRevision)
            .where(RatingRevision.rating_id == rating_id)
            .order_by(col(RatingRevision.changed_at), col(RatingRevision.id))
        ).all()
    )


# --- admin views ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunProgress:
    run_id: int
    run_name: str
    replies: int
    ratings: int
    complete: int
    target: int


@dataclass(frozen=True)
class RaterRow:
    rater_id: int
    name: str
    done: int
    skipped: int
    in_progress: int
    last_hour: int
    per_hour: float


def run_progress(session: Session, round_: RatingRound) -> list[RunProgress]:
    k = round_.raters_per_reply
    rows = session.execute(
        sa_select(
            col(Run.id),
            col(Run.name),
            func.count(col(RatingItem.reply_id)),
            func.coalesce(func.sum(RatingTally.n_ratings), 0),
            func.coalesce(func.sum(case((col(RatingTally.n_ratings) >= k, 1), else_=0)), 0),
        )
        .join(RatingRoundRun, col(RatingRoundRun.run_id) == col(Run.id))
        .outerjoin(Reply, col(Reply.run_id) == col(Run.id))
        .outerjoin(RatingItem, col(RatingItem.reply_id) == col(Reply.id))
        .outerjoin(RatingTally, col(RatingTally.reply_id) == col(RatingItem.reply_id))
        .where(col(RatingRoundRun.round_id) == round_.id)
        .group_by(col(Run.id), col(Run.name))
        .order_by(col(Run.id))
    ).all()
    return [
        RunProgress(int(i), str(n), int(c), int(r), int(done), int(c) * k)
        for i, n, c, r, done in rows
    ]


def rater_rows(session: Session, round_: RatingRound) -> list[RaterRow]:
    now = utcnow()
    in_progress = leases.open_leases(session, round_, now)
    states = session.exec(
        select(RaterState, User)
        .join(User, col(User.id) == col(RaterState.rater_id))
        .where(RaterState.round_id == round_.id)
        .order_by(col(User.email))
    ).all()
    hour_ago = now - timedelta(hours=1)
    recent = dict(
        session.execute(
            select(Rating.rater_id, func.count())
            .where(Rating.round_id == round_.id, col(Rating.created_at) >= hour_ago)
            .group_by(col(Rating.rater_id))
        ).all()
    )
    rows = []
    for state, user in states:
        assert user.id is not None
        hours = _hours(state.started_at, state.last_rated_at)
        rows.append(
            RaterRow(
                rater_id=user.id,
                name=user.display_name or user.email,
                done=state.done,
                skipped=state.skipped,
                in_progress=in_progress.get(user.id, 0),
                last_hour=int(recent.get(user.id, 0)),
                per_hour=round(state.done / hours, 1) if hours else 0.0,
            )
        )
    return rows


def _hours(start: datetime, end: datetime | None) -> float:
    if end is None:
        return 0.0
    return max((end - start).total_seconds() / 3600, 1 / 60)


@dataclass
class Disagreement:
    reply_id: int
    view: ReplyView
    ratings: list[tuple[Rating, str]] = field(default_factory=list)
    adjudication: Adjudication | None = None


def disagreements(
    session: Session, round_: RatingRound, *, limit: int = 20, offset: int = 0
) -> tuple[list[Disagreement], int]:
    """Replies whose raters disagree on the label, or on helpfulness by 2 or more."""
    grouped = (
        select(Rating.reply_id)
        .where(Rating.round_id == round_.id)
        .group_by(col(Rating.reply_id))
        .having(
            or_(
                func.count(distinct(col(Rating.label))) > 1,
                func.max(Rating.helpfulness) - func.min(Rating.helpfulness) >= 2,
            )
        )
    )
    total = int(session.exec(select(func.count()).select_from(grouped.subquery())).one())
    ids = list(
        session.exec(grouped.order_by(col(Rating.reply_id)).limit(limit).offset(offset)).all()
    )
    found = []
    for reply_id in ids:
        ratings = session.exec(
            select(Rating, User)
            .join(User, col(User.id) == col(Rating.rater_id))
            .where(Rating.reply_id == reply_id)
            .order_by(col(Rating.id))
        ).all()
        found.append(
            Disagreement(
                reply_id=reply_id,
                view=reply_view(session, round_, reply_id),
                ratings=[(r, u.display_name or u.email) for r, u in ratings],
                adjudication=session.exec(
                    select(Adjudication).where(Adjudication.reply_id == reply_id)
                ).first(),
            )
        )
    return found, total


def adjudicate(
    session: Session, reply_id: int, admin_id: int, data: AdjudicationInput
) -> Adjudication:
    """The admin's final label for a reply, stored apart from the raters' ratings."""
    if session.get(Reply, reply_id) is None:
        raise RatingError("Unknown reply.")
    tallies.lock(session, reply_id)
    row = session.exec(select(Adjudication).where(Adjudication.reply_id == reply_id)).first()
    before = row.label if row is not None else None
    if row is None:
        row = Adjudication(reply_id=reply_id, admin_id=admin_id, label=data.label.value)
    row.admin_id = admin_id
    row.label = data.label.value
    row.helpfulness = data.helpfulness
    row.verdict = data.verdict.value if data.verdict else None
    row.note = data.note.strip()
    row.created_at = utcnow()
    session.add(row)
    session.flush()
    tallies.changed(session, reply_id, admin_id, adjudicated_before=before)
    return row
