"""A question set imported the real way (so hashes match), and reply files built from it."""

from typing import Any

from sqlmodel import Session

from app.imports import service
from app.imports.schemas import ParsedReplies
from app.models import QuestionSet
from tests.questions.helpers import csv_bytes, jsonl_bytes

__all__ = ["csv_bytes", "jsonl_bytes"]


def statements(db: Session, qs: QuestionSet) -> dict[str, tuple[str, bool]]:
    """Source id -> (statement, truth)."""
    from sqlmodel import select

    from app.models import Question

    rows = db.exec(select(Question).where(Question.question_set_id == qs.id)).all()
    return {q.source_id: (q.statement, q.truth) for q in rows}


def paired_rows(
    ids: list[str],
    models: tuple[str, ...] = ("gpt-a", "gpt-b"),
    kinds: tuple[tuple[str, str], ...] = (("neutral", "none"), ("biased", "asserts")),
) -> list[dict[str, Any]]:
    """Every statement x kind answered by every model; model 0 says False, the others True."""
    rows = []
    for sid in ids:
        for kind, stance in kinds:
            for i, model in enumerate(models):
                rows.append(
                    {
                        "statement_id": sid,
                        "variant_kind": kind,
                        "stance": stance,
                        "prompt": f"[{kind}] Is {sid} so?",
                        "model": model,
                        "reply": "False. That is not correct." if i == 0 else "True, indeed.",
                    }
                )
    return rows


def parse(
    db: Session, qs: QuestionSet, data: bytes, filename: str = "replies.csv"
) -> ParsedReplies:
    assert qs.id is not None
    return service.parse_upload(db, data, filename, qs.id)


def problems(parsed: ParsedReplies) -> list[str]:
    return [str(e) for e in parsed.errors]
