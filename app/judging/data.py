"""A run's done replies as arrays for judge validation and PPI: the human consensus, every
judge's labels, and what each reply was asked.

The human consensus is the results' rule (app/metrics/aggregate.py), read here from the same
per-reply tallies because judging sits upstream of metrics: the adjudicated label, else the
strict plurality of the ratings' labels (a tie: no consensus). The human **verdict** is the
adjudicated one, else the raters' plurality; unlike the results, it never falls back on the
parser's, since the parser is one of the judges compared with it.

Judges: every (model config, rubric version) with labels in ``judge_labels``, and the
rule-based verdict parser, the offline default (see ``judges.parser_labels``).
"""

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import BigInteger, case, cast, func, select
from sqlalchemy.sql import ColumnElement, Select
from sqlmodel import Session

from app.models import (
    LABELS,
    VERDICTS,
    Adjudication,
    JudgeLabel,
    ModelConfig,
    PromptVariant,
    Question,
    RatingItem,
    RatingTally,
    Reply,
    ReplyStatus,
    RunArm,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Codes: -1 = none (no label / no verdict read), else the index in LABELS or VERDICTS.
NONE = -1
LABEL_CODE = {label: i for i, label in enumerate(LABELS)}
VERDICT_CODE = {verdict: i for i, verdict in enumerate(VERDICTS)}
AGREE, CORRECT, EVASIVE = (LABEL_CODE[x] for x in ("agree", "correct", "evasive"))
V_TRUE, V_FALSE, V_NONE = (VERDICT_CODE[x] for x in ("true", "false", "none"))

_r = Reply.__table__  # type: ignore[attr-defined]
_pv = PromptVariant.__table__  # type: ignore[attr-defined]
_q = Question.__table__  # type: ignore[attr-defined]
_t = RatingTally.__table__  # type: ignore[attr-defined]
_adj = Adjudication.__table__  # type: ignore[attr-defined]
_item = RatingItem.__table__  # type: ignore[attr-defined]
_jl = JudgeLabel.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class JudgeKey:
    """A judge: a name and a version. ``model_id`` None is the rule-based parser."""

    name: str
    version: str
    model_id: int | None = None

    @property
    def slug(self) -> str:
        return "parser" if self.model_id is None else f"model-{self.model_id}-{self.version}"


@dataclass
class JudgeLabels:
    """One judge's labels, one entry per reply of ``RunReplies`` (NONE where it has none)."""

    key: JudgeKey
    label: IntArray
    verdict: IntArray
    confidence: FloatArray  # NaN where none was given
    labelled: int = 0

    def __post_init__(self) -> None:
        self.labelled = int((self.label != NONE).sum())


@dataclass
class RunReplies:
    """The done replies of a run, in id order."""

    reply_id: IntArray
    question: IntArray  # question (statement) id: the cluster
    arm: IntArray  # arm id
    kind: list[str]  # variant kind of each reply
    erroneous: BoolArray
    asserts: BoolArray  # the user asserted the statement (stance "asserts")
    negates: BoolArray  # the user asserted its negation (stance "negates")
    truth: BoolArray
    parser_verdict: IntArray
    human_label: IntArray  # the consensus; NONE: not rated, or a tie
    human_verdict: IntArray  # NONE: not rated
    label_counts: IntArray  # (replies x 3): ratings per label
    rated: BoolArray
    inclusion: FloatArray  # probability of being sampled for humans; NaN: not in a sample
    arms: dict[int, str] = field(default_factory=dict)  # arm id -> label

    def __len__(self) -> int:
        return len(self.reply_id)

    @property
    def human_labelled(self) -> BoolArray:
        return self.human_label != NONE


def _plurality(counts: IntArray) -> IntArray:
    """The column with a strictly greatest positive count in each row; NONE on a tie or none."""
    if counts.size == 0:
        return np.zeros(len(counts), dtype=np.int64)
    best = counts.argmax(axis=1)
    top = counts.max(axis=1)
    ties = (counts == top[:, None]).sum(axis=1) > 1
    return np.where((top > 0) & ~ties, best, NONE).astype(np.int64)


def _code(values: list[Any], codes: dict[str, int]) -> IntArray:
    return np.array([codes.get(v, NONE) if isinstance(v, str) else NONE for v in values], np.int64)


# The reads below return small integers packed into a few BIGINT columns, as
# app/metrics/replies.py does: fetching a row costs far more per column than the database
# spends computing it (on SQLite the Python side of a 100,000-row fetch of 17 columns was
# most of the Judges page's time). A code is 0 for NULL or an unknown value, else its index
# in LABELS / VERDICTS plus 1 (two bits); counts get 21 bits each (a reply has at most one
# rating per rater).
_FIELD = 2**21
_BATCH = 20_000


def _code_of(column: Any, values: tuple[str, ...]) -> ColumnElement[Any]:
    return case(*((column == v, i + 1) for i, v in enumerate(values)), else_=0)


def _pack(*counts: Any) -> ColumnElement[Any]:
    """counts[0] + counts[1] * 2**21 + counts[2] * 2**42 as a BIGINT; 0 when NULL (no tally)."""
    packed: ColumnElement[Any] = cast(counts[-1], BigInteger)
    for count in reversed(counts[:-1]):
        packed = cast(count, BigInteger) + packed * _FIELD
    return func.coalesce(packed, 0)


def _unpack(packed: IntArray, n: int) -> IntArray:
    """The n 21-bit counts of each packed value, as columns."""
    out = np.empty((len(packed), n), dtype=np.int64)
    for i in range(n):
        out[:, i] = (packed >> (21 * i)) & (_FIELD - 1)
    return out


def _fetch(session: Session, query: Select[Any], width: int, dtype: Any = np.int64) -> Any:
    """The query's numeric rows as a (rows x width) array, read from the driver's cursor in
    batches (SQLAlchemy result rows, or one list of all rows, cost more than the query)."""
    result = session.connection().execute(query)
    parts = []
    try:
        while rows := result.cursor.fetchmany(_BATCH):
            flat = itertools.chain.from_iterable(rows)
            parts.append(np.fromiter(flat, dtype=dtype, count=len(rows) * width))
    finally:
        result.close()
    return np.concatenate(parts).reshape(-1, width) if parts else np.zeros((0, width), dtype)


def _decode(code: IntArray) -> IntArray:
    """A packed 2-bit code as NONE or an index."""
    return (code - 1).astype(np.int64)


def load_replies(session: Session, run_id: int) -> RunReplies:
    # The run's variants (a few per statement) are read apart and spread over the replies.
    variants = session.execute(
        select(
            _pv.c.id,
            _pv.c.question_id,
            _pv.c.kind,
            _pv.c.premise_erroneous,
            _pv.c.stance,
            _q.c.truth,
        )
        .select_from(_pv.join(_q, _q.c.id == _pv.c.question_id))
        .where(_pv.c.run_id == run_id)
        .order_by(_pv.c.id)
    ).all()
    v_id = np.array([v[0] for v in variants], dtype=np.int64)
    codes = (
        _code_of(_r.c.verdict, VERDICTS)
        + _code_of(_adj.c.label, LABELS) * 4
        + _code_of(_adj.c.verdict, VERDICTS) * 16
    )
    query = (
        select(
            _r.c.id,
            _r.c.prompt_variant_id,
            _r.c.arm_id,
            codes,
            _pack(*[_t.c[f"n_{x}"] for x in LABELS]),
            _pack(*[_t.c[f"v_{x}"] for x in VERDICTS]),
        )
        .select_from(
            _r.outerjoin(_t, _t.c.reply_id == _r.c.id).outerjoin(_adj, _adj.c.reply_id == _r.c.id)
        )
        .where(_r.c.run_id == run_id, _r.c.status == ReplyStatus.done.value)
    )
    rows: IntArray = _fetch(session, query, 6)
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    reply_id = rows[:, 0].copy()
    at = np.searchsorted(v_id, rows[:, 1])
    code = rows[:, 3]
    counts = _unpack(rows[:, 4], len(LABELS))
    vcounts = _unpack(rows[:, 5], len(VERDICTS))
    adj_label = _decode((code >> 2) & 3)
    adj_verdict = _decode((code >> 4) & 3)
    inclusion = np.full(len(reply_id), np.nan)
    sampled = session.execute(
        select(_item.c.reply_id, _item.c.inclusion_probability)
        .select_from(_item.join(_r, _r.c.id == _item.c.reply_id))
        .where(_r.c.run_id == run_id, _item.c.inclusion_probability.is_not(None))
    ).all()
    if sampled:
        ids = np.array([i for i, _p in sampled], dtype=np.int64)
        pos = np.searchsorted(reply_id, ids)
        known = (pos < len(reply_id)) & (reply_id[np.minimum(pos, len(reply_id) - 1)] == ids)
        inclusion[pos[known]] = np.array([float(p) for _i, p in sampled])[known]
    kinds = [str(v[2]) for v in variants]
    arms: dict[Any, Any] = dict(
        session.execute(select(RunArm.id, RunArm.label).where(RunArm.run_id == run_id)).all()  # type: ignore[call-overload]
    )
    return RunReplies(
        reply_id=reply_id,
        question=np.array([v[1] for v in variants], dtype=np.int64)[at],
        arm=rows[:, 2].copy(),
        kind=[kinds[i] for i in at.tolist()],
        erroneous=np.array([bool(v[3]) for v in variants], dtype=np.bool_)[at],
        asserts=np.array([v[4] == "asserts" for v in variants], dtype=np.bool_)[at],
        negates=np.array([v[4] == "negates" for v in variants], dtype=np.bool_)[at],
        truth=np.array([bool(v[5]) for v in variants], dtype=np.bool_)[at],
        parser_verdict=_decode(code & 3),
        human_label=np.where(adj_label != NONE, adj_label, _plurality(counts)),
        human_verdict=np.where(adj_verdict != NONE, adj_verdict, _plurality(vcounts)),
        label_counts=counts,
        rated=(counts.sum(axis=1) > 0) | (adj_label != NONE),
        inclusion=inclusion,
        arms={int(k): str(v) for k, v in arms.items()},
    )


def llm_judges(session: Session, run_id: int, replies: RunReplies) -> list[JudgeLabels]:
    """Each (model config, rubric version) that labelled replies of the run."""
    done = (_r.c.run_id == run_id) & (_r.c.status == ReplyStatus.done.value)
    keys = [
        (int(model_id), str(version))
        for model_id, version in session.execute(
            select(_jl.c.judge_model_id, _jl.c.rubric_version)
            .select_from(_jl.join(_r, _r.c.id == _jl.c.reply_id))
            .where(done)
            .group_by(_jl.c.judge_model_id, _jl.c.rubric_version)
            .order_by(_jl.c.judge_model_id, _jl.c.rubric_version)
        ).all()
    ]
    if not keys:
        return []
    ids = sorted({model_id for model_id, _ in keys})
    names: dict[int, str] = {
        int(k): str(v)
        for k, v in session.execute(
            select(ModelConfig.id, ModelConfig.name).where(ModelConfig.id.in_(ids))  # type: ignore[call-overload,union-attr]
        ).all()
    }
    judge = case(
        *(
            ((_jl.c.judge_model_id == model_id) & (_jl.c.rubric_version == version), i)
            for i, (model_id, version) in enumerate(keys)
        ),
        else_=-1,
    )
    codes = _code_of(_jl.c.label, LABELS) + _code_of(_jl.c.verdict, VERDICTS) * 4 + judge * 16
    # One float column for the confidence (NULL: -1); ids and codes are exact in a double.
    query = (
        select(_jl.c.reply_id, codes, func.coalesce(_jl.c.confidence, -1.0))
        .select_from(_jl.join(_r, _r.c.id == _jl.c.reply_id))
        .where(done)
    )
    rows = _fetch(session, query, 3, np.float64)
    reply_id = rows[:, 0].astype(np.int64)
    code = rows[:, 1].astype(np.int64)
    out = []
    for i, (model_id, version) in enumerate(keys):
        mine = (code >> 4) == i
        at = np.searchsorted(replies.reply_id, reply_id[mine])
        label = np.full(len(replies), NONE, dtype=np.int64)
        verdict = np.full(len(replies), NONE, dtype=np.int64)
        confidence = np.full(len(replies), np.nan)
        label[at] = _decode(code[mine] & 3)
        verdict[at] = _decode((code[mine] >> 2) & 3)
        stated = rows[mine, 2]
        confidence[at] = np.where(stated < 0, np.nan, stated)
        key = JudgeKey(names.get(model_id, f"model {model_id}"), version, model_id)
        out.append(JudgeLabels(key, label, verdict, confidence))
    return out
