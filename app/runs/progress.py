"""What the run pages show: runs, their arms, progress by status, the replies table."""

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, func, select
from sqlmodel import Session, col

from app.models import Run, RunArm, RunStatus, utcnow
from app.runs.schemas import ArmProgress, RunProgress
from app.runs.service import CANCELLED, DONE, FAILED, PENDING, RATE_WINDOW_S, REPLIES, VARIANTS


def list_runs(session: Session, limit: int | None = 200, offset: int = 0) -> list[Run]:
    """Newest first; ``limit`` None: every run from ``offset`` on."""
    query = select(Run).order_by(col(Run.id).desc()).offset(offset)
    return list(session.scalars(query if limit is None else query.limit(limit)))


def count_runs(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Run)) or 0)


def arms_of(session: Session, run_id: int) -> list[RunArm]:
    return list(
        session.scalars(
            select(RunArm).where(col(RunArm.run_id) == run_id).order_by(col(RunArm.position))
        )
    )


def status_counts(session: Session, run_ids: list[int]) -> dict[int, dict[str, int]]:
    """{run id: {status: replies}} for a page of runs, in one query."""
    counts: dict[int, dict[str, int]] = {rid: {} for rid in run_ids}
    if not run_ids:
        return counts
    rows = session.execute(
        select(REPLIES.c.run_id, REPLIES.c.status, func.count())
        .where(REPLIES.c.run_id.in_(run_ids))
        .group_by(REPLIES.c.run_id, REPLIES.c.status)
    ).all()
    for run_id, status, n in rows:
        counts[run_id][status] = int(n)
    return counts


def progress_of(session: Session, run: Run) -> RunProgress:
    assert run.id is not None
    arms = arms_of(session, run.id)
    result = RunProgress(run_id=run.id, status=run.status)
    per_arm = {
        arm.id: ArmProgress(
            arm_id=arm.id or 0, label=arm.label, model=str(arm.snapshot.get("name", ""))
        )
        for arm in arms
    }
    rows = session.execute(
        select(
            REPLIES.c.arm_id,
            REPLIES.c.status,
            func.count(),
            func.coalesce(func.sum(REPLIES.c.tokens_in), 0),
            func.coalesce(func.sum(REPLIES.c.tokens_out), 0),
            func.coalesce(func.sum(REPLIES.c.cost_usd), 0.0),
            func.sum(case((REPLIES.c.error != "", 1), else_=0)),
        )
        .where(REPLIES.c.run_id == run.id)
        .group_by(REPLIES.c.arm_id, REPLIES.c.status)
    ).all()
    for arm_id, status, n, tin, tout, cost, with_error in rows:
        n, tin, tout, cost = int(n), int(tin), int(tout), float(cost)
        arm_progress = per_arm.get(arm_id)
        result.total += n
        if status in (DONE, FAILED, PENDING, CANCELLED):
            setattr(result, status, getattr(result, status) + n)
        if status == PENDING:
            result.retrying += int(with_error or 0)
        result.tokens_in += tin
        result.tokens_out += tout
        result.cost_usd += cost
        if arm_progress is not None:
            if status in (DONE, FAILED, PENDING):
                setattr(arm_progress, status, getattr(arm_progress, status) + n)
            arm_progress.tokens_in += tin
            arm_progress.tokens_out += tout
            arm_progress.cost_usd += cost
    result.arms = list(per_arm.values())
    if run.status == RunStatus.running.value and result.pending:
        since = utcnow() - timedelta(seconds=RATE_WINDOW_S)
        recent = session.execute(
            select(func.count(), func.min(REPLIES.c.completed_at)).where(
                REPLIES.c.run_id == run.id,
                REPLIES.c.status == DONE,
                REPLIES.c.completed_at >= since,
            )
        ).one()
        done_recently = int(recent[0])
        if done_recently:
            window = max(1.0, (utcnow() - max(since, run.created_at)).total_seconds())
            result.rate_per_s = done_recently / window
            result.eta_s = result.pending / result.rate_per_s
    return result


@dataclass
class ReplyRow:
    id: int
    status: str
    arm: str
    kind: str
    stance: str
    prompt: str
    text: str
    verdict: str
    sample_index: int
    error: str
    attempts: int


def replies(
    session: Session, run_id: int, *, status: str | None = None, page: int = 1, per_page: int = 50
) -> tuple[list[ReplyRow], int]:
    """A page of a run's replies with their prompt and arm; and the number of matching rows."""
    where = [REPLIES.c.run_id == run_id]
    if status:
        where.append(REPLIES.c.status == status)
    total = int(session.execute(select(func.count()).where(*where)).scalar_one())
    arms = RunArm.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        select(
            REPLIES.c.id,
            REPLIES.c.status,
            arms.c.label,
            VARIANTS.c.kind,
            VARIANTS.c.stance,
            VARIANTS.c.messages,
            REPLIES.c.text,
            REPLIES.c.verdict,
            REPLIES.c.sample_index,
            REPLIES.c.error,
            REPLIES.c.attempts,
        )
        .join(VARIANTS, VARIANTS.c.id == REPLIES.c.prompt_variant_id)
        .join(arms, arms.c.id == REPLIES.c.arm_id)
        .where(*where)
        .order_by(REPLIES.c.prompt_variant_id, arms.c.position, REPLIES.c.sample_index)
        .limit(per_page)
        .offset((max(1, page) - 1) * per_page)
    ).all()
    out = [
        ReplyRow(
            id=r[0],
            status=r[1],
            arm=r[2],
            kind=r[3],
            stance=r[4],
            prompt=str((r[5] or [{}])[-1].get("content", "")),
            text=r[6],
            verdict=r[7],
            sample_index=r[8],
            error=r[9],
            attempts=r[10],
        )
        for r in rows
    ]
    return out, total
