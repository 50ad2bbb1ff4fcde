"""Results pages, CSV downloads and the JSON API (admins only)."""

from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from sqlmodel import Session

from app.accounts.deps import AdminUser
from app.db import SessionDep, StreamSession
from app.judging.service import LabelCount, label_counts
from app.judging.service import panel as judge_panel
from app.metrics import compare, exports, pairwise, service, sources
from app.metrics.charts import charts_for
from app.metrics.forest import forest
from app.metrics.schemas import RatingRecord, ReplyRecord, RunResults
from app.web import (
    DEFAULT_LIMIT,
    INVALID,
    NOT_FOUND,
    DbId,
    Format,
    FormatQuery,
    Limit,
    Offset,
    Page,
    RunId,
    api_router,
    jsonl_doc,
    jsonl_response,
    page_limit,
    render,
)

router = APIRouter(tags=["metrics"])
_Record = TypeVar("_Record", bound=BaseModel)

SourceQuery = Annotated[
    str,
    Query(
        description="Whose labels: human (default), judge:<judge id> or ppi:<judge id> "
        "(judge ids as on the Judges page, e.g. parser)"
    ),
]


def _source(text: str) -> sources.Source:
    try:
        return sources.parse(text)
    except sources.BadSource as exc:
        raise HTTPException(422, str(exc)) from exc


def _results(
    session: Session,
    run_id: DbId,
    source: str = sources.HUMAN,
    counted: list[LabelCount] | None = None,
) -> RunResults:
    try:
        return service.run_results(session, run_id, source=_source(source), counted=counted)
    except service.RunNotFound as exc:
        raise HTTPException(404, f"No run {run_id}") from exc
    except sources.BadSource as exc:
        raise HTTPException(422, str(exc)) from exc


def _parse_runs(runs: str) -> list[int]:
    try:
        ids = [int(part) for part in runs.replace(" ", "").split(",") if part]
    except ValueError as exc:
        raise HTTPException(422, "runs must be comma-separated run ids, e.g. 1,2") from exc
    if not ids:
        raise HTTPException(422, "name at least one run, e.g. ?runs=1,2")
    return list(dict.fromkeys(ids))


def _context(results: list[RunResults]) -> dict[str, object]:
    return {
        "results": results,
        "charts": {r.run_id: charts_for(r.metrics) for r in results},
        "forests": {r.run_id: forest(r.headline) if r.headline else [] for r in results},
        "columns": exports.COLUMNS,
    }


@router.get("/results/runs/{run_id}", name="metrics.run_page")
def run_page(
    request: Request,
    run_id: DbId,
    user: AdminUser,
    session: SessionDep,
    source: SourceQuery = sources.HUMAN,
) -> Response:
    counted = label_counts(session, run_id)  # one scan, shared by the page's three parts
    results = [_results(session, run_id, source, counted)]
    return render(
        request,
        "metrics/run.html",
        {
            "title": results[0].run_name,
            **_context(results),
            "judge_panel": judge_panel(session, run_id, results[0].replies_done, counted),
            "pairwise": pairwise.run_pairwise(session, run_id),
            "pairwise_columns": pairwise.PAIRWISE_COLUMNS,
            "source_choices": sources.choices(session, run_id, counted),
        },
    )


# Pairwise choices: their own paths (a slash after "pairwise"), apart from the generic
# ``{what}.csv`` exports.


def _run_or_404(session: Session, run_id: int) -> None:
    try:
        service.get_run(session, run_id)
    except service.RunNotFound as exc:
        raise HTTPException(404, f"No run {run_id}") from exc


