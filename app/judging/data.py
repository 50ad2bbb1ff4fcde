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

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
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


def _counts(columns: list[Any]) -> IntArray:
    """Tally columns (NULL: no ratings) as a (replies x 3) integer array."""
    values = np.array([[0 if x is None else int(x) for x in col] for col in columns], np.int64)
    return values.T.reshape(-1, len(columns)).astype(np.int64)


def load_replies(session: Session, run_id: int) -> RunReplies:
    label_cols = [_t.c[f"n_{x}"] for x in LABELS]
    verdict_cols = [_t.c[f"v_{x}"] for x in VERDICTS]
    query = (
        select(
            _r.c.id,
            _pv.c.question_id,
            _r.c.arm_id,
            _pv.c.kind,
            _pv.c.premise_erroneous,
            _pv.c.stance,
            _q.c.truth,
            _r.c.verdict,
            _adj.c.label,
            _adj.c.verdict,
            _item.c.inclusion_probability,
            *label_cols,
            *verdict_cols,
        )
        .select_from(
            _r.join(_pv, _pv.c.id == _r.c.prompt_variant_id)
            .join(_q, _q.c.id == _pv.c.question_id)
            .outerjoin(_t, _t.c.reply_id == _r.c.id)
            .outerjoin(_adj, _adj.c.reply_id == _r.c.id)
            .outerjoin(_item, _item.c.reply_id == _r.c.id)
        )
        .where(_r.c.run_id == run_id, _r.c.status == ReplyStatus.done.value)
        .order_by(_r.c.id)
    )
    result = session.connection().execute(query)
    try:
        rows = result.cursor.fetchall()
    finally:
        result.close()
    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in range(17)]
    counts: IntArray = _counts(columns[11:14])
    vcounts: IntArray = _counts(columns[14:17])
    adj_label = _code(list(columns[8]), LABEL_CODE)
    adj_verdict = _code(list(columns[9]), VERDICT_CODE)
    arms: dict[Any, Any] = dict(
        session.execute(select(RunArm.id, RunArm.label).where(RunArm.run_id == run_id)).all()  # type: ignore[call-overload]
    )
    return RunReplies(
        reply_id=np.array(columns[0], dtype=np.int64),
        question=np.array(columns[1], dtype=np.int64),
        arm=np.array(columns[2], dtype=np.int64),
        kind=[str(k) for k in columns[3]],
        erroneous=np.array(columns[4], dtype=np.bool_),
        asserts=np.array([s == "asserts" for s in columns[5]], dtype=np.bool_),
        truth=np.array(columns[6], dtype=np.bool_),
        parser_verdict=_code(list(columns[7]), VERDICT_CODE),
        human_label=np.where(adj_label != NONE, adj_label, _plurality(counts)),
        human_verdict=np.where(adj_verdict != NONE, adj_verdict, _plurality(vcounts)),
        label_counts=counts,
        rated=(counts.sum(axis=1) > 0) | (adj_label != NONE),
        inclusion=np.array(
            [np.nan if p is None else float(p) for p in columns[10]], dtype=np.float64
        ),
        arms={int(k): str(v) for k, v in arms.items()},
    )


def llm_judges(session: Session, run_id: int, replies: RunReplies) -> list[JudgeLabels]:
    """Each (model config, rubric version) that labelled replies of the run."""
    rows = session.execute(
        select(
            _jl.c.judge_model_id,
            _jl.c.rubric_version,
            _jl.c.reply_id,
            _jl.c.label,
            _jl.c.verdict,
            _jl.c.confidence,
        )
        .select_from(_jl.join(_r, _r.c.id == _jl.c.reply_id))
        .where(_r.c.run_id == run_id, _r.c.status == ReplyStatus.done.value)
    ).all()
    by_judge: dict[tuple[int, str], list[tuple[int, object, object, object]]] = {}
    for model_id, version, reply_id, label, verdict, confidence in rows:
        by_judge.setdefault((int(model_id), str(version)), []).append(
            (int(reply_id), label, verdict, confidence)
        )
    ids = sorted({model_id for model_id, _ in by_judge})
    names: dict[int, str] = (
        {
            int(k): str(v)
            for k, v in session.execute(
                select(ModelConfig.id, ModelConfig.name).where(ModelConfig.id.in_(ids))  # type: ignore[call-overload,union-attr]
            ).all()
        }
        if ids
        else {}
    )
    out = []
    for (model_id, version), items in sorted(by_judge.items()):
        at = np.searchsorted(replies.reply_id, np.array([i[0] for i in items], dtype=np.int64))
        label = np.full(len(replies), NONE, dtype=np.int64)
        verdict = np.full(len(replies), NONE, dtype=np.int64)
        confidence = np.full(len(replies), np.nan)
        label[at] = _code([i[1] for i in items], LABEL_CODE)
        verdict[at] = _code([i[2] for i in items], VERDICT_CODE)
        confidence[at] = [np.nan if i[3] is None else float(i[3]) for i in items]  # type: ignore[arg-type]
        key = JudgeKey(names.get(model_id, f"model {model_id}"), version, model_id)
        out.append(JudgeLabels(key, label, verdict, confidence))
    return out
