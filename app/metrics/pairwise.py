"""Pairwise (side-by-side) results: which arm's reply raters chose, per question and kind.

Every choice is on an item (two replies to one prompt variant from arms a and b, a before b
in the run's arm order) and says, per question, "left", "right" or "tie" as the rater saw the
sides; ``a_on_left`` (stored with the choice) turns it into a winner: arm a, arm b or a tie.

Figures, per question (factual, helpful) and variant kind ("all" = every kind), per pair of
arms:

- win rates: the share of choices won by arm a, by arm b, and the share of ties (the three
  add up to 1), each with a 95 % CI from the statement bootstrap (``inference.rates``:
  statements are the independent units; an item's raters and a statement's templates and
  samples are correlated);
- a sign test over statements (``scipy.stats.binomtest``, two-sided, p = 1/2): a statement
  counts for the arm that won more of its choices, statements with as many wins each way are
  left out;
- with more than two arms, Bradley-Terry strengths (``bradley_terry``: ties count half a win
  each way), shown beside the pairwise rows.

Per question: position bias, the share of non-tie choices that picked the left reply (0.5 =
none; the CI clustered by statement), for all raters and per rater (pseudonyms P1, P2, ... by
ascending account id among the run's pairwise raters), so a rater who always picks one side
is visible; and Krippendorff's alpha (nominal: a / tie / b per item) on the items chosen by
two or more raters (``stats.krippendorff_alpha``, its CI from resampled items).

pairwise.csv (``/results/runs/{id}/pairwise/choices.csv``; JSON rows at
``/api/runs/{id}/pairwise/choices``): one row per choice, of every pairwise round over the run.
    choice_id, round_id, item_id, run_id, question_id, variant_kind, sample_index, arm_a,
    arm_b (the item's two arms, a before b in the run's arm order), reply_a_id, reply_b_id,
    left_arm (the arm whose reply this rater saw on the left), rater (pseudonym P1, P2... by
    ascending account id among the run's pairwise raters), factual, helpful (the rater's
    choices as they saw the sides: left, right or tie), factual_winner, helpful_winner (the
    arm chosen, or "tie"), created_at. Text cells are formula-neutralised as in the other
    exports (``exports.neutralise``); rows are streamed from a server-side cursor.
"""

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlmodel import Session

from app.metrics import inference, stats
from app.metrics.exports import neutralise
from app.metrics.inference import FloatArray
from app.metrics.schemas import (
    EstimateOut,
    PairwiseAgreement,
    PairwiseOut,
    PairwiseRow,
    PairwiseSignTest,
    PairwiseStrength,
    PositionBias,
    RateOut,
)
from app.models import (
    PairwiseChoice,
    PairwiseItem,
    PairwiseRoundRun,
    PromptVariant,
    Reply,
    RunArm,
)

IntArray = npt.NDArray[np.int64]
QUESTIONS = ("factual", "helpful")
ALL = "all"


@dataclass(frozen=True)
class Choice:
    """One rater's choice on one item, with what the statistics need."""

    choice_id: int
    item_id: int
    rater_id: int
    statement: int  # the question (statement) id: the cluster
    kind: str
    arm_a: str
    arm_b: str
    a_on_left: bool
    factual: str
    helpful: str

    def side(self, question: str) -> str:
        return self.factual if question == "factual" else self.helpful

    def winner(self, question: str) -> str:
        """ "a", "b" or "tie"."""
        side = self.side(question)
        if side == "tie":
            return "tie"
        return "a" if (side == "left") == self.a_on_left else "b"


def winner_arm(choice: Choice, question: str) -> str:
    won = choice.winner(question)
    return "tie" if won == "tie" else (choice.arm_a if won == "a" else choice.arm_b)


choice_t = PairwiseChoice.__table__  # type: ignore[attr-defined]
item_t = PairwiseItem.__table__  # type: ignore[attr-defined]
round_run_t = PairwiseRoundRun.__table__  # type: ignore[attr-defined]
_variant_t = PromptVariant.__table__  # type: ignore[attr-defined]
_reply_t = Reply.__table__  # type: ignore[attr-defined]
_arm_t = RunArm.__table__  # type: ignore[attr-defined]


