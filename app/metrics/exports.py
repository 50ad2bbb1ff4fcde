"""CSV and JSON downloads, streamed from a server-side cursor in constant memory.

Columns (UTF-8, comma-separated, one header row; empty cell = no value):

metrics.csv: one row per run x arm x variant kind ("all" = every kind).
    run_id, arm, model, kind; n (done replies), rated (with a rating or adjudication),
    unresolved (rated, but tied labels and no adjudication), unrated; then for each rate
    accuracy, sycophancy_all, sycophancy_erroneous, correction_all, correction_erroneous,
    agree_true_premise, evasion: ``<rate>`` (fraction 0-1), ``<rate>_low``, ``<rate>_high``
    (95 % CI; empty when not estimable), ``<rate>_k``, ``<rate>_n`` (numerator, denominator:
    replies), ``<rate>_statements`` (statements behind the rate), ``<rate>_deff`` (design
    effect: the clustered variance over a binomial's with n replies), ``<rate>_method`` (how
    the CI was made: "statement bootstrap (percentile, B=2000)", or Wilson where each
    statement gave one reply);
    helpfulness, helpfulness_low, helpfulness_high (mean on the 1-5 scale, bootstrap 95 % CI
    clustered by statement), helpfulness_n, helpfulness_statements.
    ``*_all`` is the paper's form (over all rated replies); ``*_erroneous`` is over replies to
    prompts whose premise is erroneous.
    source (``human``, ``judge:<id>`` or ``ppi:<id>``: whose labels the rates count, see
    app/metrics/sources.py), source_status (empty for humans, else "validated" or "not
    validated"), source_note (the validation's reason). With a ``ppi:`` source there is one
    row per arm (kind "all") with only the rates PPI gives (accuracy, sycophancy_erroneous,
    agree_true_premise, evasion): ``<rate>_n`` is the replies, ``<rate>_k`` the human-labelled
    ones among them, ``<rate>_method`` says PPI++ and the effective number of human ratings.

replies.csv: one row per done reply.
    reply_id, run_id, question_id, source_id, statement, truth, variant_kind, stance,
    premise_erroneous, arm, model, sample_index, prompt (the first user turn), reply,
    first_reply (pushback: the answer before "Are you sure?"), parsed_verdict, first_verdict,
    verdict (effective: adjudicated, else the raters' majority, else parsed), correct,
    label (aggregated: adjudicated, else majority; empty when unresolved or unrated),
    unresolved, mean_helpfulness (1-5), n_ratings, adjudicated, template (the variant
    template's name; empty for imported replies).

ratings.csv: one row per rating (raw).
    rating_id, reply_id, run_id, question_id, variant_kind, arm, rater (pseudonym R1, R2...
    by ascending account id among the run's raters), label, helpfulness, verdict, note,
    flagged, created_at, updated_at.

Text cells starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return are prefixed with
``'`` so spreadsheets do not run them as formulas.
"""

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from app.metrics import aggregate as agg
from app.metrics import service, sources
from app.metrics.agreement import rater_pseudonyms
from app.metrics.schemas import MetricRow, RunResults, SourceOut
from app.models import VariantTemplate

WHATS = ("metrics", "replies", "ratings")
RATES = (
    "accuracy",
    "sycophancy_all",
    "sycophancy_erroneous",
    "correction_all",
    "correction_erroneous",
    "agree_true_premise",
    "evasion",
)
RATE_SUFFIXES = ("", "_low", "_high", "_k", "_n", "_statements", "_deff", "_method")
METRICS_COLUMNS = [
    "run_id",
    "arm",
    "model",
    "kind",
    "n",
    "rated",
    "unresolved",
    "unrated",
    *[f"{r}{suffix}" for r in RATES for suffix in RATE_SUFFIXES],
    "helpfulness",
    "helpfulness_low",
    "helpfulness_high",
    "helpfulness_n",
    "helpfulness_statements",
    "source",
    "source_status",
    "source_note",
]
REPLIES_COLUMNS = [
    "reply_id",
    "run_id",
    "question_id",
    "source_id",
    "statement",
    "truth",
    "variant_kind",
    "stance",
    "premise_erroneous",
    "arm",
    "model",
    "sample_index",
    "prompt",
    "reply",
    "first_reply",
    "parsed_verdict",
    "first_verdict",
    "verdict",
    "correct",
    "label",
    "unresolved",
    "mean_helpfulness",
    "n_ratings",
    "adjudicated",
    "template",
]
RATINGS_COLUMNS = [
    "rating_id",
    "reply_id",
    "run_id",
    "question_id",
    "variant_kind",
    "arm",
    "rater",
    "label",
    "helpfulness",
    "verdict",
    "note",
    "flagged",
    "created_at",
    "updated_at",
]
COLUMNS = {"metrics": METRICS_COLUMNS, "replies": REPLIES_COLUMNS, "ratings": RATINGS_COLUMNS}
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
_BATCH = 1000
_TEMPLATES = VariantTemplate.__table__  # type: ignore[attr-defined]


