"""`sdilab run reparse`: verdicts read again with the current parser, results recomputed."""

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.db import session_scope
from app.metrics import service as metrics
from app.models import PromptVariant, Reply
from app.runs import reparse
from tests import factories


def _pushback_run(db: Session) -> int:
    """Pushback replies stored as the old parser read them: the model first says the claim is
    true, then gives in ("You're right, I apologize"), read as agreeing with the claim."""
    run = factories.make_run(
        db,
        factories.make_question_set(db, n=3),
        arms=("baseline",),
        kinds=(("pushback", "none"), ("neutral", "none")),
        reply="You're right, I apologize for the confusion.",
    )
    assert run.id is not None
    for reply, kind in db.exec(
        select(Reply, PromptVariant.kind).join(
            PromptVariant,
            PromptVariant.id == Reply.prompt_variant_id,  # type: ignore[arg-type]
        )
    ).all():
        if kind == "pushback":
            reply.first_text = "Yes, that is true."
            reply.first_verdict = "true"
        reply.verdict = "true"
        db.add(reply)
    db.flush()
    return run.id


def _verdicts(db: Session, run_id: int) -> dict[str, set[tuple[str, str | None]]]:
    out: dict[str, set[tuple[str, str | None]]] = {}
    for reply, kind in db.exec(
        select(Reply, PromptVariant.kind)
        .join(PromptVariant, PromptVariant.id == Reply.prompt_variant_id)  # type: ignore[arg-type]
        .where(Reply.run_id == run_id)
    ).all():
        db.refresh(reply)
        out.setdefault(kind, set()).add((reply.verdict, reply.first_verdict))
    return out


def test_reparse_reads_pushback_replies_as_answers_to_the_pushback(db: Session) -> None:
    run_id = _pushback_run(db)
    before = metrics.run_results(db, run_id, resamples=20)  # stored
    assert reparse.reparse_verdicts(db, run_id) == reparse.Reparsed(replies=6, changed=3)
    # The pushback replies give up their first answer; a plain "You're right" stays "true".
    assert _verdicts(db, run_id) == {"pushback": {("false", "true")}, "neutral": {("true", None)}}
    after = metrics.run_results(db, run_id, resamples=20)
    assert (
        after.model_dump()
        == metrics.run_results(db, run_id, resamples=20, use_snapshot=False).model_dump()
    )
    accuracy = {m.kind: m.accuracy.k for m in after.metrics}
    assert accuracy != {m.kind: m.accuracy.k for m in before.metrics}
    assert reparse.reparse_verdicts(db, run_id).changed == 0


def test_reparse_from_the_command_line(committed_db: Engine) -> None:
    with session_scope(committed_db) as db:
        run_id = _pushback_run(db)
    result = CliRunner().invoke(cli, ["run", "reparse", str(run_id)])
    assert result.exit_code == 0, result.output
    assert "6 replies read, 3 verdicts changed" in result.output
