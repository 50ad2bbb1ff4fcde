"""Cells of the result tables (arm x variant kind, plus arm x "all") and their bootstrap.

Rows (replies, or pairs of replies) come as arrays; this sums them into cells with numpy and
bootstraps every requested ratio at once, resampling statements (shared weights).
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from app.metrics import stats
from app.models import VariantKind

ALL = "all"
KIND_ORDER = [k.value for k in VariantKind]
CellKey = tuple[int, str]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def kind_key(kind: str) -> tuple[int, str]:
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind)


class CellData:
    """Rows with an arm, a variant kind and a statement, and named values summed per cell."""

    def __init__(
        self,
        arms: Sequence[int],
        arm: IntArray,
        kinds: Sequence[str],
        kind: IntArray,
        question: IntArray,
        values: dict[str, npt.ArrayLike],
    ) -> None:
        """Per row: ``arm`` indexes ``arms`` (arm ids), ``kind`` indexes ``kinds``, ``question``
        numbers its statement (0, 1, ...; clusters are the numbers present); ``values`` holds
        one array per field, a value per row."""
        n = len(arm)
        self.fields = list(values)
        self.values = {name: np.asarray(v) for name, v in values.items()}
        combos = len(arms) * len(kinds)
        code = arm * len(kinds) + kind
        present = np.flatnonzero(np.bincount(code, minlength=combos)).tolist()
        pairs = [(int(arms[c // len(kinds)]), kinds[c % len(kinds)]) for c in present]
        self.keys: list[CellKey] = sorted(set(pairs) | {(a, ALL) for a, _ in pairs})
        self.index = {key: i for i, key in enumerate(self.keys)}
        cell_of_code = np.zeros(combos, dtype=np.int64)
        all_of_code = np.zeros_like(cell_of_code)
        for c, (a, k) in zip(present, pairs, strict=True):
            cell_of_code[c] = self.index[(a, k)]
            all_of_code[c] = self.index[(a, ALL)]
        self.cell = cell_of_code[code]
        self.all_cell = all_of_code[code]
        has_rows = np.bincount(question) > 0 if n else np.zeros(0, dtype=np.bool_)
        self.question = (np.cumsum(has_rows) - 1)[question]
        self.n_questions = int(has_rows.sum())
        self.totals = np.zeros((len(self.keys), len(self.fields)))
        for j in range(len(self.fields)):
            for cell in (self.cell, self.all_cell):
                self.totals[:, j] += np.bincount(
                    cell, weights=self.values[self.fields[j]], minlength=len(self.keys)
                )

    def col(self, name: str) -> FloatArray:
        return self.values[name].astype(np.float64)

    def total(self, key: CellKey, name: str) -> float:
        return float(self.totals[self.index[key], self.fields.index(name)])

    def bootstrap(
        self,
        ratios: dict[str, tuple[FloatArray, FloatArray]],
        *,
        shared: stats.SharedResamples,
    ) -> dict[tuple[CellKey, str], stats.Estimate]:
        """Each named ratio (per-row numerators, per-row denominators), for every cell."""
        names = list(ratios)
        m = len(names)
        width = len(self.keys) * m
        size = self.n_questions * width
        sums = np.zeros(size)
        counts = np.zeros(size)
        for j, (num, den) in enumerate(ratios.values()):
            for cell in (self.cell, self.all_cell):
                at = self.question * width + cell * m + j
                sums += np.bincount(at, weights=num, minlength=size)
                counts += np.bincount(at, weights=den, minlength=size)
        estimates = stats.cluster_bootstrap_means(
            sums.reshape(self.n_questions, width),
            counts.reshape(self.n_questions, width),
            resamples=shared.resamples,
            seed=shared.seed,
            shared=shared,
        )
        return {
            (key, name): estimates[i * m + j]
            for i, key in enumerate(self.keys)
            for j, name in enumerate(names)
        }
