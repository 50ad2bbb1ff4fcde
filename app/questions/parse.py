"""Read an uploaded CSV or JSONL question file into validated rows (nothing is saved here)."""

from typing import Any

from app.questions.dedupe import hash_normalised, normalise
from app.questions.schemas import (
    KNOWN_COLUMNS,
    REQUIRED_COLUMNS,
    ParsedRow,
    ParsedUpload,
)
from app.uploads.records import read_records, text_values
from app.uploads.schemas import RowError

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})
# The spellings files usually have, looked up before the general parse_truth.
_SPELLINGS = {w: True for w in TRUE_WORDS} | {w: False for w in FALSE_WORDS}
_SPELLINGS |= {w.capitalize(): v for w, v in _SPELLINGS.items()}
_SPELLINGS |= {w.upper(): v for w, v in _SPELLINGS.items()}
MAX_LENGTHS = {"statement": 2000, "negation": 2000, "id": 120, "category": 80, "explanation": 4000}


def parse_truth(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().casefold()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None


def parse_text(text: str, upload: ParsedUpload) -> None:
    """Fill ``upload.rows`` and ``upload.errors`` from decoded text."""
    if not text.strip():
        upload.errors.append(RowError(None, "", "The file is empty."))
        return
    records = read_records(text, upload, check_columns, KNOWN_COLUMNS)
    seen_ids: dict[str, int] = {}
    for position, line, record in records:
        row = _validate(position, line, record, upload.errors, seen_ids)
        if row is not None:
            upload.rows.append(row)
    if not upload.errors and not upload.rows:
        upload.errors.append(RowError(None, "", "The file has a header but no rows."))


def check_columns(columns: list[str], errors: list[RowError], warnings: list[str]) -> bool:
    repeated = sorted({c for c in columns if c and columns.count(c) > 1})
    if repeated:
        errors.append(
            RowError(None, "", f"The header repeats the column(s): {', '.join(repeated)}.")
        )
        return False
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        errors.append(
            RowError(
                None,
                "",
                f"Missing required column(s): {', '.join(missing)}. "
                f"The header must name statement and truth "
                f"(optional: id, category, explanation, negation); found: "
                f"{', '.join(c for c in columns if c) or 'nothing'}.",
            )
        )
        return False
    unknown = [c for c in columns if c and c not in KNOWN_COLUMNS]
    if unknown:
        warnings.append(f"Ignored unknown column(s): {', '.join(unknown)}.")
    return True


def _validate(
    position: int,
    line: int,
    record: dict[str, Any],
    errors: list[RowError],
    seen_ids: dict[str, int],
) -> ParsedRow | None:
    before = len(errors)
    values = text_values(record, MAX_LENGTHS, position, line, errors)
    statement = values["statement"]
    if statement == "":
        errors.append(RowError(position, "statement", "is empty", line))
    raw_truth = record.get("truth")
    truth = _SPELLINGS.get(raw_truth) if type(raw_truth) is str else None
    if truth is None:
        truth = parse_truth(raw_truth)
    if truth is None:
        if raw_truth is None or (isinstance(raw_truth, str) and not raw_truth.strip()):
            errors.append(RowError(position, "truth", "is empty", line))
        else:
            errors.append(
                RowError(
                    position,
                    "truth",
                    f"{str(raw_truth)[:40]!r} is not a truth value "
                    "(use true/false, t/f, yes/no or 1/0)",
                    line,
                )
            )
    source_id = values["id"]
    if source_id:
        if source_id in seen_ids:
            errors.append(
                RowError(position, "id", f"{source_id!r} repeats row {seen_ids[source_id]}", line)
            )
        else:
            seen_ids[source_id] = position
    negation = values["negation"]
    normalised = normalise(statement) if statement else ""
    if normalised and negation and normalise(negation) == normalised:
        errors.append(RowError(position, "negation", "repeats the statement", line))
    if len(errors) > before or truth is None or not statement:
        return None
    # In field order, positionally: a class called with keywords costs three times as much
    # (CPython builds a dict per call), which shows at 100,000 rows.
    return ParsedRow(
        position,
        statement,
        truth,
        source_id or "",
        values["category"] or "",
        values["explanation"] or "",
        negation or "",
        hash_normalised(normalised),
        normalised,
    )
