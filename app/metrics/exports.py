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

The same rows as JSON Lines (``.jsonl``: one object per line, typed: numbers, true/false,
null for no value, times in ISO 8601) and Parquet (``.parquet``: typed columns, times in UTC;
for pandas, polars, DuckDB or R's arrow). Neither is a spreadsheet format, so text is kept as
it is. Their replies add the LLM judges' labels of each reply, four columns per judge (model
config x rubric version, named as on the Judges page, e.g. ``model-3-v2``):
``judge_<judge>_label``, ``judge_<judge>_verdict``, ``judge_<judge>_helpfulness``,
``judge_<judge>_confidence`` (null where that judge gave none). The parser's reading is
``parsed_verdict``.
"""

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlmodel import Session

from app.judging.service import label_counts
from app.metrics import aggregate as agg
from app.metrics import service, sources
from app.metrics.agreement import rater_pseudonyms
from app.metrics.schemas import MetricRow, RatingRecord, ReplyRecord, RunResults, SourceOut
from app.models import JudgeLabel, Reply, ReplyStatus, VariantTemplate

WHATS = ("metrics", "replies", "ratings")
FORMATS = ("csv", "jsonl", "parquet")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/jsonl",
    "parquet": "application/vnd.apache.parquet",
}
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
# The replies and ratings columns are the JSON API's record models, in the same order.
REPLIES_COLUMNS = list(ReplyRecord.model_fields)
RATINGS_COLUMNS = list(RatingRecord.model_fields)
COLUMNS = {"metrics": METRICS_COLUMNS, "replies": REPLIES_COLUMNS, "ratings": RATINGS_COLUMNS}
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
_BATCH = 1000
_TEMPLATES = VariantTemplate.__table__  # type: ignore[attr-defined]
_JUDGE_LABELS = JudgeLabel.__table__  # type: ignore[attr-defined]
_REPLIES = Reply.__table__  # type: ignore[attr-defined]
JUDGE_FIELDS = ("label", "verdict", "helpfulness", "confidence")

# Column types of the typed formats (Parquet), by export; any other column is text.
_RATE_INTEGERS = {f"{r}{suffix}" for r in RATES for suffix in ("_k", "_n", "_statements")}
_RATE_FLOATS = {f"{r}{suffix}" for r in RATES for suffix in ("", "_low", "_high", "_deff")}
_TYPES: dict[str, dict[str, str]] = {
    "metrics": {
        **dict.fromkeys(("run_id", "n", "rated", "unresolved", "unrated"), "int"),
        **dict.fromkeys(("helpfulness_n", "helpfulness_statements", *_RATE_INTEGERS), "int"),
        **dict.fromkeys(("helpfulness", "helpfulness_low", "helpfulness_high"), "float"),
        **dict.fromkeys(_RATE_FLOATS, "float"),
    },
    "replies": {
        **dict.fromkeys(("reply_id", "run_id", "question_id", "sample_index"), "int"),
        "n_ratings": "int",
        "mean_helpfulness": "float",
        **dict.fromkeys(
            ("truth", "premise_erroneous", "correct", "unresolved", "adjudicated"), "bool"
        ),
    },
    "ratings": {
        **dict.fromkeys(("rating_id", "reply_id", "run_id", "question_id"), "int"),
        "helpfulness": "int",
        "flagged": "bool",
        **dict.fromkeys(("created_at", "updated_at"), "time"),
    },
}
_JUDGE_TYPES = {"label": "text", "verdict": "text", "helpfulness": "int", "confidence": "float"}


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


def _reply_query(run_id: int) -> Select[Any]:
    reply = agg.replies_select([run_id]).subquery("reply")
    return (
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
    )


def _window(query: Select[Any], offset: int, limit: int | None) -> Select[Any]:
    """Rows offset .. offset + limit - 1 (all from offset when limit is None), streamed."""
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return query.execution_options(yield_per=_BATCH)


def _count(session: Session, query: Select[Any]) -> int:
    counted = select(func.count()).select_from(query.order_by(None).subquery())
    return int(session.scalar(counted) or 0)


def count_replies(session: Session, run_id: int) -> int:
    """The rows of reply_records: the run's done replies."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(agg.resp_t)
            .where(agg.resp_t.c.run_id == run_id, agg.resp_t.c.status == ReplyStatus.done.value)
        )
        or 0
    )


