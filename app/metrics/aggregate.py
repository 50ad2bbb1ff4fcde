"""SQL building blocks: one row per reply with its aggregated human judgement.

The reply's aggregated **label** is the admin's adjudicated label when there is one, else the
most frequent label among its ratings; a tie for first place with no adjudication leaves it
unresolved (NULL, counted apart). Its **helpfulness** is the adjudicated score, else the mean
of its ratings. Its effective **verdict** is the adjudicated verdict, else the raters' most
frequent reading of the verdict (their correction of the parser), else the parsed verdict.
Everything here is SQL; nothing loads rating rows into Python.
"""

from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    Float,
    and_,
    case,
    cast,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.selectable import Subquery

from app.models import (
    LABELS,
    VERDICTS,
    Adjudication,
    PromptVariant,
    Question,
    RaterPairTally,
    RaterTally,
    Rating,
    RatingTally,
    Reply,
    ReplyStatus,
    Verdict,
)

resp_t = Reply.__table__  # type: ignore[attr-defined]
pv_t = PromptVariant.__table__  # type: ignore[attr-defined]
q_t = Question.__table__  # type: ignore[attr-defined]
rating_t = Rating.__table__  # type: ignore[attr-defined]
adj_t = Adjudication.__table__  # type: ignore[attr-defined]
tally_t = RatingTally.__table__  # type: ignore[attr-defined]
rater_tally_t = RaterTally.__table__  # type: ignore[attr-defined]
pair_tally_t = RaterPairTally.__table__  # type: ignore[attr-defined]


def case_one(condition: ColumnElement[Any]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def count_if(condition: ColumnElement[Any]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case_one(condition)), 0)


def plurality(
    counts: Mapping[str, ColumnElement[Any]], values: Mapping[str, int] | None = None
) -> ColumnElement[Any]:
    """The key whose count is strictly greater than every other (or its number in ``values``);
    NULL on a tie or no count."""
    whens = []
    for key, count in counts.items():
        others = [count > other for name, other in counts.items() if name != key]
        value = literal(key) if values is None else literal(values[key])
        whens.append((and_(count > 0, *others), value))
    return case(*whens, else_=None)


def _coded(value: ColumnElement[Any], codes: Mapping[str, int], other: int) -> ColumnElement[Any]:
    return case(*[(value == key, code) for key, code in codes.items()], else_=other)


def rating_counts(run_ids: list[int]) -> Subquery:
    """Per rated reply: number of ratings, per-label and per-verdict counts, helpfulness sum.

    Read from the per-reply tallies the rating domain keeps with every rating write, so no
    query here groups the ratings themselves.
    """
    t = tally_t
    columns = [t.c.reply_id, t.c.n_ratings, t.c.help_sum]
    columns += [t.c[f"n_{label}"] for label in LABELS]
    columns += [t.c[f"v_{v}"] for v in VERDICTS]
    columns += [t.c[f"h{score}"] for score in range(1, 6)]
    return select(*columns).where(t.c.run_id.in_(run_ids), t.c.n_ratings > 0).subquery("rc")


def is_correct(verdict: ColumnElement[Any], truth: ColumnElement[Any]) -> ColumnElement[Any]:
    return or_(
        and_(verdict == Verdict.true.value, truth),
        and_(verdict == Verdict.false.value, not_(truth)),
    )


