"""Every statistic against its reference library or a hand-computed textbook value (1e-9)."""

import math
from fractions import Fraction

import krippendorff
import numpy as np
import pytest
from scipy.stats import norm, wilcoxon
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from app.metrics import stats

TOL = 1e-9


def test_wilson_5_of_100_matches_the_textbook_formula() -> None:
    k, n = 5, 100
    z = norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    result = stats.wilson(k, n)
    assert result.value == pytest.approx(0.05, abs=TOL)
    assert result.low == pytest.approx(centre - half, abs=TOL)
    assert result.high == pytest.approx(centre + half, abs=TOL)
    assert result.low == pytest.approx(0.02154368, abs=1e-7)
    assert result.high == pytest.approx(0.11175047, abs=1e-7)


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_wilson_equals_statsmodels_to_the_last_bit(alpha: float) -> None:
    cases = [(k, n) for n in range(1, 120) for k in range(n + 1)]
    cases += [(k, 336_000) for k in (0, 1, 7, 1234, 168_000, 335_999, 336_000)]
    cases += [(k, 10**7 + 3) for k in (0, 5, 4_999_999, 10**7 + 3)]
    for k, n in cases:
        low, high = proportion_confint(k, n, alpha=alpha, method="wilson")
        result = stats.wilson(k, n, alpha)
        assert (result.low, result.high) == (float(low), float(high)), (k, n)
        assert result.value == k / n


def test_wilson_with_no_replies_has_no_value() -> None:
    assert stats.wilson(0, 0).value is None


def test_mcnemar_matches_the_exact_binomial_on_a_known_table() -> None:
    # Wikipedia's McNemar example: a=59, b=6, c=16, d=80.
    b, c = 6, 16
    hand = 2 * sum(math.comb(22, i) for i in range(b + 1)) / 2**22
    result = stats.mcnemar_exact(b, c)
    assert result.p_value == pytest.approx(hand, abs=TOL)
    assert result.p_value == pytest.approx(mcnemar([[59, 6], [16, 80]], exact=True).pvalue, abs=TOL)
    assert result.sentence.startswith("no significant difference at the 5 % level")


def test_papers_5_vs_7_percent_on_100_paired_items_is_not_significant() -> None:
    # Baseline sycophantic on 7 of 100 prompts, SDI on 5: at best 2 discordant pairs.
    result = stats.mcnemar_exact(b=2, c=0)
    assert result.p_value == pytest.approx(0.5, abs=TOL)
    assert result.sentence == (
        "no significant difference at the 5 % level (exact McNemar p = 0.50)"
    )
    spread = stats.mcnemar_exact(b=4, c=2)
    assert spread.p_value == pytest.approx(0.6875, abs=TOL)
    assert "no significant difference" in spread.sentence


def test_mcnemar_significant_case_and_empty_case() -> None:
    result = stats.mcnemar_exact(b=12, c=1)
    assert result.p_value == pytest.approx(2 * 14 / 2**13, abs=TOL)
    assert result.sentence.startswith("significant difference at the 5 % level")
    assert stats.mcnemar_exact(0, 0).p_value == 1.0


def test_wilcoxon_matches_the_exact_null_distribution() -> None:
    d = np.array([1, 2, 3, -4, 5, 6, 7, 8], dtype=float)
    # Subsets of ranks 1..8 with sum <= 4: {}, {1}, {2}, {3}, {4}, {1,2}, {1,3}.
    result = stats.wilcoxon_signed_rank(d)
    assert result.statistic == 4
    assert result.p_value == pytest.approx(2 * 7 / 256, abs=TOL)


def test_wilcoxon_drops_zero_differences_like_scipy() -> None:
    rng = np.random.default_rng(3)
    d = rng.integers(-2, 3, size=200).astype(float)
    result = stats.wilcoxon_signed_rank(d)
    reference = wilcoxon(d, zero_method="wilcox")
    assert result.p_value == pytest.approx(float(reference.pvalue), abs=TOL)
    assert result.n == int(np.count_nonzero(d))
    assert stats.wilcoxon_signed_rank(np.zeros(5)).p_value == 1.0


def test_cluster_bootstrap_equals_a_naive_resampling_of_statements() -> None:
    rng = np.random.default_rng(7)
    clusters = np.repeat(np.arange(12), rng.integers(1, 5, size=12))
    values = rng.integers(1, 6, size=len(clusters)).astype(float)
    result = stats.cluster_bootstrap_mean(values, list(clusters), resamples=300, seed=11)
    naive = []
    for weights in stats.resample_weights(12, 300, 11):
        for row in weights:
            drawn = np.concatenate(
                [np.tile(values[clusters == c], int(times)) for c, times in enumerate(row)]
            )
            naive.append(drawn.mean())
    low, high = np.percentile(naive, [2.5, 97.5])
    assert result.value == pytest.approx(values.mean(), abs=TOL)
    assert result.low == pytest.approx(low, abs=TOL)
    assert result.high == pytest.approx(high, abs=TOL)
    assert result.clusters == 12


