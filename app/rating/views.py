"""What a rater sees: one reply, blind (no model, arm or variant kind), and their progress."""

from dataclasses import dataclass

from sqlalchemy import bindparam, func
from sqlalchemy import select as sa_select
from sqlmodel import Session

from app.models import (
    PromptVariant,
    Question,
    RaterState,
    RatingRound,
    Reply,
)
from app.rating.leases import RatingError


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
