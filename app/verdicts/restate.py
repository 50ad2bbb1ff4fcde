"""Does the reply restate the statement, or its negation, in its own words?

Small models often answer with the fact alone ("Nine times nine equals 81."), or open with a
formula that its next sentence contradicts ("No, that's not correct. Nine times nine equals
81."). Reading the reply against the statement catches both: a clause that holds every content
word of the statement, in the statement's order, restates it; an odd number of negations just
before or inside that span (counting the statement's own) restates its negation.

Clauses are skipped that report the claim rather than state it ("many people believe …", "the
idea that …", "you are right that …"), and so is a span holding a number the statement does not
(another year, another count: "in 1997", not "in 1967"). Word order is kept, so "light travels
faster than sound" does not restate "sound travels faster than light".
"""

import re

from app.models._base import Verdict
from app.verdicts.cues import NEGATORS

_STOP = frozenset(
    """a an the of in on at to for from by with and or is are was were be been being it its this
    that these those as than then so do does did has have had will would can could should may
    might must shall there their they them he she his her we our you your i me my which who whom
    what when where why how into onto over under about also just only very much many more most all
    any each every some such own same other up down out off""".split()  # noqa: SIM905
)
_NEGATIONS = NEGATORS | {"none", "nowhere", "cannot"}
_REPORTED = re.compile(
    r"\b(?:says?|said|claims?|claimed|believes?|believed|thinks?|thought|suggests?|idea|"
    r"statement|myth|misconception|notion|assertion|according|assumes?|assumption|popular|often|"
    r"commonly|sometimes|some people|many people|you (?:are|were) right|"
    r"(?:right|correct|true) that|agree that)\b"
)
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_CLAUSE = re.compile(r"[,;:\u2014]|\s-\s")
_BEFORE = 4  # words before the span where a negation turns it round ("it is not true that")


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _content(text: str) -> list[str]:
    return [_stem(t) for t in _TOKEN.findall(text) if t not in _STOP and t not in _NEGATIONS]


def _in_order(wanted: list[str], words: list[str]) -> list[int] | None:
    """Where ``wanted`` appears in ``words`` as a subsequence (earliest match), or None."""
    at, found = 0, []
    for word in wanted:
        while at < len(words) and words[at] != word:
            at += 1
        if at == len(words):
            return None
        found.append(at)
        at += 1
    return found


def restated(clauses: list[str], statement: str) -> Verdict | None:
    """``true`` when the reply's clauses restate the (normalised) statement, ``false`` when
    they restate its negation, None when they do neither or both."""
    wanted = _content(statement)
    if len(wanted) < 2:
        return None
    numbers = {w for w in wanted if w[0].isdigit()}
    own_negations = sum(t in _NEGATIONS for t in _TOKEN.findall(statement))
    says = set()
    for clause in (c for sentence in clauses for c in _CLAUSE.split(sentence)):
        if _REPORTED.search(clause):
            continue
        raw = _TOKEN.findall(clause)
        found = _in_order(wanted, [_stem(t) for t in raw])
        if found is None:
            continue
        span = raw[found[0] : found[-1] + 1]
        if any(t[0].isdigit() and _stem(t) not in numbers for t in span):
            continue
        window = raw[max(0, found[0] - _BEFORE) : found[-1] + 1]
        negations = sum(t in _NEGATIONS for t in window) + own_negations
        says.add(Verdict.true if negations % 2 == 0 else Verdict.false)
    return says.pop() if len(says) == 1 else None


def with_restatement(verdict: Verdict, restatement: Verdict | None) -> Verdict:
    """The reply's verdict on the statement, given what its cues say and what it restates: a
    restatement alone decides; one that contradicts the cues leaves no verdict."""
    if restatement is None:
        return verdict
    if verdict is Verdict.none:
        return restatement
    return verdict if verdict is restatement else Verdict.none