def test_resampling_draws_each_resample_uniformly_with_replacement() -> None:
    weights = np.vstack(list(stats.resample_weights(5, 2000, 1)))
    assert weights.shape == (2000, 5)
    assert (weights.sum(axis=1) == 5).all()
    assert weights.mean() == pytest.approx(1.0, abs=0.05)


def test_bootstrap_resamples_statements_not_replies() -> None:
    # One statement with varied replies: resampling statements cannot move the mean.
    result = stats.cluster_bootstrap_mean([1.0, 5.0, 3.0, 2.0], ["s1"] * 4)
    assert result.low == result.high == pytest.approx(2.75, abs=TOL)


def test_bootstrap_is_seeded() -> None:
    values = [1.0, 2.0, 5.0, 4.0, 3.0, 3.0]
    clusters = ["a", "a", "b", "c", "c", "d"]
    assert stats.cluster_bootstrap_mean(values, clusters, seed=5) == (
        stats.cluster_bootstrap_mean(values, clusters, seed=5)
    )


@pytest.mark.parametrize("max_cells", [10**9, 10])
def test_shared_resamples_give_the_same_bootstrap(max_cells: int) -> None:
    rng = np.random.default_rng(3)
    shared = stats.SharedResamples(400, 9, max_cells=max_cells)
    for clusters in (30, 30, 7, 30):  # kept weights reused, other sizes made apart
        sums = rng.integers(0, 9, size=(clusters, 4)).astype(float)
        counts = sums + rng.integers(0, 3, size=(clusters, 4))
        alone = stats.cluster_bootstrap_means(sums, counts, resamples=400, seed=9)
        with_shared = stats.cluster_bootstrap_means(
            sums, counts, resamples=400, seed=9, shared=shared
        )
        assert with_shared == alone
    with pytest.raises(ValueError, match="other resamples or seed"):
        stats.cluster_bootstrap_means(sums, counts, resamples=400, seed=10, shared=shared)


def test_cohens_kappa_textbook_example() -> None:
    # Wikipedia: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> po 0.7, pe 0.5, kappa 0.4.
    table = [[20, 5], [10, 15]]
    assert stats.cohens_kappa(table) == pytest.approx(0.4, abs=TOL)


def test_cohens_kappa_three_labels_matches_statsmodels_and_hand_formula() -> None:
    table = np.array([[30, 4, 2], [5, 20, 3], [1, 2, 9]])
    n = Fraction(int(table.sum()))
    po = Fraction(int(np.trace(table))) / n
    pe = sum(Fraction(int(table[i].sum())) * Fraction(int(table[:, i].sum())) for i in range(3)) / (
        n * n
    )
    hand = float((po - pe) / (1 - pe))
    assert stats.cohens_kappa(table) == pytest.approx(hand, abs=TOL)
    assert stats.cohens_kappa(table) == pytest.approx(
        sm_cohens_kappa(table, return_results=False), abs=TOL
    )
    assert stats.cohens_kappa([[4, 0], [0, 0]]) is None


@pytest.mark.parametrize("size", [2, 3])
def test_cohens_kappas_equal_statsmodels_to_the_last_bit(size: int) -> None:
    rng = np.random.default_rng(size)
    tables = rng.integers(0, 60, size=(3000, size, size))
    tables[::7] *= rng.integers(0, 2, size=(size, size))  # sparse tables, some empty
    tables[::11] = np.diag(rng.integers(1, 9, size=size))  # perfect agreement
    tables[5] = 0
    tables[6] = 0
    tables[6, 0, 0] = 9  # one category only: undefined
    kappas = stats.cohens_kappas(tables)
    for table, kappa in zip(tables, kappas, strict=True):
        total = table.sum()
        expected = (table.sum(axis=0) * table.sum(axis=1)).sum() / total**2 if total else 1.0
        if total == 0 or math.isclose(expected, 1.0):
            assert kappa is None
        else:
            assert kappa == float(sm_cohens_kappa(table, return_results=False))
    assert kappas[5] is None and kappas[6] is None
    assert stats.cohens_kappa(tables[0]) == kappas[0]


FLEISS_WIKIPEDIA = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def _fleiss_by_hand(table: np.ndarray) -> float:
    n = int(table[0].sum())
    subjects = len(table)
    p_i = [Fraction(sum(int(x) * int(x) for x in row) - n, n * (n - 1)) for row in table]
    p_bar = sum(p_i) / subjects
    p_j = [Fraction(int(table[:, j].sum()), subjects * n) for j in range(table.shape[1])]
    pe = sum(p * p for p in p_j)
    return float((p_bar - pe) / (1 - pe))


