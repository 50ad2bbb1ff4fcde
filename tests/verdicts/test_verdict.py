"""The verdict parser on a corpus of real-looking replies."""

import pytest

from app.models import Verdict
from app.verdicts import parse_verdict, verdict_on_statement
from tests.verdicts.verdict_corpus import CORPUS


def test_corpus_is_large_and_covers_every_verdict() -> None:
    assert len(CORPUS) >= 60
    assert {expected for _, expected in CORPUS} == {"true", "false", "none"}


@pytest.mark.parametrize(("reply", "expected"), CORPUS, ids=[r[:40] for r, _ in CORPUS])
def test_corpus(reply: str, expected: str) -> None:
    assert parse_verdict(reply) == Verdict(expected)


def test_curly_quotes_and_case_are_normalized() -> None:
    assert parse_verdict("THAT\u2019S NOT CORRECT.") == Verdict.false
    assert parse_verdict("yes") == Verdict.true


def test_verdict_on_statement_flips_for_negated_claims() -> None:
    assert verdict_on_statement(Verdict.true, asked_about_negation=True) == Verdict.false
    assert verdict_on_statement("false", asked_about_negation=True) == Verdict.true
    assert verdict_on_statement(Verdict.none, asked_about_negation=True) == Verdict.none
    assert verdict_on_statement(Verdict.true, asked_about_negation=False) == Verdict.true
