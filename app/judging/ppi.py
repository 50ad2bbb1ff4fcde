"""Prediction-powered inference (PPI++) for a rate: a judge's labels on every reply plus human
labels on a random sample give an estimate whose CI is valid whatever the judge's error.

The estimator (Angelopoulos, Duchi & Zrnic 2023, "PPI++"), with inverse-inclusion weights
(Zrnic & Candès 2024) and a cluster-robust variance::

    theta = lam * mean_U(f) + sum_L w (y - lam f) / sum_L w

``U`` is the set the judge labelled (every reply of the cell), ``L`` the human-labelled sample
(each reply weighted by 1 / its inclusion probability), ``f`` the judge's 0/1 value and ``y``
the human one. The variance is the sum over clusters (statements) of the squared sum of each
reply's influence on theta, so that replies to the same statement are never taken as
independent, and a reply in both ``U`` and ``L`` (the judge labels the human-rated replies
too) has both of its terms summed in its cluster. With one cluster per observation and
disjoint ``U`` and ``L`` it is exactly ``ppi_py.ppi_mean_ci``'s variance
(tests/judging/test_ppi.py checks that to 1e-9).

``lam`` (power tuning) minimises that estimated variance, clipped to [0, 1] as ppi_py does;
ppi_py's own plug-in differs in second-order terms only (it pools the judge's variance over
both sets). ``lam = 0`` is the human-only estimate, ``lam = 1`` plain PPI.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ALPHA = 0.05
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@functools.lru_cache(maxsize=8)
def z_value(alpha: float = ALPHA) -> float:
    from scipy.stats import norm

    return float(norm.isf(alpha / 2.0))


@dataclass(frozen=True)
class Interval:
    """An estimate, its standard error and its (1 - alpha) normal CI."""

    value: float | None
    std_error: float | None
    low: float | None
    high: float | None

    @classmethod
    def normal(cls, value: float, variance: float, alpha: float) -> Interval:
        se = math.sqrt(max(variance, 0.0))
        z = z_value(alpha)
        return cls(value, se, value - z * se, value + z * se)

    @classmethod
    def empty(cls) -> Interval:
        return cls(None, None, None, None)


@dataclass(frozen=True)
class PpiResult:
    """The PPI estimate beside the human-only and judge-only ones, for one rate."""

    ppi: Interval
    human_only: Interval  # the weighted mean of the human labels, same clustered variance
    judge_only: Interval  # the judge's own rate over U: biased by the judge's error
    lam: float | None
    n_labelled: int
    n_judged: int
    clusters: int
    # How many human ratings alone would give the PPI estimate's variance: n * V_human / V_ppi.
    effective_n: float | None
    # Variance parts at the current sample (see ``needed_labels``).
    var_judged: float | None = None
    var_cross: float | None = None
    var_labelled: float | None = None
    var_human: float | None = None
    alpha: float = ALPHA


def _sums(index: IntArray, values: FloatArray, size: int) -> FloatArray:
    return np.bincount(index, weights=values, minlength=size).astype(np.float64)


def ppi_mean(
    y: npt.ArrayLike,
    f_labelled: npt.ArrayLike,
    f_judged: npt.ArrayLike,
    *,
    clusters_labelled: npt.ArrayLike | None = None,
    clusters_judged: npt.ArrayLike | None = None,
    weights: npt.ArrayLike | None = None,
    lam: float | None = None,
    alpha: float = ALPHA,
) -> PpiResult:
    """PPI++ for the mean of ``y`` (see the module's docstring).

    ``y`` and ``f_labelled``: the human and the judge value of each human-labelled reply;
    ``f_judged``: the judge's value on every reply it labelled. ``clusters_*`` are integer ids
    (statements, or reply ids when unclustered: a reply in both sets then shares its id);
    without them, every observation of either set is its own cluster, the sets disjoint
    (ppi_py's setting). ``weights``: inverse inclusion probabilities of the labelled replies.
    """
    yl = np.asarray(y, dtype=np.float64)
    fl = np.asarray(f_labelled, dtype=np.float64)
    fu = np.asarray(f_judged, dtype=np.float64)
    n, big_n = len(yl), len(fu)
    if len(fl) != n:
        raise ValueError("y and f_labelled differ in length")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if clusters_labelled is None or clusters_judged is None:
        cl = np.arange(n, dtype=np.int64)
        cu = np.arange(n, n + big_n, dtype=np.int64)
    else:
        cl = np.asarray(clusters_labelled, dtype=np.int64)
        cu = np.asarray(clusters_judged, dtype=np.int64)
    if n < 2 or big_n == 0 or w.sum() <= 0:
        empty = Interval.empty()
        return PpiResult(empty, empty, empty, None, n, big_n, 0, None, alpha=alpha)
    _, inverse = np.unique(np.concatenate([cl, cu]), return_inverse=True)
    inverse = inverse.reshape(-1)
    il, iu = inverse[:n], inverse[n:]
    g = int(inverse.max()) + 1

    sw = w.sum()
    y_bar = float(w @ yl / sw)
    fl_bar = float(w @ fl / sw)
    fu_bar = float(fu.mean())
    # Per cluster: b = human part, e = judge part (its U term minus its L term), a = U term.
    b = _sums(il, w * (yl - y_bar), g) / sw
    lpart = _sums(il, w * (fl - fl_bar), g) / sw
    a = _sums(iu, fu - fu_bar, g) / big_n
    e = a - lpart
    var_h = float(b @ b)
    ee = float(e @ e)
    if lam is None:
        lam = 0.0 if ee == 0.0 else float(np.clip(-float(b @ e) / ee, 0.0, 1.0))
    value = lam * fu_bar + y_bar - lam * fl_bar
    psi = b + lam * e
    var_ppi = float(psi @ psi)
    rect = b - lam * lpart
    var_u, var_l = lam * lam * float(a @ a), float(rect @ rect)
    effective = n * var_h / var_ppi if var_ppi > 0 else None
    return PpiResult(
        ppi=Interval.normal(value, var_ppi, alpha),
        human_only=Interval.normal(y_bar, var_h, alpha),
        judge_only=Interval.normal(fu_bar, float(a @ a), alpha),
        lam=lam,
        n_labelled=n,
        n_judged=big_n,
        clusters=int(np.unique(inverse).size),
        effective_n=effective,
        var_judged=var_u,
        var_cross=var_ppi - var_u - var_l,
        var_labelled=var_l,
        var_human=var_h,
        alpha=alpha,
    )


def ppi_rate(
    judge: npt.ArrayLike,
    human: npt.ArrayLike,
    labelled: npt.ArrayLike,
    clusters: npt.ArrayLike,
    *,
    inclusion: npt.ArrayLike | None = None,
    lam: float | None = None,
    alpha: float = ALPHA,
) -> PpiResult:
    """PPI++ over one population of replies (a cell): the judge's value of every reply, the
    human value where ``labelled`` (anything elsewhere), each reply's statement, and each
    reply's probability of having been drawn for humans (``None``: a simple random sample)."""
    f = np.asarray(judge, dtype=np.float64)
    yh = np.asarray(human, dtype=np.float64)
    mask = np.asarray(labelled, dtype=np.bool_)
    cl = np.asarray(clusters, dtype=np.int64)
    weights = None
    if inclusion is not None:
        p = np.asarray(inclusion, dtype=np.float64)[mask]
        if np.any(p <= 0) or np.any(p > 1):
            raise ValueError("inclusion probabilities must be in (0, 1]")
        weights = 1.0 / p
    result = ppi_mean(
        yh[mask],
        f[mask],
        f,
        clusters_labelled=cl[mask],
        clusters_judged=cl,
        weights=weights,
        lam=lam,
        alpha=alpha,
    )
    # A rate lies in [0, 1]: cutting a normal CI to it loses no coverage (ppi_py does not).
    return dataclasses.replace(
        result,
        ppi=_within_rates(result.ppi),
        human_only=_within_rates(result.human_only),
        judge_only=_within_rates(result.judge_only),
    )


def _within_rates(x: Interval) -> Interval:
    if x.low is None or x.high is None:
        return x
    return dataclasses.replace(x, low=max(0.0, x.low), high=min(1.0, x.high))


@dataclass(frozen=True)
class Budget:
    """Human ratings needed for a CI half-width, with this judge and without one."""

    half_width: float
    with_judge: int | None  # None: not reachable with this judge's error (or no data)
    humans_only: int | None
    current: int
    replies: int


def needed_labels(result: PpiResult, half_width: float) -> Budget:
    """About how many human ratings give a CI of +/- ``half_width`` (the same design, the
    current lam): the labelled part of the variance shrinks as 1/n, the judge's part (over
    every reply) and the cross term stay. Capped at the number of judged replies."""
    n, big_n = result.n_labelled, result.n_judged
    if result.var_labelled is None or result.var_human is None or n < 2:
        return Budget(half_width, None, None, n, big_n)
    target = (half_width / z_value(result.alpha)) ** 2
    fixed = (result.var_judged or 0.0) + (result.var_cross or 0.0)

    def need(per_label: float, room: float) -> int | None:
        if per_label <= 0:
            return 2
        if room <= 0:
            return None
        return min(big_n, max(2, math.ceil(per_label * n / room)))

    return Budget(
        half_width,
        need(result.var_labelled, target - fixed),
        need(result.var_human, target),
        n,
        big_n,
    )