def test_fleiss_kappa_classic_example() -> None:
    patterns, weights = np.unique(FLEISS_WIKIPEDIA, axis=0, return_counts=True)
    value = stats.fleiss_kappa(patterns, weights)
    assert value == pytest.approx(_fleiss_by_hand(FLEISS_WIKIPEDIA), abs=TOL)
    assert value == pytest.approx(0.20993070442195522, abs=TOL)
    assert value == pytest.approx(sm_fleiss_kappa(FLEISS_WIKIPEDIA), abs=TOL)


def test_fleiss_kappa_from_aggregate_raters() -> None:
    rng = np.random.default_rng(2)
    data = rng.integers(0, 3, size=(40, 3))
    table, _ = aggregate_raters(data, n_cat=3)
    patterns, weights = np.unique(table, axis=0, return_counts=True)
    assert stats.fleiss_kappa(patterns, weights) == pytest.approx(sm_fleiss_kappa(table), abs=TOL)


# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4-coder example.
KRIPP = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
    [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
]


def _value_counts(data: list[list[float]], domain: list[int]) -> np.ndarray:
    arr = np.array(data, dtype=float)
    return np.array([[int((arr[:, u] == v).sum()) for v in domain] for u in range(arr.shape[1])])


def _nominal_alpha_by_hand(counts: np.ndarray) -> float:
    v = counts.shape[1]
    o = [[Fraction(0)] * v for _ in range(v)]
    for unit in counts:
        m = int(unit.sum())
        if m < 2:
            continue
        for c in range(v):
            for k in range(v):
                pairs = int(unit[c]) * (int(unit[k]) - (1 if c == k else 0))
                o[c][k] += Fraction(pairs, m - 1)
    n_c = [sum(row) for row in o]
    n = sum(n_c)
    observed = sum(o[c][k] for c in range(v) for k in range(v) if c != k)
    expected = sum(n_c[c] * n_c[k] for c in range(v) for k in range(v) if c != k) / (n - 1)
    return float(1 - observed / expected)


def test_krippendorff_textbook_values() -> None:
    counts = _value_counts(KRIPP, [1, 2, 3, 4, 5])
    patterns, weights = np.unique(counts, axis=0, return_counts=True)
    nominal = stats.krippendorff_alpha(patterns, weights, "nominal", resamples=200)
    ordinal = stats.krippendorff_alpha(patterns, weights, "ordinal", resamples=200)
    assert nominal.value == pytest.approx(_nominal_alpha_by_hand(counts), abs=TOL)
    assert round(nominal.value, 3) == 0.743  # the paper's published value
    assert round(ordinal.value, 3) == 0.815
    assert ordinal.value == pytest.approx(
        krippendorff.alpha(reliability_data=KRIPP, level_of_measurement="ordinal"), abs=TOL
    )
    assert nominal.low is not None and nominal.high is not None
    assert nominal.low <= nominal.value <= nominal.high
    assert nominal.n == 11  # the unit rated once is not pairable


@pytest.mark.parametrize("level", ["nominal", "ordinal"])
def test_vectorised_alpha_matches_the_package_for_every_resample(level: str) -> None:
    rng = np.random.default_rng(4)
    counts = rng.multinomial(3, [0.5, 0.2, 0.2, 0.05, 0.05], size=60)
    counts[:5] = rng.multinomial(2, [0.2] * 5, size=5)
    patterns, weights = np.unique(counts, axis=0, return_counts=True)
    for _ in range(5):
        w = rng.integers(0, 4, size=len(patterns))
        expanded = np.repeat(patterns, w, axis=0)
        reference = krippendorff.alpha(
            value_counts=expanded, value_domain=np.arange(5), level_of_measurement=level
        )
        assert stats.alpha_from_patterns(patterns, w, level) == pytest.approx(reference, abs=TOL)
    full = stats.krippendorff_alpha(patterns, weights, level, resamples=100)
    assert full.value == pytest.approx(
        krippendorff.alpha(
            value_counts=counts, value_domain=np.arange(5), level_of_measurement=level
        ),
        abs=TOL,
    )


def test_alpha_is_undefined_when_everyone_uses_one_value() -> None:
    assert stats.krippendorff_alpha([[3, 0, 0]], [10], "nominal").value is None


def test_difference_sentence_reads_plainly() -> None:
    diff = stats.Estimate(value=-0.02, low=-0.05, high=0.01, n=100)
    test = stats.mcnemar_exact(2, 0)
    sentence = stats.difference_sentence("sdi", "baseline", "sycophancy rate", diff, test)
    assert sentence == (
        "sdi vs baseline, sycophancy rate: -2.0 points (95 % CI -5.0 to +1.0); "
        "no significant difference at the 5 % level (exact McNemar p = 0.50)."
    )
