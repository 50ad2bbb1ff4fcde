"""Rater agreement: Krippendorff's alpha, Cohen's and Fleiss' kappa, raters vs the majority,
and LLM judges against the human majority."""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.sql.selectable import FromClause
from sqlmodel import Session

from app.metrics import aggregate as agg
from app.metrics import stats
from app.metrics.schemas import (
    AgreementOut,
    EstimateOut,
    JudgeRow,
    KappaPair,
    RateOut,
    RaterRow,
)
from app.models import JudgeLabel, ModelConfig

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


def agreement(
    session: Session, run_ids: list[int], reply: FromClause, *, resamples: int, seed: int
) -> AgreementOut:
    label_cols = [reply.c[f"n_{label}"] for label in agg.LABELS]
    help_cols = [reply.c[f"h{s}"] for s in range(1, 6)]
    rated = reply.c.n_ratings > 0
    # One scan: label and helpfulness patterns together, split here (a few hundred rows).
    joint = session.execute(
        select(*label_cols, *help_cols, func.count().label("units"))
        .where(rated)
        .group_by(*label_cols, *help_cols)
    ).all()
    label_units: dict[tuple[int, ...], int] = defaultdict(int)
    help_units: dict[tuple[int, ...], int] = defaultdict(int)
    for row in joint:
        label_units[tuple(row[:3])] += row[8]
        help_units[tuple(row[3:8])] += row[8]
    label_patterns = sorted((*k, v) for k, v in label_units.items())
    help_patterns = sorted((*k, v) for k, v in help_units.items())
    lp = np.array([row[:3] for row in label_patterns], dtype=np.float64).reshape(-1, 3)
    lw = np.array([row[3] for row in label_patterns], dtype=np.float64)
    hp = np.array([row[:5] for row in help_patterns], dtype=np.float64).reshape(-1, 5)
    hw = np.array([row[5] for row in help_patterns], dtype=np.float64)
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
        judges=_judge_rows(session, reply),
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
    out = []
    for (ra, rb), table in sorted(tables.items()):
        units = int(table.sum())
        out.append(
            KappaPair(
                rater_a=names.get(ra, "?"),
                rater_b=names.get(rb, "?"),
                units=units,
                observed=float(np.trace(table) / units) if units else None,
                kappa=stats.cohens_kappa(table),
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


def _judge_rows(session: Session, reply: FromClause) -> list[JudgeRow]:
    j = JudgeLabel.__table__  # type: ignore[attr-defined]
    mc = ModelConfig.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        select(mc.c.name, j.c.rubric_version, j.c.label, reply.c.label.label("human"))
        .add_columns(func.count().label("count"))
        .select_from(
            j.join(reply, reply.c.response_id == j.c.response_id).join(
                mc, mc.c.id == j.c.judge_model_id
            )
        )
        .where(j.c.label.is_not(None), reply.c.label.is_not(None))
        .group_by(mc.c.name, j.c.rubric_version, j.c.label, reply.c.label)
    ).all()
    index = {label: i for i, label in enumerate(agg.LABELS)}
    tables: dict[tuple[str, str], np.ndarray] = {}
    for r in rows:
        if r.label not in index or r.human not in index:
            continue
        table = tables.setdefault((r.name, r.rubric_version), np.zeros((3, 3)))
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