class Judgement:
    """A reply's aggregated human judgement as SQL expressions over replies, questions, the
    rating tallies (``rc``, see ``rating_counts``) and adjudications: the one definition that
    the per-reply export rows and the results' reply codes share."""

    def __init__(self, rc: Subquery) -> None:
        self.label_counts = {label: rc.c[f"n_{label}"] for label in LABELS}
        self.verdict_counts = {v: rc.c[f"v_{v}"] for v in VERDICTS}
        adjudicated_help = adj_t.c.helpfulness.is_not(None)
        self.label = func.coalesce(adj_t.c.label, plurality(self.label_counts))
        self.verdict = func.coalesce(
            adj_t.c.verdict, plurality(self.verdict_counts), resp_t.c.verdict
        )
        self.h_num = case((adjudicated_help, adj_t.c.helpfulness), else_=rc.c.help_sum)
        self.h_den = case((adjudicated_help, 1), else_=rc.c.n_ratings)
        self.n_ratings = func.coalesce(rc.c.n_ratings, 0)
        self.rated = or_(rc.c.n_ratings.is_not(None), adj_t.c.id.is_not(None))

    # The same two rules, giving small integers instead of strings: each (nested) expression
    # appears once, where coding ``label`` afterwards would repeat it in every WHEN.

    def label_code(self, codes: Mapping[str, int], *, none: int, other: int) -> ColumnElement[Any]:
        """``codes[label]``; ``none`` without a label; ``other`` for an adjudicated label that is
        not in ``codes``."""
        adjudicated = adj_t.c.label
        return case(
            (adjudicated.is_(None), func.coalesce(plurality(self.label_counts, codes), none)),
            else_=_coded(adjudicated, codes, other),
        )

    def verdict_code(self, codes: Mapping[str, int], *, other: int) -> ColumnElement[Any]:
        """``codes[verdict]`` of the effective verdict; ``other`` for a verdict not in codes."""
        adjudicated = adj_t.c.verdict
        raters = plurality(self.verdict_counts, {v: codes.get(v, other) for v in VERDICTS})
        return case(
            (adjudicated.is_(None), func.coalesce(raters, _coded(resp_t.c.verdict, codes, other))),
            else_=_coded(adjudicated, codes, other),
        )


def replies_select(run_ids: list[int]) -> Select[Any]:
    """One row per done reply of the runs, with aggregated label, helpfulness and verdict."""
    rc = rating_counts(run_ids)
    j = Judgement(rc)
    first_correct = case(
        (resp_t.c.first_verdict.is_(None), None),
        (is_correct(resp_t.c.first_verdict, q_t.c.truth), 1),
        else_=0,
    )
    return (
        select(
            resp_t.c.id.label("reply_id"),
            resp_t.c.run_id,
            resp_t.c.arm_id,
            resp_t.c.prompt_variant_id,
            resp_t.c.sample_index,
            pv_t.c.question_id,
            pv_t.c.kind,
            pv_t.c.stance,
            case((pv_t.c.premise_erroneous, 1), else_=0).label("erroneous"),
            case((and_(pv_t.c.stance != "none", not_(pv_t.c.premise_erroneous)), 1), else_=0).label(
                "true_premise"
            ),
            j.label.label("label"),
            j.verdict.label("verdict"),
            case((is_correct(j.verdict, q_t.c.truth), 1), else_=0).label("correct"),
            first_correct.label("first_correct"),
            j.h_num.label("h_num"),
            j.h_den.label("h_den"),
            (cast(j.h_num, Float) / j.h_den).label("helpfulness"),
            j.n_ratings.label("n_ratings"),
            *[func.coalesce(rc.c[f"n_{x}"], 0).label(f"n_{x}") for x in LABELS],
            *[func.coalesce(rc.c[f"h{x}"], 0).label(f"h{x}") for x in range(1, 6)],
            case((j.rated, 1), else_=0).label("rated"),
            case((and_(j.rated, j.label.is_(None)), 1), else_=0).label("unresolved"),
        )
        .select_from(
            resp_t.join(pv_t, pv_t.c.id == resp_t.c.prompt_variant_id)
            .join(q_t, q_t.c.id == pv_t.c.question_id)
            .outerjoin(rc, rc.c.reply_id == resp_t.c.id)
            .outerjoin(adj_t, adj_t.c.reply_id == resp_t.c.id)
        )
        .where(resp_t.c.run_id.in_(run_ids), resp_t.c.status == ReplyStatus.done.value)
    )
