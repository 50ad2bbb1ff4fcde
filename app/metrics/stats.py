"""Statistics for results: pure functions over counts and arrays, no database.

Every function here is cross-checked in tests/metrics/test_stats.py against the reference
library it wraps (statsmodels, scipy, krippendorff) or a hand-computed textbook example.
Values that cannot be computed (no data, a degenerate table) are ``None``, never a made-up 0.
"""

from __future__ import annotations

import functools
import importlib
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

# scipy and statsmodels are imported where used: together they add ~100 MB to a process
# (a CSV export that needs none of them stays small). The web app loads them once at startup
# (``preload``) so that no results page pays the import (~1.5 s of CPU).

ALPHA = 0.05
RESAMPLES = 2000
SEED = 20240501
# Rows of the resampling weight matrix are made in chunks of at most this many cells.
_CHUNK_CELLS = 500_000

FloatArray = npt.NDArray[np.float64]
Level = Literal["nominal", "ordinal"]


@dataclass(frozen=True)
class Proportion:
    """k of n, with a Wilson 95 % confidence interval."""

    k: int
    n: int
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a 95 % confidence interval (bootstrap percentile)."""

    value: float | None
    low: float | None
    high: float | None
    n: int = 0
    clusters: int = 0


@dataclass(frozen=True)
class TestResult:
    """A significance test: its name, statistic, p-value and a plain-language sentence."""

    test: str
    statistic: float | None
    p_value: float | None
    n: int
    sentence: str


_LIBRARIES = (
    "scipy.stats",
    "statsmodels.stats.contingency_tables",
    "statsmodels.stats.inter_rater",
    "statsmodels.stats.proportion",
)


def preload() -> None:
    """Import the libraries the statistics below use."""
    for name in _LIBRARIES:
        importlib.import_module(name)


# --- Rates -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _normal_quantile(upper_tail: float) -> float:
    from scipy.stats import norm

    return float(norm.isf(upper_tail))


def wilson(k: int, n: int, alpha: float = ALPHA) -> Proportion:
    """Wilson score interval: statsmodels ``proportion_confint(method="wilson")``'s arithmetic,
    step by step (tests check the bounds are equal to the last bit), with its normal quantile
    computed once: statsmodels asks scipy for it on every call, ~1 ms each, and a results
    page has hundreds of rates."""
    if n <= 0:
        return Proportion(k=k, n=n, value=None, low=None, high=None)
    q = k / n
    crit = _normal_quantile(alpha / 2.0)
    crit2 = crit * crit
    denom = 1 + crit2 / n
    center = (q + crit2 / (2 * n)) / denom
    dist = crit * math.sqrt(q * (1.0 - q) / n + crit2 / (4.0 * n**2))
    dist /= denom
    low = min(max(center - dist, 0.0), 1.0)
    high = min(max(center + dist, 0.0), 1.0)
    return Proportion(k=k, n=n, value=q, low=low, high=high)


# --- Bootstrap clustered by statement --------------------------------------------------------


def resample_weights(
    n_clusters: int, resamples: int = RESAMPLES, seed: int = SEED
) -> Iterator[FloatArray]:
    """Chunks of a (resamples x n_clusters) matrix: how often each cluster is drawn.

    Each row is one bootstrap resample: n_clusters clusters drawn with replacement
    (a seeded ``numpy.random.Generator``, so the same data and seed give the same CI).
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, _CHUNK_CELLS // max(n_clusters, 1)))
    done = 0
    while done < resamples:
        rows = min(chunk, resamples - done)
        drawn = rng.integers(0, n_clusters, size=(rows, n_clusters))
        offsets = (np.arange(rows) * n_clusters)[:, None]
        counts = np.bincount((drawn + offsets).ravel(), minlength=rows * n_clusters)
        yield counts.reshape(rows, n_clusters).astype(np.float64)
        done += rows


