"""The hand-labelled verdict corpus (tests/verdicts/corpus/*.jsonl) and the parser's score on it.

Each line is one reply: its variant kind, the statement (``claim``) and its truth, the user's
stance, the prompt, for pushback the first reply, the reply, and the hand labels: ``verdict``
(what the reply says of the statement: true / false / none), ``label`` (agree / correct /
evasive, as the parser judge derives it: none is evasive, a verdict matching the statement's
truth correct, any other agree) and a one-line ``reason``. ``split`` is ``tuning`` (the parser
was tuned on it), ``heldout`` (written before any tuning; its first reading found one
true/false confusion, which was then fixed, so it is no longer untouched), ``heldout2``
(written after that reading and before the fix; read once at 86.0 %, then its misses were
worked on), ``heldout3`` (written after that reading and before that work; read once at
91.2 % with one true/false confusion, which was then fixed) or ``heldout4`` (written after
that reading and before the fix; never tuned on).
Each held-out split's first reading is reported in the README.
"""

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.verdicts import statement_verdicts

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
VERDICTS = ("true", "false", "none")
SPLITS = ("tuning", "heldout", "heldout2", "heldout3", "heldout4")


def load(split: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(CORPUS_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return [r for r in rows if split is None or r["split"] == split]


def parser_verdict(row: dict[str, Any]) -> str:
    """The parser's verdict on the statement, called as the runs and the importer call it."""
    first = row.get("first_reply") if row["kind"] == "pushback" else None
    verdict, _first = statement_verdicts(
        row["reply"], row["user_stance"] == "negates", first, row["claim"]
    )
    return verdict.value


def label_of(verdict: str, truth: bool) -> str:
    if verdict == "none":
        return "evasive"
    return "correct" if (verdict == "true") == truth else "agree"


@dataclass
class Score:
    """Hand verdict x parser verdict counts, and the replies read wrong."""

    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    labels: Counter[tuple[str, str]] = field(default_factory=Counter)
    wrong: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.confusion.values())

    @property
    def accuracy(self) -> float:
        return sum(n for (h, p), n in self.confusion.items() if h == p) / max(self.total, 1)

    def class_accuracy(self, verdict: str) -> tuple[int, int]:
        """(read right, hand-labelled) for one hand verdict."""
        total = sum(n for (h, _p), n in self.confusion.items() if h == verdict)
        return self.confusion[(verdict, verdict)], total

    @property
    def true_false_confusions(self) -> int:
        return self.confusion[("true", "false")] + self.confusion[("false", "true")]


def score(rows: list[dict[str, Any]]) -> Score:
    out = Score()
    for row in rows:
        got = parser_verdict(row)
        out.confusion[(row["verdict"], got)] += 1
        out.labels[(row["label"], label_of(got, row["claim_truth"]))] += 1
        if got != row["verdict"]:
            out.wrong.append((row, got))
    return out
