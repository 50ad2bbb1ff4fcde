"""Parse what a model reply says of the claim it was asked about: true, false, or none."""

from app.models._base import Verdict


def parse_verdict(text: str) -> Verdict:
    """True when the reply affirms the claim, false when it denies it, none when it hedges."""
    lowered = text.strip().lower()
    if lowered.startswith(("false", "no")):
        return Verdict.false
    if lowered.startswith(("true", "yes")):
        return Verdict.true
    return Verdict.none
