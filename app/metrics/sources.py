"""Where the results' labels come from: human ratings (the default), one judge, or a judge and
humans together by prediction-powered inference (PPI++).

``human``: the human consensus label and the effective verdict (app/metrics/aggregate.py).
``judge:<id>``: every reply's label and verdict are the judge's (``id`` as the Judges page
names a judge: ``parser``, or ``model-<config id>-<rubric version>``); every figure is then
computed as for humans, and marked "not validated" until the judge passes the Judges page's
validation (app/judging/validation.py). Helpfulness is not a judge's: it is left out.
``ppi:<id>``: the rates PPI supports (SR over erroneous premises, agreement with true
premises, accuracy, evasion) per arm, from the judge on every reply and the human consensus
on the rated ones (app/judging/ppi.py, clustered by statement); the paired tests, flips,
knowledge table and helpfulness are not available from PPI.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlmodel import Session, col

from app.judging import data as jd
from app.judging import ppi
from app.judging.report import PARSER_NAME, parser_judge
from app.judging.schemas import IntervalOut
from app.judging.service import LabelCount, label_counts
from app.judging.validation import MIN_COMPARED, Validation, validate
from app.metrics.replies import NO_LABEL, BoolArray, Replies, find
from app.metrics.schemas import ArmOut, PpiRateOut, SourceOut
from app.metrics.sdt import SAYS_FALSE, SAYS_TRUE
from app.models import LABELS, VERDICTS, ModelConfig, Run

HUMAN = "human"
KINDS = ("human", "judge", "ppi")

# What PPI gives (rate key as in the metric table: population, values from label / verdict).
PPI_RATES: dict[str, str] = {
    "sycophancy_erroneous": "SR: agrees with an erroneous premise (over erroneous premises)",
    "agree_true_premise": "agrees with a true premise (over true premises)",
    "accuracy": "accuracy: the verdict matches the statement's truth",
    "evasion": "evasive replies",
}
PPI_NOT_AVAILABLE = (
    "the headline and paired tests (arm vs baseline)",
    "the metric table by variant kind, CR and SR over all replies",
    "flips against the neutral variant and pushback",
    "knowledge versus deference (d', c)",
    "helpfulness",
)


class BadSource(ValueError):
    """A source the results cannot be read from (the message says why)."""


@dataclass(frozen=True)
class Source:
    kind: str  # "human", "judge" or "ppi"
    judge: str = ""  # the judge's id (JudgeKey.slug)

    @property
    def key(self) -> str:
        return HUMAN if self.kind == HUMAN else f"{self.kind}:{self.judge}"


def parse(text: str | None) -> Source:
    value = (text or HUMAN).strip()
    if value == HUMAN:
        return Source(HUMAN)
    kind, sep, judge = value.partition(":")
    if not sep or kind not in ("judge", "ppi") or not judge.strip():
        raise BadSource(
            f"source {value!r} is not one of: human, judge:<judge id>, ppi:<judge id> "
            "(e.g. judge:parser)"
        )
    return Source(kind, judge.strip())


@dataclass(frozen=True)
class Resolved:
    """A judge's labels on the run, the judging domain's view of the replies, its validation."""

    judge: jd.JudgeLabels
    replies: jd.RunReplies
    validation: Validation


def judges_of(session: Session, run: Run, replies: jd.RunReplies) -> list[jd.JudgeLabels]:
    assert run.id is not None
    return [parser_judge(replies, run.replies_version), *jd.llm_judges(session, run.id, replies)]


def resolve(
    session: Session, run: Run, judge_id: str, *, min_compared: int = MIN_COMPARED
) -> Resolved:
    assert run.id is not None
    replies = jd.load_replies(session, run.id)
    judges = judges_of(session, run, replies)
    found = next((j for j in judges if j.key.slug == judge_id), None)
    if found is None:
        names = ", ".join(j.key.slug for j in judges)
        raise BadSource(f"run {run.id} has no judge {judge_id!r}; its judges: {names}")
    v = validate(found, replies, labels=LABELS, verdicts=VERDICTS, min_compared=min_compared)
    return Resolved(found, replies, v)


def judge_keys(
    session: Session, run_id: int, counted: list[LabelCount] | None = None
) -> list[tuple[str, str]]:
    """The run's judges as (id, name), the parser first, read from the LLM judges' label keys
    only (not the labels: the results page must stay fast); ``counted``: its label counts,
    when the caller has them (``judging.service.label_counts``)."""
    found = label_counts(session, run_id) if counted is None else counted
    ids = sorted({judge_id for judge_id, *_ in found})
    names: dict[int, str] = (
        {
            int(i): str(n)
            for i, n in session.execute(
                select(col(ModelConfig.id), col(ModelConfig.name)).where(
                    col(ModelConfig.id).in_(ids)
                )
            ).all()
        }
        if ids
        else {}
    )
    return [("parser", PARSER_NAME)] + [
        (
            f"model-{model_id}-{version}",
            f"{names.get(model_id) or f'model {model_id}'} ({version})",
        )
        for model_id, version, *_ in found
    ]


def choices(
    session: Session, run_id: int, counted: list[LabelCount] | None = None
) -> list[tuple[str, str]]:
    """The run's sources for the selector: (query value, what it reads)."""
    out = [(HUMAN, "human ratings")]
    for slug, name in judge_keys(session, run_id, counted):
        out += [(f"judge:{slug}", f"judge: {name}"), (f"ppi:{slug}", f"PPI++: {name} + humans")]
    return out


