"""Pairwise (side-by-side) rating: a round's items are two replies to the same prompt from
different arms; a rater says which is more factual and which more helpful (or a tie).

The round itself is a ``RatingRound`` of kind "pairwise" (guidelines, k, lease minutes, seed,
open/closed, and its raters' ``RaterState`` rows are shared with single-reply rounds); its one
run is in ``PairwiseRoundRun`` (a run may have a single-reply round and pairwise rounds).
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models._base import one_of, utcnow
from app.models.rating import new_item_token


class RoundKind(StrEnum):
    single = "single"
    pairwise = "pairwise"


class Side(StrEnum):
    """A rater's choice, by where the reply was shown to them."""

    left = "left"
    right = "right"
    tie = "tie"


class PairwiseRoundRun(SQLModel, table=True):
    __tablename__ = "pairwise_round_runs"

    round_id: int = Field(foreign_key="rating_rounds.id", primary_key=True, ondelete="CASCADE")
    run_id: int = Field(foreign_key="runs.id", index=True, ondelete="CASCADE")


class PairwiseItem(SQLModel, table=True):
    """Two done replies to one prompt variant (same sample) from two arms of the run.

    ``reply_a`` is the reply of the arm with the lower position; which one a rater sees on
    the left is decided per rater (``app.rating.pairwise.a_on_left``) and stored with their
    choice. ``taken`` (choices + open leases) is changed only by conditional updates
    (``taken < k``), as in ``RatingItem``.
    """

    __tablename__ = "pairwise_items"
    __table_args__ = (
        UniqueConstraint("round_id", "reply_a_id", "reply_b_id", name="uq_pairwise_items_pair"),
        Index("ix_pairwise_items_queue", "round_id", "is_open", "shuffle"),
        Index("ix_pairwise_items_token", "token", unique=True),
        CheckConstraint("taken >= 0", name="taken"),
    )

    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(foreign_key="rating_rounds.id", ondelete="CASCADE")
    reply_a_id: int = Field(foreign_key="replies.id", ondelete="CASCADE")
    reply_b_id: int = Field(foreign_key="replies.id", ondelete="CASCADE")
    shuffle: int = Field(sa_type=BigInteger)
    taken: int = 0
    is_open: bool = True
    # What the rater's page names the item by (never a reply id).
    token: str = Field(default_factory=new_item_token, max_length=32)


class PairwiseLease(SQLModel, table=True):
    """An item handed to a rater; counts towards k until it expires, is chosen or skipped."""

    __tablename__ = "pairwise_leases"
    __table_args__ = (
        UniqueConstraint("item_id", "rater_id", name="uq_pairwise_leases_item_rater"),
        Index("ix_pairwise_leases_round_rater", "round_id", "rater_id"),
        Index("ix_pairwise_leases_round_expiry", "round_id", "skipped", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="pairwise_items.id", ondelete="CASCADE")
    rater_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    round_id: int = Field(foreign_key="rating_rounds.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    skipped: bool = False


class PairwiseChoice(SQLModel, table=True):
    """One rater's answers on one item, by side, with the order they were shown."""

    __tablename__ = "pairwise_choices"
    __table_args__ = (
        UniqueConstraint("item_id", "rater_id", name="uq_pairwise_choices_item_rater"),
        Index("ix_pairwise_choices_round_rater", "round_id", "rater_id", "created_at"),
        one_of("factual", Side),
        one_of("helpful", Side),
    )

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="pairwise_items.id", ondelete="CASCADE")
    rater_id: int = Field(foreign_key="users.id", ondelete="RESTRICT")
    round_id: int = Field(foreign_key="rating_rounds.id", ondelete="CASCADE")
    # True: reply_a was shown on the left (and reply_b on the right).
    a_on_left: bool
    factual: str = Field(max_length=8)
    helpful: str = Field(max_length=8)
    created_at: datetime = Field(default_factory=utcnow)