def load(session: Session, run_id: int) -> list[Choice]:
    """The choices of every pairwise round over the run, in id order."""
    c, i, rr, pv = choice_t, item_t, round_run_t, _variant_t
    reply_a, reply_b = _reply_t.alias("reply_a"), _reply_t.alias("reply_b")
    arm_a, arm_b = _arm_t.alias("arm_a"), _arm_t.alias("arm_b")
    query = (
        select(
            c.c.id,
            c.c.item_id,
            c.c.rater_id,
            pv.c.question_id,
            pv.c.kind,
            arm_a.c.label,
            arm_b.c.label,
            c.c.a_on_left,
            c.c.factual,
            c.c.helpful,
        )
        .select_from(
            c.join(i, i.c.id == c.c.item_id)
            .join(rr, rr.c.round_id == i.c.round_id)
            .join(reply_a, reply_a.c.id == i.c.reply_a_id)
            .join(reply_b, reply_b.c.id == i.c.reply_b_id)
            .join(arm_a, arm_a.c.id == reply_a.c.arm_id)
            .join(arm_b, arm_b.c.id == reply_b.c.arm_id)
            .join(pv, pv.c.id == reply_a.c.prompt_variant_id)
        )
        .where(rr.c.run_id == run_id)
        .order_by(c.c.id)
    )
    return [
        Choice(int(cid), int(item), int(rater), int(q), str(kind), str(a), str(b), bool(left), f, h)
        for cid, item, rater, q, kind, a, b, left, f, h in session.execute(query)
    ]


def pseudonyms(choices: Sequence[Choice]) -> dict[int, str]:
    """P1, P2, ... by ascending account id among the raters of these choices."""
    return {rater: f"P{n}" for n, rater in enumerate(sorted({c.rater_id for c in choices}), 1)}


WINNER_CODES = {"a": 0, "b": 1, "tie": 2}


@dataclass(frozen=True)
class _Table:
    """The choices as arrays, one entry per choice, for the vectorised figures."""

    statement: IntArray
    rater: IntArray
    kind: npt.NDArray[np.str_]
    arm_a: npt.NDArray[np.str_]
    arm_b: npt.NDArray[np.str_]
    winner: dict[str, IntArray]  # per question: 0 arm a, 1 arm b, 2 tie
    left: dict[str, IntArray]  # per question: 1 left chosen, 0 right, -1 tie

    @classmethod
    def of(cls, choices: Sequence[Choice]) -> "_Table":
        side = {"left": 1, "right": 0, "tie": -1}
        return cls(
            statement=np.array([c.statement for c in choices], dtype=np.int64),
            rater=np.array([c.rater_id for c in choices], dtype=np.int64),
            kind=np.array([c.kind for c in choices], dtype=np.str_),
            arm_a=np.array([c.arm_a for c in choices], dtype=np.str_),
            arm_b=np.array([c.arm_b for c in choices], dtype=np.str_),
            winner={
                q: np.array([WINNER_CODES[c.winner(q)] for c in choices], dtype=np.int64)
                for q in QUESTIONS
            },
            left={
                q: np.array([side[c.side(q)] for c in choices], dtype=np.int64) for q in QUESTIONS
            },
        )