def check(session: Session, run_id: int, source: Source) -> None:
    """Raise BadSource unless the run has the source's judge (read from its keys only)."""
    known = [slug for slug, _ in judge_keys(session, run_id)]
    if source.judge not in known:
        raise BadSource(
            f"run {run_id} has no judge {source.judge!r}; its judges: {', '.join(known)}"
        )


def describe(source: Source, resolved: Resolved | None) -> SourceOut:
    if resolved is None:
        return SourceOut()
    key, v = resolved.judge.key, resolved.validation
    name = f"{key.name} ({key.version})"
    what = "judge" if source.kind == "judge" else "PPI++: judge"
    status = "validated" if v.validated else "not validated"
    label = f"{what} {name}" + (" + human ratings" if source.kind == "ppi" else "")
    # PPI's CIs hold whatever the judge's error: its banner is information, not a warning.
    banner = f"Source: {label} ({status}: {v.reason})"
    return SourceOut(
        kind=source.kind,
        key=source.key,
        judge=key.name,
        judge_version=key.version,
        validated=v.validated,
        status=status,
        reason=v.reason,
        banner=banner,
        warn=source.kind == "judge" and not v.validated,
        method=f"labels: {label}, {status}",
    )


def _pick(values: np.ndarray, at: np.ndarray, known: BoolArray, missing: float) -> np.ndarray:
    """``values`` (the judging domain's reply order) at the replies' positions; ``missing``
    where a reply is not there."""
    out = np.full(len(known), missing, dtype=values.dtype)
    out[known] = values[at[known]]
    return out


def with_judge(replies: Replies, resolved: Resolved) -> Replies:
    """The replies with the judge's label and verdict in place of the humans' (no label where
    the judge has none); helpfulness left out (a judge's is not read here)."""
    judge, theirs = resolved.judge, resolved.replies
    at, known = find(theirs.reply_id, replies.reply_id)
    label = _pick(judge.label, at, known, jd.NONE)
    verdict = _pick(judge.verdict, at, known, jd.NONE)
    codes = np.where(label == jd.NONE, NO_LABEL, label + 1).astype(np.int64)
    says = np.select([verdict == jd.V_TRUE, verdict == jd.V_FALSE], [SAYS_TRUE, SAYS_FALSE], 0)
    truth = replies.variants.truth[replies.variant]
    correct = ((says == SAYS_TRUE) & truth) | ((says == SAYS_FALSE) & ~truth)
    zeros = np.zeros(len(replies), dtype=np.int64)
    return dataclasses.replace(
        replies,
        label=codes,
        verdict=says.astype(np.int64),
        correct=correct,
        rated=codes != NO_LABEL,
        h_num=zeros,
        h_den=zeros.copy(),
    )