def neutralise(value: Any) -> Any:
    """A text cell a spreadsheet would treat as a formula gets a leading apostrophe."""
    # Spreadsheets skip leading blanks and line breaks before deciding it is a formula.
    if isinstance(value, str) and (
        value.startswith(_DANGEROUS) or value.lstrip().startswith(_DANGEROUS)
    ):
        return "'" + value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _source_columns(source: SourceOut | None) -> dict[str, Any]:
    source = source or SourceOut()
    return {"source": source.key, "source_status": source.status, "source_note": source.reason}


def metric_records(
    rows: Iterable[MetricRow], source: SourceOut | None = None
) -> Iterator[dict[str, Any]]:
    for m in rows:
        record: dict[str, Any] = {
            "run_id": m.run_id,
            "arm": m.arm,
            "model": m.model,
            "kind": m.kind,
            "n": m.n,
            "rated": m.rated,
            "unresolved": m.unresolved,
            "unrated": m.unrated,
        }
        for name in RATES:
            rate = getattr(m, name)
            record.update(
                {
                    name: rate.value,
                    f"{name}_low": rate.low,
                    f"{name}_high": rate.high,
                    f"{name}_k": rate.k,
                    f"{name}_n": rate.n,
                    f"{name}_statements": rate.statements,
                    f"{name}_deff": rate.design_effect,
                    f"{name}_method": rate.method,
                }
            )
        record.update(
            helpfulness=m.helpfulness.value,
            helpfulness_low=m.helpfulness.low,
            helpfulness_high=m.helpfulness.high,
            helpfulness_n=m.helpfulness.n,
            helpfulness_statements=m.helpfulness.clusters,
            **_source_columns(source),
        )
        yield record


def ppi_records(results: RunResults) -> Iterator[dict[str, Any]]:
    """One row per arm: the PPI rates, in the metric columns (see the module's docstring)."""
    models = {a.label: a.model for a in results.arms}
    rows: dict[str, dict[str, Any]] = {}
    for e in results.ppi:
        record = rows.setdefault(
            e.arm,
            {
                "run_id": results.run_id,
                "arm": e.arm,
                "model": models.get(e.arm, ""),
                "kind": "all",
                **_source_columns(results.source),
            },
        )
        effective = (
            "" if e.effective_n is None else f"; worth about {e.effective_n:.0f} human ratings"
        )
        record.update(
            {
                e.rate: e.ppi.value,
                f"{e.rate}_low": e.ppi.low,
                f"{e.rate}_high": e.ppi.high,
                f"{e.rate}_k": e.human_labelled,
                f"{e.rate}_n": e.replies,
                f"{e.rate}_statements": e.statements,
                f"{e.rate}_method": f"PPI++ clustered by statement (normal 95 % CI){effective}",
            }
        )
    yield from rows.values()


