"""Cells of the result tables (arm x variant kind, plus arm x "all") and their bootstrap.

SQL returns one row per (arm, kind, statement) with counts; this sums them into cells with
numpy and bootstraps every requested ratio at once, resampling statements (shared weights).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from app.metrics import stats
from app.models import VariantKind

ALL = "all"
KIND_ORDER = [k.value for k in VariantKind]
CellKey = tuple[int, str]


def kind_key(kind: str) -> tuple[int, str]:
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind)


class CellData:
    """Rows with arm_id, kind, question_id and the named fields, summed per cell and statement."""

    def __init__(self, rows: Sequence[Any], fields: Sequence[str]) -> None:
        self.fields = list(fields)
        n = len(rows)
        names = list(rows[0]._fields) if n else []
        columns = list(zip(*rows, strict=True)) if n else []

        def column(name: str) -> Sequence[Any]:
            return columns[names.index(name)] if n else []

        arms = [int(a) for a in column("arm_id")]
        kinds = [str(k) for k in column("kind")]
        questions = np.array(column("question_id"), dtype=np.int64)
        self.values = np.array(
            [[0 if x is None else x for x in column(f)] for f in fields], dtype=np.float64
        ).T.reshape(n, len(fields))
        self.values = np.nan_to_num(self.values)
        keys: set[CellKey] = set(zip(arms, kinds, strict=True)) | {(a, ALL) for a in arms}
        self.keys = sorted(keys)
        index = {key: i for i, key in enumerate(self.keys)}
        self.cell = np.array([index[k] for k in zip(arms, kinds, strict=True)], dtype=np.int64)
        self.all_cell = np.array([index[(a, ALL)] for a in arms], dtype=np.int64)
        self.index = index
        _, self.question = np.unique(questions, return_inverse=True)
        self.n_questions = int(self.question.max()) + 1 if n else 0
        self.totals = np.zeros((len(self.keys), len(fields)))
        np.add.at(self.totals, self.cell, self.values)
        np.add.at(self.totals, self.all_cell, self.values)

    def col(self, name: str) -> npt.NDArray[np.float64]:
        return self.values[:, self.fields.index(name)]

    def total(self, key: CellKey, name: str) -> float:
        return float(self.totals[self.index[key], self.fields.index(name)])

    def bootstrap(
        self,
        ratios: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
        *,
        resamples: int,
        seed: int,
    ) -> dict[tuple[CellKey, str], stats.Estimate]:
        """Each named ratio (per-row numerators, per-row denominators), for every cell."""
        names = list(ratios)
        m = len(names)
        width = len(self.keys) * m
        sums = np.zeros((self.n_questions, width))
        counts = np.zeros_like(sums)
        for j, name in enumerate(names):
            num, den = ratios[name]
            for cell in (self.cell, self.all_cell):
                np.add.at(sums, (self.question, cell * m + j), num)
                np.add.at(counts, (self.question, cell * m + j), den)
        estimates = stats.cluster_bootstrap_means(sums, counts, resamples=resamples, seed=seed)
        return {
            (key, name): estimates[i * m + j]
            for i, key in enumerate(self.keys)
            for j, name in enumerate(names)
        }
