"""The README's run command prepares a usable lab, and running it twice changes nothing."""

from sqlalchemy import func
from sqlmodel import Session, select

from app.accounts import service as accounts
from app.demo import service
from app.models import Job, QuestionSet, Reply, Run, RunArm


def test_demo_prepares_accounts_seed_model_and_one_experiment_run(db: Session) -> None:
    first = service.prepare(db, start_run=True, limit=2)
    assert first.created_run and first.run is not None
    admin = accounts.authenticate(db, service.ADMIN_EMAIL, first.password)
    assert admin is not None and admin.role == "admin"
    assert db.exec(select(QuestionSet).where(QuestionSet.name == "seed")).one()
    arms = db.exec(select(RunArm).where(RunArm.run_id == first.run.id)).all()
    assert sorted(a.label for a in arms) == ["baseline", "sdi"]
    replies = db.exec(
        select(func.count()).select_from(Reply).where(Reply.run_id == first.run.id)
    ).one()
    jobs = db.exec(select(func.count()).select_from(Job)).one()
    assert replies > 0 and jobs == replies

    second = service.prepare(db, start_run=True, limit=2)
    assert not second.created_run and second.password == first.password
    assert db.exec(select(func.count()).select_from(Run)).one() == 1