def _first_user_turn(messages: Any) -> str:
    if isinstance(messages, str):
        messages = json.loads(messages)
    for message in messages or []:
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def reply_records(session: Session, run_id: int) -> Iterator[dict[str, Any]]:
    arms = {a.id: a for a in service.arms_of(session, run_id)}
    reply = agg.replies_select([run_id]).subquery("reply")
    query = (
        select(
            reply,
            agg.q_t.c.source_id,
            agg.q_t.c.statement,
            agg.q_t.c.truth,
            agg.pv_t.c.messages,
            agg.resp_t.c.text,
            agg.resp_t.c.first_text,
            agg.resp_t.c.verdict.label("parsed_verdict"),
            agg.resp_t.c.first_verdict,
            agg.adj_t.c.id.label("adjudication_id"),
            _TEMPLATES.c.name.label("template_name"),
        )
        .select_from(
            reply.join(agg.resp_t, agg.resp_t.c.id == reply.c.reply_id)
            .join(agg.pv_t, agg.pv_t.c.id == reply.c.prompt_variant_id)
            .join(agg.q_t, agg.q_t.c.id == reply.c.question_id)
            .outerjoin(agg.adj_t, agg.adj_t.c.reply_id == reply.c.reply_id)
            .outerjoin(_TEMPLATES, _TEMPLATES.c.id == agg.pv_t.c.template_id)
        )
        .order_by(reply.c.reply_id)
        .execution_options(yield_per=_BATCH)
    )
    for r in session.execute(query):
        arm = arms.get(r.arm_id)
        yield {
            "reply_id": r.reply_id,
            "run_id": r.run_id,
            "question_id": r.question_id,
            "source_id": r.source_id,
            "statement": r.statement,
            "truth": bool(r.truth),
            "variant_kind": r.kind,
            "stance": r.stance,
            "premise_erroneous": bool(r.erroneous),
            "arm": arm.label if arm else "",
            "model": arm.model if arm else "",
            "sample_index": r.sample_index,
            "prompt": _first_user_turn(r.messages),
            "reply": r.text,
            "first_reply": r.first_text,
            "parsed_verdict": r.parsed_verdict,
            "first_verdict": r.first_verdict,
            "verdict": r.verdict,
            "correct": bool(r.correct),
            "label": r.label,
            "unresolved": bool(r.unresolved),
            "mean_helpfulness": r.helpfulness,
            "n_ratings": r.n_ratings,
            "adjudicated": r.adjudication_id is not None,
            "template": r.template_name or "",
        }


def rating_records(session: Session, run_id: int) -> Iterator[dict[str, Any]]:
    arms = {a.id: a.label for a in service.arms_of(session, run_id)}
    names = rater_pseudonyms(session, [run_id])
    r = agg.rating_t
    query = (
        select(
            r,
            agg.resp_t.c.arm_id,
            agg.pv_t.c.question_id,
            agg.pv_t.c.kind,
        )
        .select_from(
            r.join(agg.resp_t, agg.resp_t.c.id == r.c.reply_id).join(
                agg.pv_t, agg.pv_t.c.id == agg.resp_t.c.prompt_variant_id
            )
        )
        .where(agg.resp_t.c.run_id == run_id)
        .order_by(r.c.id)
        .execution_options(yield_per=_BATCH)
    )
    for row in session.execute(query):
        yield {
            "rating_id": row.id,
            "reply_id": row.reply_id,
            "run_id": run_id,
            "question_id": row.question_id,
            "variant_kind": row.kind,
            "arm": arms.get(row.arm_id, ""),
            "rater": names.get(row.rater_id, ""),
            "label": row.label,
            "helpfulness": row.helpfulness,
            "verdict": row.verdict,
            "note": row.note,
            "flagged": bool(row.flagged),
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }


def records(
    session: Session, what: str, run_id: int, source: sources.Source | None = None
) -> Iterator[dict[str, Any]]:
    """``source``: of the metrics (the other exports are the raw replies and ratings)."""
    service.get_run(session, run_id)
    if what == "metrics":
        # The same computation as the results page, so a stored snapshot serves both.
        results = service.run_results(session, run_id, source=source)
        if results.source.kind == "ppi":
            return ppi_records(results)
        return metric_records(results.metrics, results.source)
    if what == "replies":
        return reply_records(session, run_id)
    if what == "ratings":
        return rating_records(session, run_id)
    raise ValueError(f"unknown export {what!r}; choose one of {', '.join(WHATS)}")


def _csv_chunks(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for i, record in enumerate(rows, start=1):
        writer.writerow([neutralise(record.get(c)) for c in columns])
        if i % _BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def stream_csv(
    session: Session, what: str, run_id: int, source: sources.Source | None = None
) -> Iterator[str]:
    return _csv_chunks(COLUMNS[what], records(session, what, run_id, source))


def stream_json(session: Session, what: str, run_id: int) -> Iterator[str]:
    """A JSON array, written record by record."""
    yield "["
    for i, record in enumerate(records(session, what, run_id)):
        yield ("," if i else "") + json.dumps(record, default=str)
    yield "]"
