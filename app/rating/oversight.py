"""The admin's view of a round: progress per run and per rater, disagreements between raters,
and adjudication (a final label kept apart from the ratings)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, distinct, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.models import (
    Adjudication,
    RaterState,
    Rating,
    RatingItem,
    RatingRound,
    RatingRoundRun,
    RatingTally,
    Reply,
    Run,
    User,
    utcnow,
)
from app.rating import leases, tallies
from app.rating.leases import RatingError
from app.rating.schemas import AdjudicationInput
from app.rating.views import ReplyView, reply_view


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
