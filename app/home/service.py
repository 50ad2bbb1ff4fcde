from dataclasses import dataclass

from sqlalchemy import func, text
from sqlmodel import Session, select

from app.models import ModelConfig, Question, QuestionSet, Rating, Reply, Run, User


@dataclass(frozen=True)
class Summary:
    question_sets: int
    questions: int
    models: int
    runs: int
    replies: int
    ratings: int
    users: int


def _count(session: Session, table: type) -> int:
    return int(session.exec(select(func.count()).select_from(table)).one())


def summary(session: Session) -> Summary:
    return Summary(
        question_sets=_count(session, QuestionSet),
        questions=_count(session, Question),
        models=_count(session, ModelConfig),
        runs=_count(session, Run),
        replies=_count(session, Reply),
        ratings=_count(session, Rating),
        users=_count(session, User),
    )


def ping(session: Session) -> None:
    session.execute(text("SELECT 1"))
