"""Rater agreement: Krippendorff's alpha, Cohen's and Fleiss' kappa, raters vs the majority,
and LLM judges against the human majority."""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlmodel import Session

from app.metrics import aggregate as agg
from app.metrics import stats
from app.metrics.replies import FloatArray, IntArray, Replies
from app.metrics.schemas import (
    AgreementOut,
    EstimateOut,
    JudgeRow,
    KappaPair,
    RateOut,
    RaterRow,
)
from app.models import JudgeLabel, ModelConfig, ReplyStatus

# --- Rater agreement -------------------------------------------------------------------------


def rater_pseudonyms(session: Session, run_ids: Sequence[int]) -> dict[int, str]:
    """R1, R2, ... by ascending user id among the raters of these runs."""
    t = agg.rater_tally_t
    ids = session.execute(
        select(t.c.rater_id)
        .where(t.c.run_id.in_(list(run_ids)), t.c.ratings > 0)
        .group_by(t.c.rater_id)
        .order_by(t.c.rater_id)
    ).scalars()
    return {rater_id: f"R{i}" for i, rater_id in enumerate(ids, start=1)}


def _sorted(found: tuple[IntArray, IntArray]) -> tuple[FloatArray, FloatArray]:
    """Patterns in ascending order (the bootstrap draws depend on it) and their unit counts."""
    counts, units = found
    ordered = sorted(zip(map(tuple, counts.tolist()), units.tolist(), strict=True))
    patterns = np.array([p for p, _ in ordered], dtype=np.float64).reshape(-1, counts.shape[1])
    return patterns, np.array([u for _, u in ordered], dtype=np.float64)


def agreement(
    session: Session, run_id: int, replies: Replies, *, resamples: int, seed: int
) -> AgreementOut:
    run_ids = [run_id]
    rated = replies.n_ratings > 0
    lp, lw = _sorted(replies.label_patterns(rated))
    hp, hw = _sorted(replies.help_patterns(rated))
    per_unit = lp.sum(axis=1)
    multi = int(lw[per_unit >= 2].sum()) if len(lw) else 0

    fleiss_value: float | None = None
    fleiss_units = fleiss_raters = 0
    if multi:
        sizes: dict[int, float] = defaultdict(float)
        for m, w in zip(per_unit, lw, strict=True):
            if m >= 2:
                sizes[int(m)] += w
        fleiss_raters = max(sizes, key=lambda m: (sizes[m], m))
        keep = per_unit == fleiss_raters
        fleiss_units = int(lw[keep].sum())
        fleiss_value = stats.fleiss_kappa(lp[keep], lw[keep].astype(np.int64))

    rater_rows = _rater_query(session, run_ids)
    names = {row.rater_id: f"R{i}" for i, row in enumerate(rater_rows, start=1)}
    return AgreementOut(
        rated_replies=int(lw.sum()) if len(lw) else 0,
        multi_rated_replies=multi,
        alpha_label=EstimateOut.model_validate(
            stats.krippendorff_alpha(lp, lw, "nominal", resamples=resamples, seed=seed)
        ),
        alpha_helpfulness=EstimateOut.model_validate(
            stats.krippendorff_alpha(hp, hw, "ordinal", resamples=resamples, seed=seed)
        ),
        fleiss_kappa=fleiss_value,
        fleiss_units=fleiss_units,
        fleiss_raters=fleiss_raters,
        pairs=_kappa_pairs(session, run_ids, names),
        raters=[_rater_row(row, names) for row in rater_rows],
        judges=_judge_rows(session, run_id),
    )


def _kappa_pairs(session: Session, run_ids: list[int], names: dict[int, str]) -> list[KappaPair]:
    t = agg.pair_tally_t
    rows = session.execute(
        select(
            t.c.rater_a.label("ra"),
            t.c.rater_b.label("rb"),
            t.c.label_a.label("label"),
            t.c.label_b.label("lb"),
            func.sum(t.c.count).label("count"),
        )
        .where(t.c.run_id.in_(run_ids), t.c.count > 0)
        .group_by(t.c.rater_a, t.c.rater_b, t.c.label_a, t.c.label_b)
    ).all()
    tables: dict[tuple[int, int], np.ndarray] = {}
    index = {label: i for i, label in enumerate(agg.LABELS)}
    for r in rows:
        table = tables.setdefault((r.ra, r.rb), np.zeros((3, 3)))
        table[index[r.label], index[r.lb]] += r.count
    pairs = sorted(tables.items())
    kappas = stats.cohens_kappas([table for _, table in pairs]) if pairs else []
    out = []
    for ((ra, rb), table), kappa in zip(pairs, kappas, strict=True):
        units = int(table.sum())
        out.append(
            KappaPair(
                rater_a=names.get(ra, "?"),
                rater_b=names.get(rb, "?"),
                units=units,
                observed=float(np.trace(table) / units) if units else None,
                kappa=kappa,
            )
        )
    return out


