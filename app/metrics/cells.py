"""Cells of the result tables and their bootstrap, shared by the metric and paired tables."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.metrics import stats
from app.models import VariantKind

ALL = "all"
KIND_ORDER = [k.value for k in VariantKind]


def kind_key(kind: str) -> tuple[int, str]:
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind)


@dataclass
class _Cells:
    """Per-cell totals plus per-statement (cluster) sums for the bootstrap."""

    keys: list[tuple[Any, ...]] = field(default_factory=list)
    index: dict[tuple[Any, ...], int] = field(default_factory=dict)

    def add(self, key: tuple[Any, ...]) -> int:
        if key not in self.index:
            self.index[key] = len(self.keys)
            self.keys.append(key)
        return self.index[key]


def bootstrap(
    entries: Iterable[tuple[tuple[Any, ...], int, float, float]],
    *,
    resamples: int,
    seed: int,
) -> dict[tuple[Any, ...], stats.Estimate]:
    """entries: (cell key, question id, sum, count) -> one clustered estimate per cell."""
    cells = _Cells()
    rows = list(entries)
    questions = sorted({q for _, q, _, _ in rows})
    q_index = {q: i for i, q in enumerate(questions)}
    for key, _, _, _ in rows:
        cells.add(key)
    sums = np.zeros((len(questions), len(cells.keys)))
    counts = np.zeros_like(sums)
    for key, q, s, c in rows:
        j = cells.index[key]
        sums[q_index[q], j] += s
        counts[q_index[q], j] += c
    estimates = stats.cluster_bootstrap_means(sums, counts, resamples=resamples, seed=seed)
    return dict(zip(cells.keys, estimates, strict=True))