@router.get("/results/runs/{run_id}/pairwise/choices.csv", name="metrics.pairwise_csv")
def pairwise_csv(run_id: DbId, user: AdminUser, session: StreamSession) -> Response:
    """pairwise.csv: one row per pairwise choice (columns in app/metrics/pairwise.py)."""
    _run_or_404(session, run_id)
    return StreamingResponse(
        pairwise.stream_csv(session, run_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="run-{run_id}-pairwise.csv"'},
    )


@router.get("/api/runs/{run_id}/pairwise/choices", name="metrics.api_pairwise_choices")
def api_pairwise_choices(run_id: DbId, user: AdminUser, session: StreamSession) -> Response:
    """The pairwise choices as a JSON array (the rows of pairwise.csv)."""
    _run_or_404(session, run_id)
    return StreamingResponse(pairwise.stream_json(session, run_id), media_type="application/json")


# Labels every run has: the human ratings and the parser (an LLM judge's id is per run).
COMPARE_SOURCES = (
    (sources.HUMAN, "human ratings"),
    ("judge:parser", "the rule-based parser (a judge)"),
)


@router.get("/results/compare", name="metrics.compare_page")
def compare_page(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    runs: Annotated[
        list[str], Query(description="Run ids: repeated (runs=1&runs=2) or comma-separated")
    ] = [],  # noqa: B006 (FastAPI copies a query default)
    arms: Annotated[
        list[str], Query(description="run:arm pairs to show (default: every arm)")
    ] = [],  # noqa: B006
    source: SourceQuery = sources.HUMAN,
) -> Response:
    results = [_results(session, run_id, source) for run_id in _parse_runs(",".join(runs))]
    try:
        picked = compare.parse_arms(arms, results)
    except compare.UnknownArm as exc:
        raise HTTPException(422, str(exc)) from exc
    title = "Compare runs " + ", ".join(str(r.run_id) for r in results)
    return render(
        request,
        "metrics/compare.html",
        {
            "title": title,
            "results": results,
            "comparison": compare.comparison(results, picked),
            "source": source or sources.HUMAN,
            "source_choices": COMPARE_SOURCES,
        },
    )


def _check_what(what: str) -> None:
    if what not in exports.WHATS:
        raise HTTPException(404, f"No export {what!r}; choose {', '.join(exports.WHATS)}")


def _download(session: Session, run_id: int, what: str, fmt: str, source: str) -> StreamingResponse:
    _check_what(what)
    chosen = _source(source)
    try:
        service.get_run(session, run_id)
    except service.RunNotFound as exc:
        raise HTTPException(404, f"No run {run_id}") from exc
    if chosen.kind != sources.HUMAN:
        if what != "metrics":
            raise HTTPException(422, f"a source applies to metrics.{fmt} only")
        try:  # before streaming: an unknown judge is a 422, not a broken download
            sources.check(session, run_id, chosen)
        except sources.BadSource as exc:
            raise HTTPException(422, str(exc)) from exc
    return StreamingResponse(
        exports.stream(session, what, fmt, run_id, chosen),
        media_type=exports.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="run-{run_id}-{what}.{fmt}"'},
    )


@router.get("/results/runs/{run_id}/{what}.csv", name="metrics.download_csv")
def download_csv(
    run_id: DbId,
    what: str,
    user: AdminUser,
    session: StreamSession,
    source: SourceQuery = sources.HUMAN,
) -> Response:
    return _download(session, run_id, what, "csv", source)


@router.get("/results/runs/{run_id}/{what}.jsonl", name="metrics.download_jsonl")
def download_jsonl(
    run_id: DbId,
    what: str,
    user: AdminUser,
    session: StreamSession,
    source: SourceQuery = sources.HUMAN,
) -> Response:
    """The CSV's rows as JSON Lines, typed; replies add their LLM judges' labels."""
    return _download(session, run_id, what, "jsonl", source)


@router.get("/results/runs/{run_id}/{what}.parquet", name="metrics.download_parquet")
def download_parquet(
    run_id: DbId,
    what: str,
    user: AdminUser,
    session: StreamSession,
    source: SourceQuery = sources.HUMAN,
) -> Response:
    """The CSV's rows as Parquet, typed; replies add their LLM judges' labels."""
    return _download(session, run_id, what, "parquet", source)


@router.get("/api/runs/{run_id}/metrics", name="metrics.api_metrics")
def api_metrics(
    run_id: DbId, user: AdminUser, session: SessionDep, source: SourceQuery = sources.HUMAN
) -> JSONResponse:
    body = _results(session, run_id, source).model_dump(mode="json")
    # Pairwise choices are human only and apart from the single-reply labels (and from the
    # stored results snapshots): null when the run has none.
    found = pairwise.run_pairwise(session, run_id)
    body["pairwise"] = None if found is None else found.model_dump(mode="json")
    return JSONResponse(body)


@router.get("/api/runs/{run_id}/{what}", name="metrics.api_rows")
def api_rows(run_id: DbId, what: str, user: AdminUser, session: StreamSession) -> Response:
    if what not in ("replies", "ratings"):
        raise HTTPException(404, "choose metrics, replies or ratings")
    try:
        service.get_run(session, run_id)
    except service.RunNotFound as exc:
        raise HTTPException(404, f"No run {run_id}") from exc
    return StreamingResponse(
        exports.stream_json(session, what, run_id), media_type="application/json"
    )


# -- /api/v1 -----------------------------------------------------------------------------------

api = api_router("results")


@api.get(
    "/runs/{run_id}/metrics",
    name="metrics.v1_metrics",
    responses={**NOT_FOUND, **INVALID},
    summary="A run's results: each rate per arm x variant kind with its 95 % CI",
    description="The same figures as the results page: `metrics` (one row per arm x kind, "
    "each rate k of n with its CI, the CI's method and design effect), the paired tests "
    "against the baseline, flips, pushback, rater agreement and the headline. "
    "`pd.json_normalize(body['metrics'])` gives one column per rate field.",
)
def v1_metrics(
    run_id: RunId, _user: AdminUser, session: SessionDep, source: SourceQuery = sources.HUMAN
) -> RunResults:
    return _results(session, run_id, source)


def _page_or_stream(
    model: type[_Record],
    records: Iterator[dict[str, Any]],
    total: Callable[[], int],
    offset: int,
    limit: int | None,
    fmt: Format,
) -> Page[_Record] | Response:
    """Records as one page of ``model`` (with the total), or streamed as JSON Lines."""
    rows = (model.model_validate(r) for r in records)
    if fmt == Format.jsonl:
        return jsonl_response(rows)
    return Page[model](  # type: ignore[valid-type]
        total=total(), offset=offset, limit=limit or DEFAULT_LIMIT, items=list(rows)
    )


@api.get(
    "/runs/{run_id}/replies",
    name="metrics.v1_replies",
    summary="A run's done replies with their aggregated labels, by reply id (paged)",
    description="One row per done reply: the statement, the prompt and the reply, the parsed "
    "verdict, and what the raters made of it (label: adjudicated, else the majority; "
    "mean helpfulness; the number of ratings). The columns of replies.csv.",
    response_model=Page[ReplyRecord],
    responses={**NOT_FOUND, **jsonl_doc(ReplyRecord.model_json_schema()["examples"][0])},
)
def v1_replies(
    run_id: RunId,
    _user: AdminUser,
    session: StreamSession,
    offset: Offset = 0,
    limit: Limit = None,
    fmt: FormatQuery = Format.json,
) -> Page[ReplyRecord] | Response:
    _run_or_404(session, run_id)
    records = exports.reply_records(session, run_id, offset, page_limit(limit, fmt))
    total = lambda: exports.count_replies(session, run_id)  # noqa: E731
    return _page_or_stream(ReplyRecord, records, total, offset, limit, fmt)


@api.get(
    "/runs/{run_id}/ratings",
    name="metrics.v1_ratings",
    summary="A run's ratings as the raters gave them, raters pseudonymous (paged)",
    description="One row per rating, by rating id: the label, helpfulness (1-5), the "
    "rater's reading of the verdict, the note and flag. Raters are R1, R2... within the run "
    "(by ascending account id), never names or e-mails. The columns of ratings.csv.",
    response_model=Page[RatingRecord],
    responses={**NOT_FOUND, **jsonl_doc(RatingRecord.model_json_schema()["examples"][0])},
)
def v1_ratings(
    run_id: RunId,
    _user: AdminUser,
    session: StreamSession,
    offset: Offset = 0,
    limit: Limit = None,
    fmt: FormatQuery = Format.json,
) -> Page[RatingRecord] | Response:
    _run_or_404(session, run_id)
    records = exports.rating_records(session, run_id, offset, page_limit(limit, fmt))
    total = lambda: exports.count_ratings(session, run_id)  # noqa: E731
    return _page_or_stream(RatingRecord, records, total, offset, limit, fmt)