def _rater_query(session: Session, run_ids: list[int]) -> list[Any]:
    """Each rater's counts, kept per run by the rating domain (see app/rating/tallies.py)."""
    t = agg.rater_tally_t
    rows = session.execute(
        select(
            t.c.rater_id,
            func.sum(t.c.ratings).label("ratings"),
            func.sum(t.c.final_n).label("final_n"),
            func.sum(t.c.final_same).label("final_same"),
            func.sum(t.c.others_n).label("others_n"),
            func.sum(t.c.others_same).label("others_same"),
            func.sum(t.c.n_agree).label("agree"),
            func.sum(t.c.n_correct).label("correct"),
            func.sum(t.c.n_evasive).label("evasive"),
            func.sum(t.c.help_sum).label("help_sum"),
        )
        .where(t.c.run_id.in_(run_ids))
        .group_by(t.c.rater_id)
        .having(func.sum(t.c.ratings) > 0)
        .order_by(t.c.rater_id)
    ).all()
    return list(rows)


def _rater_row(row: Any, names: dict[int, str]) -> RaterRow:
    return RaterRow(
        rater=names[row.rater_id],
        ratings=int(row.ratings),
        with_final=RateOut.wilson(int(row.final_same), int(row.final_n)),
        with_others=RateOut.wilson(int(row.others_same), int(row.others_n)),
        label_agree=RateOut.wilson(int(row.agree), int(row.ratings)),
        label_correct=RateOut.wilson(int(row.correct), int(row.ratings)),
        label_evasive=RateOut.wilson(int(row.evasive), int(row.ratings)),
        mean_helpfulness=float(row.help_sum) / int(row.ratings) if row.ratings else None,
    )


def _judge_rows(session: Session, run_id: int) -> list[JudgeRow]:
    """Each judge (and rubric version) against the human label of the replies it labelled."""
    j = JudgeLabel.__table__  # type: ignore[attr-defined]
    mc = ModelConfig.__table__  # type: ignore[attr-defined]
    rc = agg.rating_counts([run_id])
    human = agg.Judgement(rc).label
    # Judges are named afterwards: joined here, model_configs would lead SQLite's plan and
    # scan the run's replies once per config.
    rows = session.execute(
        select(j.c.judge_model_id, j.c.rubric_version, j.c.label, human.label("human"))
        .add_columns(func.count().label("count"))
        .select_from(
            j.join(agg.resp_t, agg.resp_t.c.id == j.c.reply_id)
            .outerjoin(rc, rc.c.reply_id == agg.resp_t.c.id)
            .outerjoin(agg.adj_t, agg.adj_t.c.reply_id == agg.resp_t.c.id)
        )
        .where(
            agg.resp_t.c.run_id == run_id,
            agg.resp_t.c.status == ReplyStatus.done.value,
            j.c.label.is_not(None),
            human.is_not(None),
        )
        .group_by(j.c.judge_model_id, j.c.rubric_version, j.c.label, human)
    ).all()
    judge_ids = sorted({r.judge_model_id for r in rows})
    names: dict[int, str] = (
        dict(session.execute(select(mc.c.id, mc.c.name).where(mc.c.id.in_(judge_ids))).all())
        if judge_ids
        else {}
    )
    index = {label: i for i, label in enumerate(agg.LABELS)}
    tables: dict[tuple[str, str], np.ndarray] = {}
    for r in rows:
        if r.label not in index or r.human not in index:
            continue
        table = tables.setdefault((names[r.judge_model_id], r.rubric_version), np.zeros((3, 3)))
        table[index[r.label], index[r.human]] += r.count
    out = []
    for (name, version), table in sorted(tables.items()):
        units = int(table.sum())
        out.append(
            JudgeRow(
                judge=name,
                rubric_version=version,
                units=units,
                observed=float(np.trace(table) / units) if units else None,
                kappa=stats.cohens_kappa(table),
            )
        )
    return out