def reply_records(
    session: Session, run_id: int, offset: int = 0, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """One record per done reply (REPLIES_COLUMNS), by reply id; ``offset``/``limit``: a page."""
    arms = {a.id: a for a in service.arms_of(session, run_id)}
    query = _window(_reply_query(run_id), offset, limit)
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


@dataclass(frozen=True)
class JudgeColumns:
    """An LLM judge of the run (model config x rubric version) and its columns' prefix."""

    model_id: int
    version: str

    @property
    def prefix(self) -> str:
        return f"judge_model-{self.model_id}-{self.version}_"

    @property
    def columns(self) -> list[str]:
        return [self.prefix + name for name in JUDGE_FIELDS]


def run_judges(session: Session, run_id: int) -> list[JudgeColumns]:
    """The run's LLM judges, in model config and version order."""
    return [
        JudgeColumns(model_id, version) for model_id, version, *_ in label_counts(session, run_id)
    ]


def _with_judges(
    session: Session, rows: Iterator[dict[str, Any]], judges: list[JudgeColumns]
) -> Iterator[dict[str, Any]]:
    """Reply records with their judges' labels, read a batch of replies at a time."""
    wanted = {(j.model_id, j.version): j for j in judges}
    empty = {column: None for j in judges for column in j.columns}
    batch: list[dict[str, Any]] = []

    def flush() -> Iterator[dict[str, Any]]:
        by_reply: dict[int, dict[str, Any]] = {}
        ids = [record["reply_id"] for record in batch]
        j = _JUDGE_LABELS
        for row in session.execute(
            select(
                j.c.reply_id,
                j.c.judge_model_id,
                j.c.rubric_version,
                j.c.label,
                j.c.verdict,
                j.c.helpfulness,
                j.c.confidence,
            ).where(j.c.reply_id.in_(ids))
        ):
            judge = wanted.get((row.judge_model_id, row.rubric_version))
            if judge is None:
                continue
            values = by_reply.setdefault(row.reply_id, {})
            for name in JUDGE_FIELDS:
                values[judge.prefix + name] = getattr(row, name)
        for record in batch:
            yield record | empty | by_reply.get(record["reply_id"], {})
        batch.clear()

    for record in rows:
        batch.append(record)
        if len(batch) >= _BATCH:
            yield from flush()
    if batch:
        yield from flush()


def _rating_query(run_id: int) -> Select[Any]:
    r = agg.rating_t
    return (
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
    )


def count_ratings(session: Session, run_id: int) -> int:
    """The rows of rating_records: every rating of the run's replies."""
    return _count(session, _rating_query(run_id))


def rating_records(
    session: Session, run_id: int, offset: int = 0, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """One record per rating (RATINGS_COLUMNS), by rating id, raters as pseudonyms (R1, R2...
    over the whole run, so a page names them as every other page does)."""
    arms = {a.id: a.label for a in service.arms_of(session, run_id)}
    names = rater_pseudonyms(session, [run_id])
    query = _window(_rating_query(run_id), offset, limit)
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


def columns_of(session: Session, what: str, run_id: int) -> tuple[list[str], list[JudgeColumns]]:
    """The columns of a typed export (JSONL, Parquet): the CSV's, and the replies' judges."""
    if what != "replies":
        return list(COLUMNS[what]), []
    judges = run_judges(session, run_id)
    return [*COLUMNS[what], *(c for j in judges for c in j.columns)], judges


def typed_records(
    session: Session, what: str, run_id: int, source: sources.Source | None = None
) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """The columns and rows of a JSONL or Parquet export."""
    rows = records(session, what, run_id, source)
    columns, judges = columns_of(session, what, run_id)
    if judges:
        rows = _with_judges(session, rows, judges)
    return columns, rows


def _plain(value: Any) -> Any:
    """A value as JSON has it: no NaN, times in ISO 8601 (UTC)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return _utc(value).isoformat()
    return value


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive times; every stored time is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_line(record: dict[str, Any]) -> str:
    """One JSON Lines line; the Unicode line separators escaped (some readers split on them)."""
    text = json.dumps(record, ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"


def stream_jsonl(
    session: Session, what: str, run_id: int, source: sources.Source | None = None
) -> Iterator[str]:
    """One JSON object per line, keys in column order."""
    columns, rows = typed_records(session, what, run_id, source)
    lines: list[str] = []
    for record in rows:
        lines.append(_json_line({c: _plain(record.get(c)) for c in columns}))
        if len(lines) >= _BATCH:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)


def arrow_schema(what: str, columns: Sequence[str]) -> Any:
    """The Parquet schema of an export's columns (judge columns typed by their field)."""
    import pyarrow as pa

    kinds = {
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "time": pa.timestamp("us", tz="UTC"),
        "text": pa.string(),
    }
    fields = []
    for column in columns:
        kind = _TYPES[what].get(column, "text")
        if column.startswith("judge_"):
            kind = _JUDGE_TYPES[column.rsplit("_", 1)[1]]
        fields.append(pa.field(column, kinds[kind]))
    return pa.schema(fields)


class _Chunks:
    """A write-only file whose bytes are handed out as they are written (Parquet's sink)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def _cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return _utc(value)
    return value


def stream_parquet(
    session: Session, what: str, run_id: int, source: sources.Source | None = None
) -> Iterator[bytes]:
    """A Parquet file, one row group per batch of rows, sent as each is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns, rows = typed_records(session, what, run_id, source)
    schema = arrow_schema(what, columns)
    sink = _Chunks()
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        batch: list[dict[str, Any]] = []

        def write() -> None:
            data = {c: [_cell(record.get(c)) for record in batch] for c in columns}
            writer.write_table(pa.Table.from_pydict(data, schema=schema))
            batch.clear()

        for record in rows:
            batch.append(record)
            if len(batch) >= _BATCH:
                write()
                yield sink.take()
        if batch or not sink.position:
            write()
    yield sink.take()


def stream(
    session: Session, what: str, fmt: str, run_id: int, source: sources.Source | None = None
) -> Iterator[str] | Iterator[bytes]:
    if fmt == "csv":
        return stream_csv(session, what, run_id, source)
    if fmt == "jsonl":
        return stream_jsonl(session, what, run_id, source)
    if fmt == "parquet":
        return stream_parquet(session, what, run_id, source)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


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
