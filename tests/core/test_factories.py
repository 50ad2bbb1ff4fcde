from sqlalchemy import func
from sqlmodel import Session, select

from app.models import PromptVariant, Reply
from tests import factories


def test_make_run_builds_a_paired_finished_run(db: Session) -> None:
    run = factories.make_run(db, samples=2)
    variants = db.exec(
        select(func.count()).select_from(PromptVariant).where(PromptVariant.run_id == run.id)
    ).one()
    replies = db.exec(select(func.count()).select_from(Reply).where(Reply.run_id == run.id)).one()
    assert variants == 6 * 2
    assert replies == variants * 2 * 2
    erroneous = db.exec(select(PromptVariant).where(PromptVariant.premise_erroneous == True)).all()  # noqa: E712
    assert erroneous and all(v.stance == "asserts" for v in erroneous)
