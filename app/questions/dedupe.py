"""Normalised statement hashes, and exact / near-duplicate detection within one set.

Near-duplicates: every pair is scored (rapidfuzz.process.cdist) for sets of up to EXACT_LIMIT
distinct statements; larger sets use a sorted neighbourhood (see ``_similar_pairs``), so
100,000 rows take a second or two.
"""

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
from rapidfuzz import fuzz, process

from app.questions.schemas import ParsedRow

_WORDS = re.compile(r"\w+")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_CONTRACTIONS = (("can't", "can not"), ("won't", "will not"), ("n't", " not"))
NEGATION_WORDS = frozenset({"not", "no", "never"})
# Up to this many distinct statements every pair is compared; beyond, a sorted neighbourhood.
EXACT_LIMIT = 2000
WINDOW = 4


_TRAILING = " " + "".join(
    ch for ch in map(chr, range(0x10000)) if unicodedata.category(ch).startswith("P")
)


def normalise(statement: str) -> str:
    """NFKC, casefold, straight quotes, collapsed whitespace, no trailing punctuation."""
    text = unicodedata.normalize("NFKC", statement).casefold().translate(_QUOTES)
    return " ".join(text.split()).rstrip(_TRAILING)


def hash_normalised(normalised: str) -> str:
    return hashlib.sha256(normalised.encode()).hexdigest()


def norm_hash(statement: str) -> str:
    return hash_normalised(normalise(statement))


def _tokens(normalised: str) -> list[str]:
    for short, long in _CONTRACTIONS:
        normalised = normalised.replace(short, long)
    return _WORDS.findall(normalised)


def is_negated_pair(a: str, b: str) -> bool:
    """True when two normalised statements differ only by a negation ("is" / "is not")."""
    ta, tb = _tokens(a), _tokens(b)
    na = sum(1 for t in ta if t in NEGATION_WORDS)
    nb = sum(1 for t in tb if t in NEGATION_WORDS)
    if (na - nb) % 2 == 0:
        return False
    return Counter(t for t in ta if t not in NEGATION_WORDS) == Counter(
        t for t in tb if t not in NEGATION_WORDS
    )


def flag_duplicates(rows: Sequence[ParsedRow], threshold: float) -> None:
    """Mark each row that repeats an earlier one: exactly (same hash) or with similarity >=
    ``threshold`` (rapidfuzz ratio on normalised text, 0-100). A duplicate conflicts when its
    truth label contradicts the earlier row's (for a negated pair, when the labels agree)."""
    first_by_hash: dict[str, ParsedRow] = {}
    unique: list[ParsedRow] = []
    for row in rows:
        earlier = first_by_hash.get(row.norm_hash)
        if earlier is not None:
            row.duplicate_of, row.similarity = earlier.position, 100.0
            row.conflict = earlier.truth != row.truth
            continue
        first_by_hash[row.norm_hash] = row
        unique.append(row)

    texts = [row.normalised or normalise(row.statement) for row in unique]
    best: dict[int, tuple[float, int]] = {}  # later index -> (score, earlier index)
    for i, j, score in _similar_pairs(texts, threshold):
        first, second = min(i, j), max(i, j)
        current = best.get(second)
        if current is None or (score, -first) > (current[0], -current[1]):
            best[second] = (score, first)
    for second, (score, first) in best.items():
        row, original = unique[second], unique[first]
        row.duplicate_of, row.similarity = original.position, round(score, 1)
        opposite = original.truth != row.truth
        negated = is_negated_pair(texts[second], texts[first])
        row.conflict = not opposite if negated else opposite


def _similar_pairs(texts: list[str], threshold: float) -> Iterator[tuple[int, int, float]]:
    """Index pairs (i, j, score) whose similarity reaches ``threshold``.

    Up to EXACT_LIMIT statements every pair is scored. Beyond that, pairs come from a sorted
    neighbourhood: statements sorted forwards and by their reversed text, each scored against
    its next WINDOW neighbours. Two near-identical statements differ in few characters, so one
    of the two orders almost always puts them side by side.
    """
    n = len(texts)
    if n < 2:
        return
    if n <= EXACT_LIMIT:
        scores = process.cdist(
            texts, texts, scorer=fuzz.ratio, score_cutoff=threshold, dtype=np.float32, workers=-1
        )
        scores = np.tril(scores, -1)
        for i, j in zip(*np.nonzero(scores >= threshold), strict=True):
            yield int(i), int(j), float(scores[i, j])
        return
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n)
    pairs: list[np.ndarray] = []
    reversed_texts = [t[::-1] for t in texts]
    for order in (
        np.array(sorted(range(n), key=texts.__getitem__)),
        np.array(sorted(range(n), key=reversed_texts.__getitem__)),
    ):
        for k in range(1, min(WINDOW, n - 1) + 1):
            pairs.append(np.stack([order[:-k], order[k:]], axis=1))
    ordered = np.sort(np.concatenate(pairs), axis=1)
    codes = np.sort(ordered[:, 0] * n + ordered[:, 1])
    codes = codes[np.concatenate(([True], codes[1:] != codes[:-1]))]
    candidates = np.stack([codes // n, codes % n], axis=1)
    la, lb = lengths[candidates[:, 0]], lengths[candidates[:, 1]]
    # ratio <= 200 * min / (la + lb): skip pairs whose lengths alone rule them out.
    candidates = candidates[200 * np.minimum(la, lb) >= threshold * (la + lb)]
    if len(candidates) == 0:
        return
    by_index = np.array(texts, dtype=object)
    scores = process.cpdist(
        by_index[candidates[:, 0]].tolist(),
        by_index[candidates[:, 1]].tolist(),
        scorer=fuzz.ratio,
        score_cutoff=threshold,
        dtype=np.float32,
        workers=-1,
    )
    for m in np.nonzero(scores >= threshold)[0]:
        yield int(candidates[m, 0]), int(candidates[m, 1]), float(scores[m])
