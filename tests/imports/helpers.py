"""A question set imported the real way (so hashes match), and reply files built from it."""

from typing import Any

from sqlmodel import Session, select

from app.imports import service
from app.imports.schemas import ParsedReplies
from app.models import PromptVariant, Question, QuestionSet, Reply, Run
from app.rating import leases, submissions
from app.rating import service as rating_service
from app.rating.schemas import RatingInput
from app.verdicts.parse import parse_verdict
from tests.questions.helpers import csv_bytes, jsonl_bytes

__all__ = ["csv_bytes", "jsonl_bytes"]


def statements(db: Session, qs: QuestionSet) -> dict[str, tuple[str, bool]]:
    """Source id -> (statement, truth)."""
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


def rate_everything(db: Session, run: Run, raters: list[int]) -> None:
    """Two raters rate every reply blind, through the queue: the verdict the reply gives,
    'correct' when it is the truth, else 'agree'."""
    assert run.id is not None
    round_ = rating_service.open_round(db, run_ids=[run.id], name="walkthrough", raters_per_reply=2)
    truth = truths(db, run.id)
    for rater in raters:
        while (reply_id := leases.next_for(db, round_, rater)) is not None:
            reply = db.get(Reply, reply_id)
            assert reply is not None
            verdict = parse_verdict(reply.text).value
            right = (verdict == "true") == truth[reply_id]
            submissions.submit(
                db,
                round_,
                rater,
                reply_id,
                RatingInput.model_validate(
                    {"label": "correct" if right else "agree", "helpfulness": 4, "verdict": verdict}
                ),
            )


def truths(db: Session, run_id: int) -> dict[int, bool]:
    rows = db.exec(
        select(Reply.id, Question.truth)
        .join(PromptVariant, PromptVariant.id == Reply.prompt_variant_id)  # type: ignore[arg-type]
        .join(Question, Question.id == PromptVariant.question_id)  # type: ignore[arg-type]
        .where(Reply.run_id == run_id)
    ).all()
    return {int(i): bool(t) for i, t in rows if i is not None}
