"""Rating rounds and revising one's own ratings. Services flush; callers commit.

What a rater sees of a reply is in ``views``; the admin's progress tables and adjudication
in ``oversight``.

The queue itself: leases (who rates which reply next) in ``leases``, submit, skip and undo
in ``submissions``.
"""

import random
from collections import defaultdict

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.models import (
    PromptVariant,
    RaterState,
    Rating,
    RatingItem,
    RatingRevision,
    RatingRound,
    RatingRoundRun,
    Reply,
    ReplyStatus,
    RoundKind,
    Run,
    RunArm,
    new_item_token,
    utcnow,
)
from app.rating import leases, tallies
from app.rating.guidelines import DEFAULT_GUIDELINES
from app.rating.leases import RatingError
from app.rating.schemas import RatingInput
from app.rating.statements import shuffle_key

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
    sample_size: int | None = None,
    show_judge_after_submit: bool = False,
) -> RatingRound:
    """Open rating on one or more runs (their done replies mixed in one blind queue).

    With ``sample_size``, the round is a random sample of the runs' replies done now, of
    that size, stratified by arm x variant kind (see ``_draw_sample``), and takes in no reply
    later; each queued reply keeps its inclusion probability."""
    run_ids = sorted(set(run_ids))
    if sample_size is not None and sample_size < 1:
        raise RatingError("A sample needs at least one reply.")
    sample = None if sample_size is None else _draw_sample(session, run_ids, sample_size, seed)
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
        sample_size=sample_size,
        show_judge_after_submit=show_judge_after_submit,
    )
    session.add(round_)
    session.flush()
    assert round_.id is not None
    for run_id in run_ids:
        session.add(RatingRoundRun(round_id=round_.id, run_id=run_id))
    session.flush()
    if sample is None:
        leases.sync_round(session, round_)
    else:
        _queue_sample(session, round_, sample)
    return round_


def _draw_sample(
    session: Session, run_ids: list[int], size: int, seed: int
) -> list[tuple[int, float]]:
    """A stratified random sample of the runs' done replies, as (reply id, inclusion
    probability): strata are arm x variant kind, each given a share of ``size`` proportional
    to its replies (largest remainders, at least one each), drawn without replacement with
    the round's seed; a reply's inclusion probability is its stratum's share / replies."""
    rows = session.exec(
        select(Reply.id, Reply.arm_id, PromptVariant.kind)
        .join(PromptVariant, col(PromptVariant.id) == col(Reply.prompt_variant_id))
        .where(col(Reply.run_id).in_(run_ids), Reply.status == ReplyStatus.done.value)
        .order_by(col(Reply.id))
    ).all()
    strata: dict[tuple[int, str], list[int]] = defaultdict(list)
    for reply_id, arm_id, kind in rows:
        strata[(int(arm_id), str(kind))].append(int(reply_id or 0))
    total = sum(len(ids) for ids in strata.values())
    if size > total:
        raise RatingError(f"A sample of {size} replies, but the runs have {total} done.")
    if size < len(strata):
        raise RatingError(
            f"A sample of at least {len(strata)} replies: one per arm x variant kind."
        )
    keys = sorted(strata)
    exact = {key: size * len(strata[key]) / total for key in keys}
    share = {key: max(1, int(exact[key])) for key in keys}
    # Largest remainders until the shares add up (never above a stratum's size).
    by_remainder = sorted(keys, key=lambda k: (share[k] - exact[k], k))
    while sum(share.values()) < size:
        key = next(k for k in by_remainder if share[k] < len(strata[k]))
        share[key] += 1
        by_remainder.remove(key)
        by_remainder.append(key)
    while sum(share.values()) > size:
        key = max((k for k in keys if share[k] > 1), key=lambda k: (share[k] - exact[k], k))
        share[key] -= 1
    rng = random.Random(f"sample:{seed}")
    drawn = []
    for key in keys:
        probability = share[key] / len(strata[key])
        drawn += [(reply_id, probability) for reply_id in rng.sample(strata[key], share[key])]
    return drawn


def _queue_sample(session: Session, round_: RatingRound, sample: list[tuple[int, float]]) -> None:
    """The sampled replies as the round's items, with their inclusion probabilities."""
    items = [
        {
            "reply_id": reply_id,
            "round_id": round_.id,
            "shuffle": shuffle_key(round_.seed, reply_id),
            "taken": 0,
            "is_open": True,
            "inclusion_probability": probability,
            "token": new_item_token(),
        }
        for reply_id, probability in sample
    ]
    for start in range(0, len(items), 5000):
        session.execute(RatingItem.__table__.insert(), items[start : start + 5000])  # type: ignore[attr-defined]
    round_.item_count = len(items)
    round_.synced_at = utcnow()
    session.add(round_)
    session.flush()


def list_rounds(session: Session) -> list[RatingRound]:
    return list(session.exec(select(RatingRound).order_by(col(RatingRound.id).desc())).all())


def ratings_per_round(session: Session) -> dict[int, int]:
    """Ratings given in each round, from its raters' counters (rounds without any left out)."""
    rows = session.execute(
        select(RaterState.round_id, func.sum(RaterState.done)).group_by(col(RaterState.round_id))
    ).all()
    return {int(round_id): int(done or 0) for round_id, done in rows}


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


def runs_for_pairwise(session: Session) -> list[tuple[Run, int, int]]:
    """Runs with at least two arms (a pairwise round's), with their arms and done replies."""
    arms = dict(
        session.execute(select(RunArm.run_id, func.count()).group_by(col(RunArm.run_id))).all()
    )
    ids = [run_id for run_id, n in arms.items() if n >= 2]
    if not ids:
        return []
    runs = session.exec(select(Run).where(col(Run.id).in_(ids)).order_by(col(Run.id).desc())).all()
    done = dict(
        session.execute(
            select(Reply.run_id, func.count())
            .where(Reply.status == ReplyStatus.done.value, col(Reply.run_id).in_(ids))
            .group_by(col(Reply.run_id))
        ).all()
    )
    return [(run, int(arms[run.id]), int(done.get(run.id, 0))) for run in runs]


def update_round(
    session: Session,
    round_: RatingRound,
    *,
    guidelines_md: str | None = None,
    is_open: bool | None = None,
    show_reference: bool | None = None,
    show_judge_after_submit: bool | None = None,
) -> RatingRound:
    if show_judge_after_submit is not None:
        round_.show_judge_after_submit = show_judge_after_submit
    if guidelines_md is not None:
        round_.guidelines_md = guidelines_md
    if is_open is not None:
        round_.is_open = is_open
    if show_reference is not None:
        round_.show_reference = show_reference
    session.add(round_)
    session.flush()
    return round_


def take_in_new_replies(session: Session, round_: RatingRound) -> int:
    """The admin's "add newly finished replies" (rounds also do it by themselves)."""
    if not leases.follows_runs(round_):
        raise RatingError("A sampled round keeps the sample it was opened with.")
    if not round_.is_open:  # closed meanwhile (another admin): adding to it is not asked for
        raise RatingError("The round is closed: reopen it to add replies.")
    return leases.sync_round(session, round_)


def rounds_for_rater(session: Session) -> list[RatingRound]:
    return list(
        session.exec(
            select(RatingRound)
            .where(
                RatingRound.is_open == True,  # noqa: E712
                RatingRound.kind == RoundKind.single.value,
            )
            .order_by(col(RatingRound.id))
        ).all()
    )


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
