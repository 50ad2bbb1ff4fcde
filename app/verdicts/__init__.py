"""What a reply says of the claim it was asked about: the rule-based reading of a reply.

Pure text, no database and no model: the producers of replies (runs, the reply importer) read
each reply's verdict as they store it, and the judges compare it with human labels. It sits
below every domain package so that all of them may use it (the import contract in
tests/core/test_architecture.py places it with the other libraries).
"""

from app.verdicts.parse import (
    parse_followup_verdict,
    parse_verdict,
    statement_verdicts,
    verdict_on_statement,
)

__all__ = ["parse_followup_verdict", "parse_verdict", "statement_verdicts", "verdict_on_statement"]
