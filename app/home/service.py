"""What the home page shows: what the lab holds, the latest runs and how far they are, and the
rating rounds that wait for raters."""

from dataclasses import dataclass

from sqlalchemy import func, text
from sqlmodel import Session, select

from app.models import ModelConfig, Question, QuestionSet, Rating, RatingRound, Reply, Run, User
from app.rating import service as rating
from app.runs import progress

RECENT_RUNS = 5


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


@dataclass(frozen=True)
class RecentRun:
    run: Run
    done: int  # replies done
    total: int  # reply slots
    failed: int

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


@dataclass(frozen=True)
class WaitingRound:
    round_: RatingRound
    given: int  # ratings given
    wanted: int  # items x raters per item

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.given / self.wanted)) if self.wanted else 0


def recent_runs(session: Session, limit: int = RECENT_RUNS) -> list[RecentRun]:
    """The newest runs with their replies done out of all, in one query for the counts."""
    runs = progress.list_runs(session, limit)
    counts = progress.status_counts(session, [r.id for r in runs if r.id is not None])
    out = []
    for run in runs:
        by_status = counts.get(run.id or 0, {})
        out.append(
            RecentRun(
                run,
                by_status.get("done", 0),
                sum(by_status.values()),
                by_status.get("failed", 0),
            )
        )
    return out


def waiting_rounds(session: Session) -> list[WaitingRound]:
    """Open rounds that still want ratings (fewer given than items x raters per item)."""
    given = rating.ratings_per_round(session)
    out = []
    for round_ in rating.rounds_for_rater(session):
        wanted = round_.item_count * round_.raters_per_reply
        done = given.get(round_.id or 0, 0)
        if done < wanted or wanted == 0:
            out.append(WaitingRound(round_, done, wanted))
    return out
