"""Read an uploaded CSV or JSONL question file into validated rows (nothing is saved here)."""

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

from app.questions.dedupe import hash_normalised, normalise
from app.questions.schemas import (
    KNOWN_COLUMNS,
    REQUIRED_COLUMNS,
    ParsedRow,
    ParsedUpload,
    RowError,
)

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})
MAX_LENGTHS = {"statement": 2000, "negation": 2000, "id": 120, "category": 80, "explanation": 4000}
CHUNK = 1024 * 1024


class UploadTooLarge(ValueError):
    pass


def read_limited(data: bytes | IO[bytes], limit: int) -> bytes:
    """The file's bytes, refusing (without reading on) as soon as it passes ``limit``."""
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > limit:
            raise UploadTooLarge(_too_large(limit))
        return raw
    buffer = bytearray()
    while chunk := data.read(min(CHUNK, limit + 1 - len(buffer))):
        buffer += chunk
        if len(buffer) > limit:
            raise UploadTooLarge(_too_large(limit))
    return bytes(buffer)


def _too_large(limit: int) -> str:
    return f"The file is larger than the upload limit of {_size(limit)}."


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} bytes"


def decode(raw: bytes) -> str:
    """UTF-8 with or without a BOM; anything else is refused with the offending position."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError("The file is UTF-16 encoded; save it as UTF-8 and upload it again.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"The file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} on line {line}); "
            "save it as UTF-8 and upload it again."
        ) from exc
    if "\x00" in text:
        raise ValueError("The file contains NUL bytes; it does not look like a text file.")
    return text


def detect_format(filename: str, text: str) -> str:
    lower = filename.lower()
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lower.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def sniff_delimiter(header_line: str) -> str:
    """Comma, semicolon or tab: whichever the header uses most (outside quotes)."""
    counts = {",": 0, ";": 0, "\t": 0}
    quoted = False
    for ch in header_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


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


def parse_text(filename: str, text: str, upload: ParsedUpload) -> None:
    """Fill ``upload.rows`` and ``upload.errors`` from decoded text."""
    if not text.strip():
        upload.errors.append(RowError(None, "", "The file is empty."))
        return
    upload.format = detect_format(filename, text)
    if upload.format == "jsonl":
        records: Iterable[tuple[int, int, dict[str, Any]]] = _jsonl_records(text, upload)
    else:
        records = _csv_records(text, upload)
    seen_ids: dict[str, int] = {}
    for position, line, record in records:
        row = _validate(position, line, record, upload.errors, seen_ids)
        if row is not None:
            upload.rows.append(row)
    if not upload.errors and not upload.rows:
        upload.errors.append(RowError(None, "", "The file has a header but no rows."))


def _csv_records(text: str, upload: ParsedUpload) -> Iterator[tuple[int, int, dict[str, Any]]]:
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    upload.delimiter = sniff_delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=upload.delimiter)
    try:
        header = next(reader)
        while not any(cell.strip() for cell in header):
            header = next(reader)
    except StopIteration:
        upload.errors.append(RowError(None, "", "The file is empty."))
        return
    except csv.Error as exc:
        upload.errors.append(RowError(None, "", f"The header cannot be read as CSV: {exc}"))
        return
    columns = [cell.strip().casefold() for cell in header]
    if not _check_columns(columns, upload):
        return
    position = 0
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            position += 1
            if len(cells) > len(columns):
                upload.errors.append(
                    RowError(
                        position,
                        "",
                        f"has {len(cells)} fields but the header has {len(columns)}"
                        " (an unquoted delimiter inside a value?)",
                        reader.line_num,
                    )
                )
                continue
            yield position, reader.line_num, dict(zip(columns, cells, strict=False))
    except csv.Error as exc:
        upload.errors.append(
            RowError(position + 1, "", f"cannot be read as CSV: {exc}", reader.line_num)
        )


def _check_columns(columns: list[str], upload: ParsedUpload) -> bool:
    repeated = sorted({c for c in columns if c and columns.count(c) > 1})
    if repeated:
        upload.errors.append(
            RowError(None, "", f"The header repeats the column(s): {', '.join(repeated)}.")
        )
        return False
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        upload.errors.append(
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
        upload.warnings.append(f"Ignored unknown column(s): {', '.join(unknown)}.")
    return True


def _jsonl_records(text: str, upload: ParsedUpload) -> Iterator[tuple[int, int, dict[str, Any]]]:
    position = 0
    unknown: set[str] = set()
    checked_columns = False
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        position += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            upload.errors.append(RowError(position, "", f"is not valid JSON: {exc.msg}", line_no))
            continue
        if not isinstance(record, dict):
            upload.errors.append(RowError(position, "", "is not a JSON object", line_no))
            continue
        record = {str(k).strip().casefold(): v for k, v in record.items()}
        if not checked_columns:
            checked_columns = True
            if any(c not in record for c in REQUIRED_COLUMNS):
                _check_columns(list(record), upload)
                return
        unknown.update(k for k in record if k not in KNOWN_COLUMNS)
        yield position, line_no, record
    if unknown:
        upload.warnings.append(f"Ignored unknown field(s): {', '.join(sorted(unknown))}.")


def _text_values(
    record: dict[str, Any], position: int, line: int, errors: list[RowError]
) -> dict[str, str | None]:
    """Each text column stripped; None (and an error) when a value is not text or too long."""
    values: dict[str, str | None] = {}
    for column, limit in MAX_LENGTHS.items():
        value = record.get(column)
        if value is None:
            values[column] = ""
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            errors.append(RowError(position, column, "must be text", line))
            values[column] = None
            continue
        text = value.strip() if type(value) is str else str(value)
        if len(text) > limit:
            errors.append(RowError(position, column, f"is longer than {limit} characters", line))
            values[column] = None
            continue
        values[column] = text
    return values


def _validate(
    position: int,
    line: int,
    record: dict[str, Any],
    errors: list[RowError],
    seen_ids: dict[str, int],
) -> ParsedRow | None:
    before = len(errors)
    values = _text_values(record, position, line, errors)
    statement = values["statement"]
    if statement == "":
        errors.append(RowError(position, "statement", "is empty", line))
    raw_truth = record.get("truth")
    truth = parse_truth(raw_truth)
    if raw_truth is None or (isinstance(raw_truth, str) and not raw_truth.strip()):
        errors.append(RowError(position, "truth", "is empty", line))
    elif truth is None:
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
    return ParsedRow(
        position=position,
        statement=statement,
        truth=truth,
        source_id=source_id or "",
        category=values["category"] or "",
        explanation=values["explanation"] or "",
        negation=negation or "",
        norm_hash=hash_normalised(normalised),
        normalised=normalised,
    )