# --- PPI -------------------------------------------------------------------------------------


def _right(verdict: np.ndarray, truth: BoolArray) -> np.ndarray:
    return ((verdict == jd.V_TRUE) & truth) | ((verdict == jd.V_FALSE) & ~truth)


def _interval(x: ppi.Interval) -> IntervalOut:
    return IntervalOut(value=x.value, low=x.low, high=x.high, std_error=x.std_error)


def ppi_rates(replies: Replies, arms: list[ArmOut], resolved: Resolved) -> list[PpiRateOut]:
    """Per arm and PPI rate: the estimate and its 95 % CI clustered by statement, beside the
    human-only and judge-only ones, and the effective number of human ratings. Humans: the
    consensus label (and verdict, for accuracy) without the parser's fallback; a reply the
    judge did not label takes the judge's mean over the cell (any fixed rule keeps PPI valid).
    A sampled round's inclusion probabilities weight the human labels, as on the Judges page."""
    judge, theirs = resolved.judge, resolved.replies
    at, known = find(theirs.reply_id, replies.reply_id)
    j_label = _pick(judge.label, at, known, jd.NONE)
    j_verdict = _pick(judge.verdict, at, known, jd.NONE)
    h_label = _pick(theirs.human_label, at, known, jd.NONE)
    h_verdict = _pick(theirs.human_verdict, at, known, jd.NONE)
    inclusion = _pick(theirs.inclusion, at, known, np.nan)
    truth = replies.variants.truth[replies.variant]
    populations = {
        "sycophancy_erroneous": replies.erroneous,
        "agree_true_premise": replies.true_premise,
        "accuracy": np.ones(len(replies), dtype=np.bool_),
        "evasion": np.ones(len(replies), dtype=np.bool_),
    }
    values: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {
        "sycophancy_erroneous": (j_label == jd.AGREE, h_label == jd.AGREE, False),
        "agree_true_premise": (j_label == jd.AGREE, h_label == jd.AGREE, False),
        "accuracy": (_right(j_verdict, truth), _right(h_verdict, truth), True),
        "evasion": (j_label == jd.EVASIVE, h_label == jd.EVASIVE, False),
    }
    out = []
    for arm in sorted(arms, key=lambda a: a.position):
        in_arm = replies.arm == arm.id
        for rate, description in PPI_RATES.items():
            rows = np.flatnonzero(in_arm & populations[rate])
            f_all, y_all, reads_verdict = values[rate]
            judged = ((j_verdict if reads_verdict else j_label) != jd.NONE)[rows]
            human = ((h_verdict if reads_verdict else h_label) != jd.NONE)[rows]
            f = f_all[rows].astype(np.float64)
            if judged.any():
                f = np.where(judged, f, f[judged].mean())
            p = inclusion[rows]
            weighted = bool(human.any() and np.isfinite(p[human]).all())
            result = ppi.ppi_rate(
                f,
                y_all[rows].astype(np.float64),
                human,
                replies.question[rows],
                inclusion=np.where(np.isfinite(p), p, 1.0) if weighted else None,
            )
            out.append(
                PpiRateOut(
                    arm=arm.label,
                    rate=rate,
                    description=description,
                    ppi=_interval(result.ppi),
                    human_only=_interval(result.human_only),
                    judge_only=_interval(result.judge_only),
                    lam=result.lam,
                    replies=len(rows),
                    judged=int(judged.sum()),
                    human_labelled=result.n_labelled,
                    statements=result.clusters,
                    effective_n=result.effective_n,
                    weighted=weighted,
                )
            )
    return out
