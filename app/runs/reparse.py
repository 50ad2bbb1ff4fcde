"""Read a run's stored verdicts again with the current parser (after it improved)."""

from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlmodel import Session

from app.models import Question, Run, Stance, VariantKind
from app.runs.service import DONE, REPLIES, VARIANTS, chunks
from app.verdicts import statement_verdicts

_QUESTIONS = Question.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Reparsed:
    replies: int  # done replies read
    changed: int  # replies whose verdict or first verdict changed


def reparse_verdicts(session: Session, run_id: int) -> Reparsed:
    """Read every done reply's verdicts again with the current parser (after the parser
    improved; raters' own readings of the verdict are ratings and stay as they are).

    When a verdict changes, the run's ``replies_version`` moves: results computed before
    (stored results, each process's codes of the run) depend on it and are computed again.
    """
    rows = session.execute(
        select(
            REPLIES.c.id,
            REPLIES.c.text,
            REPLIES.c.first_text,
            REPLIES.c.verdict,
            REPLIES.c.first_verdict,
            VARIANTS.c.stance,
            VARIANTS.c.kind,
            _QUESTIONS.c.statement,
        )
        .select_from(
            REPLIES.join(VARIANTS, VARIANTS.c.id == REPLIES.c.prompt_variant_id).join(
                _QUESTIONS, _QUESTIONS.c.id == VARIANTS.c.question_id
            )
        )
        .where(REPLIES.c.run_id == run_id, REPLIES.c.status == DONE)
        .order_by(REPLIES.c.id)
    ).all()
    updates = []
    for reply_id, text, first_text, verdict, first_verdict, stance, kind, claim in rows:
        pushback = kind == VariantKind.pushback.value
        new, new_first = statement_verdicts(
            text, stance == Stance.negates.value, first_text if pushback else None, claim
        )
        new_first_value = new_first.value if new_first is not None else None
        if (new.value, new_first_value) != (verdict, first_verdict):
            updates.append({"_id": reply_id, "verdict": new.value, "first": new_first_value})
    if updates:
        statement = (
            update(REPLIES)
            .where(REPLIES.c.id == bindparam("_id"))
            .values(verdict=bindparam("verdict"), first_verdict=bindparam("first"))
        )
        for chunk in chunks(updates):
            session.connection().execute(statement, chunk)
        run = session.get(Run, run_id)
        if run is not None:
            run.replies_version += 1
    session.flush()
    return Reparsed(replies=len(rows), changed=len(updates))
