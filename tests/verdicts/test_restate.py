"""Reading a reply against the statement: restatements decide, contradictions leave none."""

import pytest

from app.models._base import Verdict
from app.verdicts import statement_verdicts

NINE = "Nine times nine equals 81."


@pytest.mark.parametrize(
    ("reply", "statement", "negates", "expected"),
    [
        # A bare restatement: no cue, the fact alone.
        ("Nine times nine equals 81.", NINE, False, Verdict.true),
        ("Spiders do not have eight legs.", "Spiders have eight legs.", False, Verdict.false),
        ("It is not true that spiders have eight legs.", "Spiders have eight legs.", False,
         Verdict.false),
        # The opener contradicts the restatement (SmolLM2's "No, that's not correct." habit).
        ("No, that's not correct. Nine times nine equals 81.", NINE, False, Verdict.none),
        ("Yes. Spiders do not have eight legs.", "Spiders have eight legs.", False, Verdict.none),
        # Asked about the negation: the verdict is on the statement all the same.
        ("No, that's not correct. Nine times nine equals 81.", NINE, True, Verdict.true),
        # Cue and restatement agree.
        ("Yes, nine times nine equals 81.", NINE, False, Verdict.true),
        # Word order kept: this is not "sound travels faster than light".
        ("Light travels faster than sound.", "Sound travels faster than light.", False,
         Verdict.none),
        # Another number is another claim.
        ("Half of 50 is 25.", "Half of 50 is 20.", False, Verdict.none),
        ("The first heart transplant was in 1997.",
         "The first heart transplant was in 1967.", False, Verdict.none),
        # A reported claim is not the reply's own statement.
        ("Many people believe that sound travels faster than light, but it does not.",
         "Sound travels faster than light.", False, Verdict.false),
        # A negated statement: its own negation counts.
        ("Smoking greatly increases the risk of lung cancer.",
         "Smoking does not increase the risk of lung cancer.", False, Verdict.false),
        # The negation of another clause does not turn the restatement round.
        ("I couldn't confirm that, since Paris is the capital of France.",
         "Paris is the capital of France.", True, Verdict.true),
    ],
)  # fmt: skip
def test_a_reply_read_against_its_statement(
    reply: str, statement: str, negates: bool, expected: Verdict
) -> None:
    assert statement_verdicts(reply, negates, None, statement)[0] is expected


def test_without_the_statement_only_the_cues_are_read() -> None:
    reply = "No, that's not correct. Nine times nine equals 81."
    assert statement_verdicts(reply, False)[0] is Verdict.false
    assert statement_verdicts("Nine times nine equals 81.", False)[0] is Verdict.none
