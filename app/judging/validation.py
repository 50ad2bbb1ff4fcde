"""A judge against humans on one run: confusion matrices, Cohen's kappa with its CI beside the
human-human Krippendorff alpha of the same replies, per-class precision and recall, and
whether the judge counts as validated.

**Validated** means: compared with the human consensus on at least ``min_compared`` replies,
and agreeing with it about as well as humans agree with each other: the upper bound of the
judge's kappa CI (label vs consensus) reaches the lower bound of the human-human alpha CI on
the same replies (those with two ratings or more). Kappa and alpha differ (kappa compares
one judge with a consensus, alpha every pair of ratings), so this is a screen, not a test
of equality; without replies rated twice there is no human range and no validation.

Kappa's CI is statsmodels' asymptotic one; alpha's a bootstrap over replies (seeded). The
nominal alpha here is the ``krippendorff`` package's (tests check to 1e-9).
"""

import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.judging.data import NONE, JudgeLabels, RunReplies
from app.judging.ppi import z_value

MIN_COMPARED = 50
RESAMPLES = 1000
SEED = 20240501
ALPHA = 0.05

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def preload() -> None:
    """Import the libraries used here (the web app has them loaded at start-up)."""
    import scipy.stats  # noqa: F401
    import statsmodels.stats.inter_rater  # noqa: F401


@dataclass(frozen=True)
class Bounded:
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class ClassScore:
    name: str
    precision: float | None  # of the judge's calls of this class, the share humans agree on
    recall: float | None  # of the humans' calls of this class, the share the judge made
    judge_count: int
    human_count: int


@dataclass(frozen=True)
class Confusion:
    """Judge (rows) against the human consensus (columns), over ``classes``."""

    classes: tuple[str, ...]
    table: list[list[int]]
    compared: int
    observed: float | None
    kappa: Bounded
    scores: list[ClassScore]


def confusion(judge: IntArray, human: IntArray, classes: tuple[str, ...]) -> Confusion:
    k = len(classes)
    both = (judge != NONE) & (human != NONE)
    table = np.bincount(judge[both] * k + human[both], minlength=k * k).reshape(k, k)
    n = int(table.sum())
    scores = []
    for i, name in enumerate(classes):
        called, truth = int(table[i].sum()), int(table[:, i].sum())
        scores.append(
            ClassScore(
                name,
                float(table[i, i] / called) if called else None,
                float(table[i, i] / truth) if truth else None,
                called,
                truth,
            )
        )
    return Confusion(
        classes,
        table.tolist(),
        n,
        float(np.trace(table) / n) if n else None,
        cohens_kappa(table),
        scores,
    )


def cohens_kappa(table: npt.ArrayLike, alpha: float = ALPHA) -> Bounded:
    """Cohen's kappa with statsmodels' asymptotic standard error (its ``kappa_low`` and
    ``kappa_upp`` at alpha 0.05); None where undefined (no data, or one
    class only on both sides)."""
    t = np.asarray(table, dtype=np.float64)
    n = t.sum()
    if n == 0:
        return Bounded(None, None, None)
    expected = float((t.sum(axis=0) * t.sum(axis=1)).sum() / n**2)
    if np.isclose(expected, 1.0):
        return Bounded(None, None, None)
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    with warnings.catch_warnings():  # its z statistic divides by 0 on a degenerate table
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sm_kappa(t)
    kappa, se = float(result.kappa), float(result.std_kappa)
    if not np.isfinite(se):
        return Bounded(kappa, None, None)
    z = z_value(alpha)
    return Bounded(kappa, kappa - z * se, kappa + z * se)


def _alpha_nominal(o: FloatArray) -> FloatArray:
    """Nominal Krippendorff alpha of each coincidence matrix (B x V x V)."""
    n_v = o.sum(axis=2)
    n = n_v.sum(axis=1)
    disagree = n - np.trace(o, axis1=1, axis2=2)
    expected = n * n - (n_v * n_v).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = 1.0 - (n - 1) * disagree / expected
    return result


def krippendorff_alpha(
    counts: npt.ArrayLike, *, resamples: int = RESAMPLES, seed: int = SEED, alpha: float = ALPHA
) -> Bounded:
    """Nominal alpha of units given as per-value rating counts (units x values), with a
    percentile bootstrap CI resampling units; units with fewer than two ratings left out."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c.sum(axis=1) >= 2] if c.ndim == 2 else np.zeros((0, 3))
    if len(c) == 0 or (c.sum(axis=0) > 0).sum() < 2:
        return Bounded(None, None, None)
    patterns, weights = np.unique(c, axis=0, return_counts=True)
    m = patterns.sum(axis=1)
    v = patterns.shape[1]
    terms = (
        patterns[:, :, None] * patterns[:, None, :] - patterns[:, :, None] * np.eye(v)[None]
    ) / (m - 1)[:, None, None]
    terms = terms.reshape(len(patterns), -1)
    w = weights.astype(np.float64)
    value = float(_alpha_nominal((w @ terms).reshape(1, v, v))[0])
    rng = np.random.default_rng(seed)
    units = int(w.sum())
    draws = rng.multinomial(units, w / units, size=resamples).astype(np.float64)
    reps = _alpha_nominal((draws @ terms).reshape(resamples, v, v))
    reps = reps[np.isfinite(reps)]
    if len(reps) == 0:
        return Bounded(value, None, None)
    low, high = np.percentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Bounded(value, float(low), float(high))


@dataclass(frozen=True)
class Validation:
    label: Confusion
    verdict: Confusion
    human_alpha: Bounded  # human-human alpha on the compared replies rated twice or more
    multi_rated: int
    min_compared: int
    validated: bool
    reason: str  # why (not), in a sentence


def validate(
    judge: JudgeLabels,
    replies: RunReplies,
    *,
    labels: tuple[str, ...],
    verdicts: tuple[str, ...],
    min_compared: int = MIN_COMPARED,
) -> Validation:
    label = confusion(judge.label, replies.human_label, labels)
    verdict = confusion(judge.verdict, replies.human_verdict, verdicts)
    # Alpha over every reply the judge labelled that humans rated twice or more, ties
    # included: over the replies with a consensus only, two raters would always agree.
    counts = replies.label_counts[judge.label != NONE]
    multi = int((counts.sum(axis=1) >= 2).sum())
    human = krippendorff_alpha(counts)
    validated, reason = _rule(label, human, multi, min_compared)
    return Validation(label, verdict, human, multi, min_compared, validated, reason)


def _rule(label: Confusion, human: Bounded, multi: int, min_compared: int) -> tuple[bool, str]:
    if label.compared < min_compared:
        return False, (
            f"compared on {label.compared} human-labelled replies; at least {min_compared} needed"
        )
    if human.low is None or multi == 0:
        return False, "no replies rated by two humans or more: no human-human range to compare"
    kappa_high = label.kappa.high
    if kappa_high is None or not np.isfinite(kappa_high):
        return False, "the judge's kappa is undefined on these replies"
    if kappa_high >= human.low:
        return True, (
            f"kappa CI upper bound {kappa_high:.2f} reaches the human-human alpha CI lower "
            f"bound {human.low:.2f} ({label.compared} replies compared, {multi} rated twice+)"
        )
    return False, (
        f"kappa CI upper bound {kappa_high:.2f} is below the human-human alpha CI lower "
        f"bound {human.low:.2f}: the judge agrees with humans less than humans do"
    )