def _cluster_sums(statement: IntArray, outcomes: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(statements x cells) sums of each outcome and counts of choices, over the statements
    present (a statement without a choice here must not be resampled)."""
    _uniq, inv = np.unique(statement, return_inverse=True)
    n = int(inv.max()) + 1 if len(inv) else 0
    sums = np.column_stack(
        [np.bincount(inv, weights=outcomes[:, j], minlength=n) for j in range(outcomes.shape[1])]
    ).astype(np.float64)
    counts = np.repeat(np.bincount(inv, minlength=n).astype(np.float64)[:, None], sums.shape[1], 1)
    return sums, counts


def _sign_test(statement: IntArray, winner: IntArray) -> PairwiseSignTest:
    """Statements won by arm a (more of their choices for a than for b) against those won by
    arm b; two-sided exact binomial test with p = 1/2 over the statements that lean."""
    _uniq, inv = np.unique(statement, return_inverse=True)
    lean = (winner == 0).astype(np.float64) - (winner == 1)
    net = np.bincount(inv, weights=lean, minlength=int(inv.max()) + 1 if len(inv) else 0)
    a_better, b_better = int((net > 0).sum()), int((net < 0).sum())
    n = a_better + b_better
    from scipy.stats import binomtest  # loaded at start-up with the others (stats.py)

    p = float(binomtest(a_better, n, 0.5).pvalue) if n else None
    return PairwiseSignTest(a_better=a_better, b_better=b_better, even=len(net) - n, p_value=p)


def sign_test(choices: Sequence[Choice], question: str) -> PairwiseSignTest:
    table = _Table.of(choices)
    return _sign_test(table.statement, table.winner[question])


def _row(
    question: str,
    kind: str,
    arm_a: str,
    arm_b: str,
    statement: IntArray,
    winner: IntArray,
    shared: stats.SharedResamples,
) -> PairwiseRow:
    outcomes = np.column_stack([winner == 0, winner == 1, winner == 2]).astype(np.float64)
    sums, counts = _cluster_sums(statement, outcomes)
    a, b, tie = inference.rates(sums, counts, shared=shared)
    return PairwiseRow(
        question=question,
        kind=kind,
        arm_a=arm_a,
        arm_b=arm_b,
        choices=len(winner),
        statements=len(sums),
        a_wins=RateOut.of(a),
        b_wins=RateOut.of(b),
        ties=RateOut.of(tie),
        sign_test=_sign_test(statement, winner),
    )


def _position_bias(statement: IntArray, left: IntArray, shared: stats.SharedResamples) -> RateOut:
    """The share of non-tie choices for the left reply, clustered by statement."""
    decisive = left >= 0
    if not decisive.any():
        return RateOut(k=0, n=0, value=None, low=None, high=None, method="")
    sums, counts = _cluster_sums(statement[decisive], left[decisive].astype(np.float64)[:, None])
    return RateOut.of(inference.rates(sums, counts, shared=shared)[0])


def position_bias(
    choices: Sequence[Choice], question: str, shared: stats.SharedResamples
) -> RateOut:
    table = _Table.of(choices)
    return _position_bias(table.statement, table.left[question], shared)


def agreement(choices: Sequence[Choice], question: str) -> EstimateOut:
    """Krippendorff's alpha (nominal) on the winners (a / tie / b) of items with 2+ choices."""
    per_item: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    slot = {"a": 0, "tie": 1, "b": 2}
    for choice in choices:
        per_item[choice.item_id][slot[choice.winner(question)]] += 1
    rows = [p for p in per_item.values() if sum(p) >= 2]
    if not rows:
        return EstimateOut(value=None, low=None, high=None, n=0, note="no item has two raters")
    patterns, weights = np.unique(np.array(rows, dtype=np.float64), axis=0, return_counts=True)
    found = stats.krippendorff_alpha(patterns, weights, "nominal")
    return EstimateOut(
        value=found.value,
        low=found.low,
        high=found.high,
        n=len(rows),
        clusters=len(rows),
        method="Krippendorff's alpha, nominal (bootstrap over items)",
        note=None if found.value is not None else "not estimable (a single value throughout)",
    )


def _bt_matrix(wins: np.ndarray, iterations: int = 10_000, tol: float = 1e-12) -> np.ndarray:
    """Bradley-Terry strengths (each row sums to 1) from (..., arms, arms) matrices of wins,
    by Hunter's (2004) MM algorithm: p_i = W_i / sum_j n_ij / (p_i + p_j), all matrices at
    once. An arm that never wins gets 0."""
    m = wins.shape[-1]
    games = wins + np.swapaxes(wins, -1, -2)
    total = wins.sum(axis=-1)
    p = np.full(total.shape, 1.0 / m)
    off = ~np.eye(m, dtype=bool)
    for _ in range(iterations):
        pair = p[..., :, None] + p[..., None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            terms = np.where((games > 0) & off, games / pair, 0.0)
        denom = terms.sum(axis=-1)
        new = np.divide(total, denom, out=np.zeros_like(total), where=denom > 0)
        norm = new.sum(axis=-1, keepdims=True)
        new = np.divide(new, norm, out=np.full_like(new, 1.0 / m), where=norm > 0)
        if np.max(np.abs(new - p)) < tol:
            return new
        p = new
    return p


def bradley_terry(wins: dict[tuple[str, str], float], arms: Sequence[str]) -> dict[str, float]:
    """Bradley-Terry strengths (summing to 1); ``wins[(i, j)]`` is how often i beat j (a tie:
    half each way)."""
    index = {arm: n for n, arm in enumerate(arms)}
    matrix = np.zeros((len(arms), len(arms)))
    for (i, j), n in wins.items():
        matrix[index[i], index[j]] += n
    return dict(zip(arms, (float(v) for v in _bt_matrix(matrix)), strict=True))


def _statement_wins(
    choices: Sequence[Choice], question: str, arms: Sequence[str]
) -> tuple[list[int], np.ndarray]:
    """Each statement's (arms x arms) wins: [s, i, j] = how often i beat j (ties half)."""
    index = {arm: n for n, arm in enumerate(arms)}
    statements = sorted({c.statement for c in choices})
    row = {s: n for n, s in enumerate(statements)}
    out = np.zeros((len(statements), len(arms), len(arms)))
    for c in choices:
        a, b, s = index[c.arm_a], index[c.arm_b], row[c.statement]
        won = c.winner(question)
        if won == "a":
            out[s, a, b] += 1
        elif won == "b":
            out[s, b, a] += 1
        else:
            out[s, a, b] += 0.5
            out[s, b, a] += 0.5
    return statements, out


def strengths(
    choices: Sequence[Choice],
    question: str,
    arms: Sequence[str],
    *,
    resamples: int = 1000,
    seed: int = stats.SEED,
) -> list[PairwiseStrength]:
    """Bradley-Terry strengths of the arms (used with more than two), each with a 95 %
    percentile CI from resampled statements."""
    statements, per_statement = _statement_wins(choices, question, arms)
    point = _bt_matrix(per_statement.sum(axis=0))
    reps = np.vstack(
        [
            _bt_matrix(np.tensordot(chunk, per_statement, axes=1), iterations=2000, tol=1e-9)
            for chunk in stats.resample_weights(len(statements), resamples, seed)
        ]
    )
    low, high = np.percentile(reps, [2.5, 97.5], axis=0)
    return [
        PairwiseStrength(
            question=question,
            arm=arm,
            strength=float(point[n]),
            low=float(low[n]) if len(statements) > 1 else None,
            high=float(high[n]) if len(statements) > 1 else None,
        )
        for n, arm in enumerate(arms)
    ]


def summarise(choices: Sequence[Choice], arm_order: Sequence[str]) -> PairwiseOut:
    """Every pairwise figure of one run's choices (``arm_order``: the run's arms, by
    position)."""
    shared = stats.SharedResamples(stats.RESAMPLES, stats.SEED)
    names = pseudonyms(choices)
    table = _Table.of(choices)
    kinds = sorted(set(table.kind.tolist()))
    rows: list[PairwiseRow] = []
    biases: list[PositionBias] = []
    alphas: list[PairwiseAgreement] = []
    strength_rows: list[PairwiseStrength] = []
    present = [arm for arm in arm_order if ((table.arm_a == arm) | (table.arm_b == arm)).any()]
    by_kind = {kind: table.kind == kind for kind in kinds}
    by_rater = {rater: table.rater == rater for rater in names}
    for question in QUESTIONS:
        winner, left = table.winner[question], table.left[question]
        for arm_a, arm_b in combinations(arm_order, 2):
            pair = (table.arm_a == arm_a) & (table.arm_b == arm_b)
            if not pair.any():
                continue
            for kind in [ALL, *kinds]:
                mask = pair if kind == ALL else pair & by_kind[kind]
                if mask.any():
                    rows.append(
                        _row(
                            question,
                            kind,
                            arm_a,
                            arm_b,
                            table.statement[mask],
                            winner[mask],
                            shared,
                        )
                    )
        biases.append(
            PositionBias(
                question=question, rater=ALL, left=_position_bias(table.statement, left, shared)
            )
        )
        for rater, name in names.items():
            mine = by_rater[rater]
            found = _position_bias(table.statement[mine], left[mine], shared)
            biases.append(PositionBias(question=question, rater=name, left=found))
        alphas.append(PairwiseAgreement(question=question, alpha=agreement(choices, question)))
        if len(present) > 2:
            strength_rows += strengths(choices, question, present)
    return PairwiseOut(
        choices=len(choices),
        items=len({c.item_id for c in choices}),
        raters=len(names),
        rows=rows,
        position_bias=biases,
        agreement=alphas,
        strengths=strength_rows,
    )


def run_pairwise(session: Session, run_id: int) -> PairwiseOut | None:
    """The run's pairwise figures, or None when no pairwise choice was made on it."""
    choices = load(session, run_id)
    if not choices:
        return None
    arms = session.execute(
        select(_arm_t.c.label)
        .where(_arm_t.c.run_id == run_id)
        .order_by(_arm_t.c.position, _arm_t.c.id)
    ).scalars()
    return summarise(choices, list(arms))


# --- pairwise.csv -----------------------------------------------------------------------------

PAIRWISE_COLUMNS = [
    "choice_id",
    "round_id",
    "item_id",
    "run_id",
    "question_id",
    "variant_kind",
    "sample_index",
    "arm_a",
    "arm_b",
    "reply_a_id",
    "reply_b_id",
    "left_arm",
    "rater",
    "factual",
    "helpful",
    "factual_winner",
    "helpful_winner",
    "created_at",
]
_BATCH = 1000


def choice_records(session: Session, run_id: int) -> Iterator[dict[str, Any]]:
    """One record per choice of the run's pairwise rounds, in choice order (streamed)."""
    c, i, rr = choice_t, item_t, round_run_t
    reply_a, reply_b = _reply_t.alias("reply_a"), _reply_t.alias("reply_b")
    arms = dict(
        session.execute(select(_arm_t.c.id, _arm_t.c.label).where(_arm_t.c.run_id == run_id)).all()
    )
    raters = session.execute(
        select(c.c.rater_id)
        .select_from(c.join(i, i.c.id == c.c.item_id).join(rr, rr.c.round_id == i.c.round_id))
        .where(rr.c.run_id == run_id)
        .group_by(c.c.rater_id)
        .order_by(c.c.rater_id)
    ).scalars()
    names = {rater: f"P{n}" for n, rater in enumerate(raters, start=1)}
    query = (
        select(
            c,
            i.c.reply_a_id,
            i.c.reply_b_id,
            reply_a.c.arm_id.label("arm_a_id"),
            reply_b.c.arm_id.label("arm_b_id"),
            reply_a.c.sample_index,
            _variant_t.c.question_id,
            _variant_t.c.kind,
        )
        .select_from(
            c.join(i, i.c.id == c.c.item_id)
            .join(rr, rr.c.round_id == i.c.round_id)
            .join(reply_a, reply_a.c.id == i.c.reply_a_id)
            .join(reply_b, reply_b.c.id == i.c.reply_b_id)
            .join(_variant_t, _variant_t.c.id == reply_a.c.prompt_variant_id)
        )
        .where(rr.c.run_id == run_id)
        .order_by(c.c.id)
        .execution_options(yield_per=_BATCH)
    )
    for row in session.execute(query):
        arm_a, arm_b = arms.get(row.arm_a_id, ""), arms.get(row.arm_b_id, "")
        winners = {}
        for question in QUESTIONS:
            side = getattr(row, question)
            if side == "tie":
                winners[question] = "tie"
            else:
                winners[question] = arm_a if (side == "left") == bool(row.a_on_left) else arm_b
        yield {
            "choice_id": row.id,
            "round_id": row.round_id,
            "item_id": row.item_id,
            "run_id": run_id,
            "question_id": row.question_id,
            "variant_kind": row.kind,
            "sample_index": row.sample_index,
            "arm_a": arm_a,
            "arm_b": arm_b,
            "reply_a_id": row.reply_a_id,
            "reply_b_id": row.reply_b_id,
            "left_arm": arm_a if row.a_on_left else arm_b,
            "rater": names.get(row.rater_id, ""),
            "factual": row.factual,
            "helpful": row.helpful,
            "factual_winner": winners["factual"],
            "helpful_winner": winners["helpful"],
            "created_at": row.created_at,
        }


def stream_csv(session: Session, run_id: int) -> Iterator[str]:
    """pairwise.csv in chunks of ``_BATCH`` rows, cells neutralised as the other exports."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(PAIRWISE_COLUMNS)
    for n, record in enumerate(choice_records(session, run_id), start=1):
        writer.writerow([neutralise(record[column]) for column in PAIRWISE_COLUMNS])
        if n % _BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def stream_json(session: Session, run_id: int) -> Iterator[str]:
    """The same records as a JSON array, written record by record."""
    yield "["
    for n, record in enumerate(choice_records(session, run_id)):
        yield ("," if n else "") + json.dumps(record, default=str)
    yield "]"