class SharedResamples:
    """The resampling weights of one computation, made once per number of clusters and reused
    by each bootstrap over that many clusters (the same seed gives the same weights anyway).
    Matrices larger than ``max_cells`` are not kept, only made again."""

    def __init__(self, resamples: int, seed: int, max_cells: int = 4_000_000) -> None:
        self.resamples = resamples
        self.seed = seed
        self.max_cells = max_cells
        self._kept: dict[int, list[FloatArray]] = {}

    def weights(self, n_clusters: int) -> Iterator[FloatArray]:
        if n_clusters in self._kept:
            return iter(self._kept[n_clusters])
        made = resample_weights(n_clusters, self.resamples, self.seed)
        if n_clusters * self.resamples > self.max_cells:
            return made
        self._kept[n_clusters] = list(made)
        return iter(self._kept[n_clusters])


def cluster_bootstrap_means(
    sums: npt.ArrayLike,
    counts: npt.ArrayLike,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    alpha: float = ALPHA,
    shared: SharedResamples | None = None,
) -> list[Estimate]:
    """Means of several cells with a bootstrap CI that resamples clusters (statements).

    ``sums`` and ``counts`` are (clusters x cells): for each statement, the sum of the
    values and the number of items it has in each cell (0 when absent). A resample draws
    statements with replacement; a cell's replicate is its ratio sum / count over the drawn
    statements. All cells share the same resamples, so estimates are jointly consistent.
    The CI is the percentile interval of the replicates. ``shared`` (same resamples and seed)
    saves making the weights again.
    """
    s = np.asarray(sums, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    if s.ndim == 1:
        s, c = s[:, None], c[:, None]
    n_clusters, n_cells = s.shape
    totals = c.sum(axis=0)
    if n_clusters == 0:
        return [Estimate(None, None, None) for _ in range(n_cells)]
    replicates = np.empty((resamples, n_cells))
    row = 0
    if shared is not None and (shared.resamples, shared.seed) != (resamples, seed):
        raise ValueError("shared resamples made with other resamples or seed")
    chunks = (
        shared.weights(n_clusters)
        if shared is not None
        else resample_weights(n_clusters, resamples, seed)
    )
    for weights in chunks:
        with np.errstate(invalid="ignore", divide="ignore"):
            replicates[row : row + len(weights)] = (weights @ s) / (weights @ c)
        row += len(weights)
    out = []
    for j in range(n_cells):
        present = int((c[:, j] > 0).sum())
        if totals[j] == 0:
            out.append(Estimate(None, None, None, n=0, clusters=0))
            continue
        reps = replicates[:, j]
        reps = reps[~np.isnan(reps)]
        low, high = np.percentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        out.append(
            Estimate(
                value=float(s[:, j].sum() / totals[j]),
                low=float(low),
                high=float(high),
                n=int(totals[j]),
                clusters=present,
            )
        )
    return out


def cluster_bootstrap_mean(
    values: Sequence[float] | FloatArray,
    clusters: Sequence[object],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    alpha: float = ALPHA,
) -> Estimate:
    """Mean of ``values`` with a bootstrap CI resampling the ``clusters`` they belong to."""
    keys = {key: i for i, key in enumerate(dict.fromkeys(clusters))}
    index = np.array([keys[key] for key in clusters], dtype=np.int64)
    vals = np.asarray(values, dtype=np.float64)
    sums = np.bincount(index, weights=vals, minlength=len(keys))
    counts = np.bincount(index, minlength=len(keys)).astype(np.float64)
    return cluster_bootstrap_means(sums, counts, resamples=resamples, seed=seed, alpha=alpha)[0]


# --- Paired tests ----------------------------------------------------------------------------


def format_p(p: float) -> str:
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return f"p = {p:.3f}"
    return f"p = {p:.2f}"


def significance_sentence(test: str, p: float | None, alpha: float = ALPHA) -> str:
    """'no significant difference at the 5 % level (exact McNemar p = 0.50)', or the opposite."""
    level = f"{100 * alpha:g} %"
    if p is None:
        return f"not tested: no paired items ({test})"
    if p < alpha:
        return f"significant difference at the {level} level ({test} {format_p(p)})"
    return f"no significant difference at the {level} level ({test} {format_p(p)})"


def mcnemar_exact(b: int, c: int, alpha: float = ALPHA) -> TestResult:
    """Exact McNemar test on the discordant pairs b (baseline only) and c (other arm only).

    The concordant cells do not enter the exact test; statsmodels is given a table with
    zero concordant counts.
    """
    name = "exact McNemar"
    if b + c == 0:
        return TestResult(name, None, 1.0, 0, significance_sentence(name, 1.0, alpha))
    from statsmodels.stats.contingency_tables import mcnemar

    result = mcnemar([[0, b], [c, 0]], exact=True)
    p = float(result.pvalue)
    sentence = significance_sentence(name, p, alpha)
    return TestResult(name, float(result.statistic), p, b + c, sentence)


def wilcoxon_signed_rank(differences: npt.ArrayLike, alpha: float = ALPHA) -> TestResult:
    """Wilcoxon signed-rank test (scipy, zero differences dropped: ``zero_method="wilcox"``)."""
    name = "Wilcoxon signed-rank"
    d = np.asarray(differences, dtype=np.float64)
    nonzero = int(np.count_nonzero(d))
    if len(d) == 0:
        return TestResult(name, None, None, 0, significance_sentence(name, None, alpha))
    if nonzero == 0:
        return TestResult(name, None, 1.0, 0, significance_sentence(name, 1.0, alpha))
    from scipy.stats import wilcoxon

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = wilcoxon(d, zero_method="wilcox")
    p = float(result.pvalue)
    sentence = significance_sentence(name, p, alpha)
    return TestResult(name, float(result.statistic), p, nonzero, sentence)


# --- Rater agreement -------------------------------------------------------------------------


def cohens_kappa(table: npt.ArrayLike) -> float | None:
    """Cohen's kappa of a square rater-by-rater table of counts; None when undefined."""
    return cohens_kappas(np.asarray(table, dtype=np.float64)[None])[0]


def cohens_kappas(tables: npt.ArrayLike) -> list[float | None]:
    """Cohen's kappa of each square table of counts (tables x values x values); None where
    undefined. The arithmetic of statsmodels' ``cohens_kappa`` (simple kappa), step by step
    and for every table at once (tests check it equals statsmodels to the last bit): a
    results page has one table per pair of raters."""
    t = np.asarray(tables, dtype=np.float64)
    total = t.sum(axis=(1, 2))
    rows, cols = t.sum(axis=2), t.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = (cols * rows).sum(axis=1) / total**2
        freq_row, freq_col = rows / total[:, None], cols / total[:, None]
        agree_exp = (freq_col * freq_row).sum(axis=1)
        kappa = (np.trace(t, axis1=1, axis2=2) / total - agree_exp) / (1 - agree_exp)
    return [
        None if n == 0 or math.isclose(e, 1.0) else float(k)
        for n, e, k in zip(total.tolist(), expected.tolist(), kappa.tolist(), strict=True)
    ]


def fleiss_kappa(patterns: npt.ArrayLike, weights: npt.ArrayLike) -> float | None:
    """Fleiss' kappa (statsmodels) over units given as distinct count patterns x multiplicity.

    Every pattern must have the same number of ratings (statsmodels' assumption).
    """
    p = np.asarray(patterns, dtype=np.float64)
    w = np.asarray(weights, dtype=np.int64)
    if len(p) == 0 or w.sum() == 0:
        return None
    table = np.repeat(p, w, axis=0)
    if table.sum(axis=1)[0] < 2:
        return None
    p_cat = table.sum(axis=0) / table.sum()
    if math.isclose(float((p_cat * p_cat).sum()), 1.0):
        return None
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

    return float(sm_fleiss_kappa(table, method="fleiss"))


def _coincidence_terms(patterns: FloatArray) -> FloatArray:
    """Each pattern's contribution to Krippendorff's coincidence matrix, flattened (P x V*V)."""
    m = patterns.sum(axis=1)
    outer = patterns[:, :, None] * patterns[:, None, :]
    diag = patterns[:, :, None] * np.eye(patterns.shape[1])[None, :, :]
    terms = (outer - diag) / (m - 1)[:, None, None]
    return terms.reshape(len(patterns), -1)


def _alpha_from_coincidences(o: FloatArray, level: Level) -> FloatArray:
    """Krippendorff's alpha for a stack of coincidence matrices (B x V x V)."""
    n_v = o.sum(axis=1)
    n = n_v.sum(axis=1)
    v = o.shape[1]
    e = (n_v[:, :, None] * n_v[:, None, :] - n_v[:, :, None] * np.eye(v)[None]) / (n - 1)[
        :, None, None
    ]
    if level == "nominal":
        d = np.broadcast_to(1.0 - np.eye(v), o.shape)
    else:
        cum = np.cumsum(n_v, axis=1)
        lo = np.minimum.outer(np.arange(v), np.arange(v))
        hi = np.maximum.outer(np.arange(v), np.arange(v))
        between = cum[:, hi] - cum[:, lo] + n_v[:, lo]
        d = (between - (n_v[:, lo] + n_v[:, hi]) / 2) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = 1.0 - (o * d).sum(axis=(1, 2)) / (e * d).sum(axis=(1, 2))
    return result


def krippendorff_alpha(
    patterns: npt.ArrayLike,
    weights: npt.ArrayLike,
    level: Level,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    alpha: float = ALPHA,
) -> Estimate:
    """Krippendorff's alpha with a bootstrap CI that resamples units.

    ``patterns`` (P x V) are distinct per-unit value counts (how many raters gave each value,
    values in their order for ordinal data) and ``weights`` how many units share each pattern.
    Coincidence matrices are built per distinct pattern and weighted, for the estimate and
    for every resample (tests check the result equals the ``krippendorff`` package's to 1e-9).
    """
    p = np.asarray(patterns, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        return Estimate(None, None, None)
    pairable = p.sum(axis=1) >= 2
    p, w = p[pairable], w[pairable]
    units = int(w.sum())
    if units == 0 or (p.sum(axis=0) > 0).sum() < 2:
        return Estimate(None, None, None, n=units)
    terms = _coincidence_terms(p)
    # The point estimate from the distinct patterns (tests check it equals the krippendorff
    # package on the expanded units to 1e-9); expanding 10^5-10^6 units costs GBs there.
    value = float(
        _alpha_from_coincidences((w @ terms).reshape(1, p.shape[1], p.shape[1]), level)[0]
    )
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(units, w / units, size=resamples).astype(np.float64)
    o = (draws @ terms).reshape(resamples, p.shape[1], p.shape[1])
    reps = _alpha_from_coincidences(o, level)
    reps = reps[~np.isnan(reps)]
    if len(reps) == 0:
        return Estimate(value, None, None, n=units)
    low, high = np.percentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Estimate(value, float(low), float(high), n=units)


def alpha_from_patterns(patterns: npt.ArrayLike, weights: npt.ArrayLike, level: Level) -> float:
    """The vectorised alpha used for bootstrap replicates, for one weighting (tests use it)."""
    p = np.asarray(patterns, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    keep = p.sum(axis=1) >= 2
    o = (w[keep] @ _coincidence_terms(p[keep])).reshape(1, p.shape[1], p.shape[1])
    return float(_alpha_from_coincidences(o, level)[0])


# --- Plain language --------------------------------------------------------------------------


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f} %"


def difference_sentence(
    arm: str,
    baseline: str,
    what: str,
    diff: Estimate,
    test: TestResult,
    *,
    percent: bool = True,
) -> str:
    """'sdi vs baseline, sycophancy rate: -2.0 points (95 % CI -5.0 to +1.0); no ...'.

    Rates are differences in percentage points; helpfulness (``percent=False``) stays on
    its 1-5 scale.
    """
    if diff.value is None:
        return f"{arm} vs {baseline}, {what}: no paired replies."

    def fmt(x: float) -> str:
        return f"{100 * x:+.1f}" if percent else f"{x:+.2f}"

    unit = " points" if percent else ""
    ci = ""
    if diff.low is not None and diff.high is not None:
        ci = f" (95 % CI {fmt(diff.low)} to {fmt(diff.high)})"
    return f"{arm} vs {baseline}, {what}: {fmt(diff.value)}{unit}{ci}; {test.sentence}."
