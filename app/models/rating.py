import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Column, Index, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from app.models._base import Label, Verdict, one_of, utcnow


class RatingRound(SQLModel, table=True):
    """Rating opened on one or more runs: k raters per reply, guidelines, lease time."""

    __tablename__ = "rating_rounds"
    __table_args__ = (CheckConstraint("raters_per_reply >= 1", name="raters_per_reply"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    raters_per_reply: int = 2
    lease_minutes: int = 10
    guidelines_md: str = ""
    show_reference: bool = True
    seed: int = 0
    is_open: bool = True
    # Kept in the same transaction as the items it counts. Ratings are not counted here: one
    # row bumped by every rating serialised all raters on Postgres; the round's ratings are
    # the sum of its raters' ``rating_rater_states.done``.
    item_count: int = 0
    # When done replies of the round's runs were last added to its queue.
    synced_at: datetime | None = None
    # A random sample of the runs' done replies (stratified by arm x kind), fixed when the
    # round opens; None: every done reply. Each item keeps its inclusion probability.
    sample_size: int | None = None
    # After submitting, a rater sees the stored judge labels of the reply they rated (never
    # before: they would anchor the rating).
    show_judge_after_submit: bool = Field(
        default=False, sa_column_kwargs={"server_default": false()}
    )
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)


class RatingRoundRun(SQLModel, table=True):
    __tablename__ = "rating_round_runs"

    round_id: int = Field(foreign_key="rating_rounds.id", primary_key=True, ondelete="CASCADE")
    # A run is rated in one round at most.
    run_id: int = Field(foreign_key="runs.id", primary_key=True, unique=True, ondelete="CASCADE")


class Rating(SQLModel, table=True):
    __tablename__ = "ratings"
    __table_args__ = (
        UniqueConstraint("reply_id", "rater_id", name="uq_ratings_reply_rater"),
        Index("ix_ratings_rater_created", "rater_id", "created_at"),
        Index("ix_ratings_round_reply", "round_id", "reply_id"),
        CheckConstraint("helpfulness BETWEEN 1 AND 5", name="helpfulness"),
        one_of("label", Label),
        one_of("verdict", Verdict),
    )

    id: int | None = Field(default=None, primary_key=True)
    reply_id: int = Field(foreign_key="replies.id", ondelete="CASCADE")
    rater_id: int = Field(foreign_key="users.id", ondelete="RESTRICT")
    round_id: int | None = Field(default=None, foreign_key="rating_rounds.id", ondelete="SET NULL")
    label: str = Field(max_length=16)
    helpfulness: int
    # The rater's reading of the reply's verdict (their own choice: nothing is pre-filled).
    verdict: str = Field(default=Verdict.none.value, max_length=8)
    note: str = ""
    flagged: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class RatingRevision(SQLModel, table=True):
    """The values a rating had before each change: who changed what, and when."""

    __tablename__ = "rating_revisions"

    id: int | None = Field(default=None, primary_key=True)
    rating_id: int = Field(foreign_key="ratings.id", index=True, ondelete="CASCADE")
    changed_by: int = Field(foreign_key="users.id", ondelete="RESTRICT")
    changed_at: datetime = Field(default_factory=utcnow)
    before: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class RatingLease(SQLModel, table=True):
    """A reply handed to a rater; it counts towards k until it expires, is rated or skipped."""

    __tablename__ = "rating_leases"
    __table_args__ = (
        UniqueConstraint("reply_id", "rater_id", name="uq_rating_leases_reply_rater"),
        Index("ix_rating_leases_reply_expires", "reply_id", "expires_at"),
        Index("ix_rating_leases_round_expiry", "round_id", "skipped", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reply_id: int = Field(foreign_key="replies.id", ondelete="CASCADE")
    rater_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    round_id: int = Field(foreign_key="rating_rounds.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    skipped: bool = False


def new_item_token() -> str:
    return secrets.token_hex(16)


class RatingItem(SQLModel, table=True):
    """A done reply in a round's queue, with its count of ratings plus open leases.

    ``taken`` is changed only by conditional updates (``taken < k``), which is what keeps a
    reply at k ratings-or-leases at most; ``is_open`` (taken < k) lets "next" walk an index
    of open items in ``shuffle`` order instead of counting ratings per request.
    """

    __tablename__ = "rating_items"
    __table_args__ = (
        Index("ix_rating_items_queue", "round_id", "is_open", "shuffle"),
        Index("ix_rating_items_token", "token", unique=True),
        CheckConstraint("taken >= 0", name="taken"),
    )

    reply_id: int = Field(foreign_key="replies.id", primary_key=True, ondelete="CASCADE")
    round_id: int = Field(foreign_key="rating_rounds.id", ondelete="CASCADE")
    # A hash of (round seed, reply): the round's shared random order.
    shuffle: int = Field(sa_type=BigInteger)
    taken: int = 0
    is_open: bool = True
    # The probability the reply had of being drawn into a sampled round (1 / its weight in
    # prediction-powered estimates); None in rounds over every done reply.
    inclusion_probability: float | None = None
    # What the rater's page and form name the item by: random, so neither the reply's id nor
    # the order replies were made in (which alternates arms) reaches a rater.
    token: str = Field(default_factory=new_item_token, max_length=32)


class RaterState(SQLModel, table=True):
    """One rater's place in a round: where their walk of the queue has got to, and counts."""

    __tablename__ = "rating_rater_states"

    round_id: int = Field(foreign_key="rating_rounds.id", primary_key=True, ondelete="CASCADE")
    rater_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    # Position in the rater's cycle (0 = their seeded starting point); before it, nothing is
    # eligible for them except items that reopened later (found by a fallback scan).
    cursor: int = Field(default=0, sa_type=BigInteger)
    done: int = 0
    skipped: int = 0
    started_at: datetime = Field(default_factory=utcnow)
    last_rated_at: datetime | None = None


class Adjudication(SQLModel, table=True):
    """An admin's final label for a reply the raters disagreed on; kept apart from ratings."""

    __tablename__ = "adjudications"
    __table_args__ = (
        one_of("label", Label),
        CheckConstraint(
            "helpfulness IS NULL OR helpfulness BETWEEN 1 AND 5",
            name="helpfulness",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    reply_id: int = Field(foreign_key="replies.id", unique=True, ondelete="CASCADE")
    admin_id: int = Field(foreign_key="users.id", ondelete="RESTRICT")
    label: str = Field(max_length=16)
    helpfulness: int | None = None
    verdict: str | None = Field(default=None, max_length=8)
    note: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class RatingTally(SQLModel, table=True):
    """One reply's ratings in counts: what results read instead of grouping every rating.

    Kept by app/rating/tallies.py in the same transaction as every rating write (submit,
    revise, undo) and adjudication; ``help_sum`` is the sum of the helpfulness scores.
    ``changed_at`` is the database clock (Unix seconds) at the row's last write: results
    re-read only the replies changed since their previous computation. Rows are not deleted
    while their reply exists (a reply with nothing left counts zeros).
    """

    __tablename__ = "rating_tallies"
    __table_args__ = (
        Index("ix_rating_tallies_run", "run_id", "reply_id"),
        Index("ix_rating_tallies_run_changed", "run_id", "changed_at"),
    )

    reply_id: int = Field(foreign_key="replies.id", primary_key=True, ondelete="CASCADE")
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE")
    n_ratings: int = 0
    help_sum: int = 0
    n_agree: int = 0
    n_correct: int = 0
    n_evasive: int = 0
    v_true: int = 0
    v_false: int = 0
    v_none: int = 0
    h1: int = 0
    h2: int = 0
    h3: int = 0
    h4: int = 0
    h5: int = 0
    changed_at: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})


class RaterTally(SQLModel, table=True):
    """One rater's ratings in one run, and how often they matched the reply's final label
    (adjudicated, else majority) and the majority of the other raters. ``changes`` counts
    this user's writes to the run's judgements (ratings, adjudications): the run's sum is a
    marker that moves on every change, so stored results know when they are stale."""

    __tablename__ = "rating_rater_tallies"

    run_id: int = Field(foreign_key="runs.id", primary_key=True, ondelete="CASCADE")
    rater_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    ratings: int = 0
    n_agree: int = 0
    n_correct: int = 0
    n_evasive: int = 0
    help_sum: int = 0
    final_n: int = 0
    final_same: int = 0
    others_n: int = 0
    others_same: int = 0
    changes: int = Field(default=0, sa_type=BigInteger)


class RaterPairTally(SQLModel, table=True):
    """Replies two raters both labelled, per pair of labels (rater_a < rater_b): Cohen's kappa."""

    __tablename__ = "rating_pair_tallies"

    run_id: int = Field(foreign_key="runs.id", primary_key=True, ondelete="CASCADE")
    rater_a: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    rater_b: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    label_a: str = Field(primary_key=True, max_length=16)
    label_b: str = Field(primary_key=True, max_length=16)
    count: int = 0


class JudgeLabel(SQLModel, table=True):
    """A label from an LLM judge, stored apart from human ratings. The judge is its model
    config and rubric version; ``confidence`` (0-1) is the judge's own, when it states one."""

    __tablename__ = "judge_labels"
    __table_args__ = (
        UniqueConstraint(
            "reply_id", "judge_model_id", "rubric_version", name="uq_judge_labels_reply_judge"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    reply_id: int = Field(foreign_key="replies.id", ondelete="CASCADE")
    judge_model_id: int = Field(foreign_key="model_configs.id", ondelete="CASCADE")
    rubric_version: str = Field(max_length=40)
    label: str | None = Field(default=None, max_length=16)
    helpfulness: int | None = None
    verdict: str | None = Field(default=None, max_length=8)
    confidence: float | None = None
    raw: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    # The call that made the label (0 when it came from the LLM cache: no call, no cost),
    # priced at the judge config's prices when it was made.
    tokens_in: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    tokens_out: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    cost_usd: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    from_cache: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    via_batch: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class JudgeBatch(SQLModel, table=True):
    """A judge's labelling of a run through the OpenAI Batch API: the remote batch's id,
    kept so that a worker started after a crash polls it again instead of sending another.
    One row per run x judge x rubric version (the latest batch)."""

    __tablename__ = "judge_batches"
    __table_args__ = (
        UniqueConstraint(
            "run_id", "judge_model_id", "rubric_version", name="uq_judge_batches_run_judge"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE")
    judge_model_id: int = Field(foreign_key="model_configs.id", ondelete="CASCADE")
    rubric_version: str = Field(max_length=40)
    batch_id: str = Field(default="", max_length=200)
    input_file_id: str = Field(default="", max_length=200)
    status: str = Field(default="", max_length=40)
    # The replies sent in the batch (those whose label the batch must bring back).
    reply_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    cached: int = 0  # labelled from the LLM cache when the batch was made
    stored: int = 0  # labels stored from the batch's results
    fallback: int = 0  # replies given ordinary judge jobs (failed or missing lines)
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
