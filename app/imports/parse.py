"""Read an uploaded CSV or JSONL file of replies into validated rows (nothing is saved here).

The file-level pieces (size limit, UTF-8 with or without BOM, format and delimiter sniffing,
reading rows into records, the per-row error type) are the question importer's, so both
uploads behave the same.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.imports.harness import HarnessRecords
from app.imports.schemas import (
    FIELDS,
    KNOWN_COLUMNS,
    MAX_SAMPLE_INDEX,
    MODEL_NAME_MAX,
    NO_PROMPT,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    STATEMENT_COLUMNS,
    VARIANT_COLUMNS,
    ParsedReplies,
    ParsedReply,
)
from app.models import Stance, VariantKind, premise_is_erroneous
from app.questions.dedupe import norm_hash
from app.uploads import mapping
from app.uploads.records import read_records, text_values
from app.uploads.schemas import RowError
from app.verdicts import statement_verdicts

MAX_LENGTHS = {
    "statement_id": 120,
    "statement": 2000,
    "variant_kind": 16,
    "prompt": 8000,
    "stance": 16,
    "model": MODEL_NAME_MAX,
    "sample_index": 6,
    "reply": 20_000,
    "first_reply": 20_000,
    "followup": 2000,
}
KINDS = tuple(k.value for k in VariantKind)
STANCES = tuple(s.value for s in Stance)
# Kinds in which the user takes a side by definition: their stance must be given.
SIDED_KINDS = frozenset({"biased", "adversarial", "noise"})


@dataclass
class SetIndex:
    """A question set's statements, found by source id or by normalised-text hash."""

    set_id: int
    name: str
    by_id: dict[str, tuple[int, bool, str]] = field(default_factory=dict)
    by_hash: dict[str, list[tuple[int, bool, int]]] = field(default_factory=dict)


def parse_text(
    text: str, index: SetIndex, upload: ParsedReplies, chosen: Mapping[str, str] | None = None
) -> None:
    """Fill ``upload.rows`` and ``upload.errors`` from decoded text; ``chosen`` is the user's
    column mapping (``{field: column}``), the rest is recognised from the header."""
    if not text.strip():
        upload.errors.append(RowError(None, "", "The file is empty."))
        return

    def check(columns: list[str], errors: list[RowError], warnings: list[str]) -> list[str] | None:
        upload.columns = columns
        try:
            upload.mapping = mapping.resolve(columns, FIELDS, chosen)
        except mapping.MappingError as exc:
            errors.append(RowError(None, "", str(exc)))
            return None
        return check_columns(mapping.renamed(columns, upload.mapping, FIELDS), errors, warnings)

    _collect(read_records(text, upload, check, KNOWN_COLUMNS), index, upload)


def parse_harness(found: HarnessRecords, index: SetIndex, upload: ParsedReplies) -> None:
    """Fill ``upload`` from a harness log's records (see app.imports.harness); each row
    keeps its source."""
    upload.detected = found.kind
    upload.source = found.source
    sources: dict[int, dict[str, Any]] = {}

    def records() -> Iterator[tuple[int, int, dict[str, Any]]]:
        for position, record in enumerate(found.records, start=1):
            if "_error" in record:
                column, message = record["_error"]
                upload.errors.append(RowError(position, column, message))
                continue
            sources[position] = record.pop("_source", {})
            yield position, position, record

    _collect(records(), index, upload)
    for row in upload.rows:
        row.source = sources.get(row.position)


def _collect(
    records: Iterable[tuple[int, int, dict[str, Any]]], index: SetIndex, upload: ParsedReplies
) -> None:
    seen: dict[tuple[Any, ...], int] = {}
    for position, line, record in records:
        row = _validate(position, line, record, index, upload.errors)
        if row is None:
            continue
        key = (*row.variant_key, row.model, row.sample_index)
        if key in seen:
            upload.errors.append(
                RowError(
                    position,
                    "",
                    f"repeats row {seen[key]} (same statement, prompt, model and sample); "
                    "give sample_index to import several samples",
                    line,
                )
            )
            continue
        seen[key] = position
        upload.rows.append(row)
    if not upload.errors and not upload.rows:
        upload.errors.append(RowError(None, "", "The file has a header but no rows."))


def check_columns(
    columns: list[str], errors: list[RowError], warnings: list[str]
) -> list[str] | None:
    """``columns`` (already renamed by the mapping) when they can be read, else None."""
    repeated = sorted({c for c in columns if c and columns.count(c) > 1})
    if repeated:
        errors.append(
            RowError(None, "", f"The header repeats the column(s): {', '.join(repeated)}.")
        )
        return None
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if not any(c in columns for c in STATEMENT_COLUMNS):
        missing.append("statement_id or statement")
    if not any(c in columns for c in VARIANT_COLUMNS):
        missing.append("variant_kind or prompt")
    if missing:
        errors.append(
            mapping.missing_message(
                missing,
                columns,
                "statement_id or statement, variant_kind and/or prompt, model and reply",
                OPTIONAL_COLUMNS,
            )
        )
        return None
    unknown = [
        c.removeprefix(mapping.UNUSED_PREFIX) for c in columns if c and c not in KNOWN_COLUMNS
    ]
    if unknown:
        warnings.append(f"Ignored unknown column(s): {', '.join(unknown)}.")
    return columns


def _question(
    values: dict[str, str | None],
    index: SetIndex,
    position: int,
    line: int,
    errors: list[RowError],
) -> tuple[int, bool] | None:
    source_id, statement = values["statement_id"], values["statement"]
    if source_id is None or statement is None:
        return None
    if source_id:
        found = index.by_id.get(source_id)
        if found is None:
            errors.append(
                RowError(
                    position,
                    "statement_id",
                    f"{source_id!r} is not a statement id of set {index.name!r}",
                    line,
                )
            )
            return None
        question_id, truth, stored_hash = found
        if statement and norm_hash(statement) != stored_hash:
            errors.append(
                RowError(
                    position,
                    "statement",
                    f"is not the text of statement {source_id!r} of set {index.name!r}",
                    line,
                )
            )
            return None
        return question_id, truth
    if not statement:
        errors.append(RowError(position, "statement", "is empty (and no statement_id)", line))
        return None
    matches = index.by_hash.get(norm_hash(statement), [])
    if not matches:
        errors.append(
            RowError(
                position,
                "statement",
                f"is not a statement of set {index.name!r} (compared ignoring case, "
                "spacing and final punctuation)",
                line,
            )
        )
        return None
    if len({truth for _id, truth, _pos in matches}) > 1:
        rows = ", ".join(str(pos) for _id, _truth, pos in matches)
        errors.append(
            RowError(
                position,
                "statement",
                f"matches rows {rows} of set {index.name!r}, which disagree on its truth; "
                "use statement_id instead",
                line,
            )
        )
        return None
    question_id, truth, _pos = min(matches, key=lambda m: m[2])
    return question_id, truth


def _choice(
    value: str | None,
    allowed: tuple[str, ...],
    column: str,
    position: int,
    line: int,
    errors: list[RowError],
) -> str | None:
    if not value:
        return None
    word = value.casefold()
    if word not in allowed:
        errors.append(
            RowError(position, column, f"{value[:40]!r} is not one of {', '.join(allowed)}", line)
        )
        return None
    return word


def _sample_index(
    raw: Any, value: str | None, position: int, line: int, errors: list[RowError]
) -> int | None:
    if value is None:
        return None
    if value == "":
        return 0
    if isinstance(raw, float) and raw.is_integer():
        value = str(int(raw))
    if not value.isdigit() or int(value) > MAX_SAMPLE_INDEX:
        errors.append(
            RowError(
                position,
                "sample_index",
                f"{value[:20]!r} is not a whole number from 0 to {MAX_SAMPLE_INDEX}",
                line,
            )
        )
        return None
    return int(value)


def _validate(
    position: int, line: int, record: dict[str, Any], index: SetIndex, errors: list[RowError]
) -> ParsedReply | None:
    before = len(errors)
    values = text_values(record, MAX_LENGTHS, position, line, errors)
    question = _question(values, index, position, line, errors)
    kind = _choice(values["variant_kind"], KINDS, "variant_kind", position, line, errors)
    prompt = values["prompt"]
    if values["variant_kind"] == "" and prompt == "":
        errors.append(RowError(position, "variant_kind", "is empty (and no prompt)", line))
    kind = kind or "neutral"
    stance = _choice(values["stance"], STANCES, "stance", position, line, errors)
    if values["stance"] == "" and kind in SIDED_KINDS:
        errors.append(
            RowError(
                position,
                "stance",
                f"is empty: a {kind} prompt takes a side, so give asserts or negates",
                line,
            )
        )
    stance = stance or "none"
    model = values["model"]
    if model == "":
        errors.append(RowError(position, "model", "is empty", line))
    reply = values["reply"]
    if reply == "":
        errors.append(RowError(position, "reply", "is empty", line))
    raw_sample = record.get("sample_index")
    sample = _sample_index(raw_sample, values["sample_index"], position, line, errors)
    first_reply, followup = values["first_reply"], values["followup"]
    for column, value in (("first_reply", first_reply), ("followup", followup)):
        if value and kind != "pushback":
            errors.append(RowError(position, column, "is only for variant_kind pushback", line))
    if len(errors) > before or question is None:
        return None
    assert model and reply and prompt is not None and sample is not None
    question_id, truth = question
    verdict, first_verdict = statement_verdicts(
        reply, stance == Stance.negates, first_reply or None, values["statement"] or None
    )
    return ParsedReply(
        position=position,
        line=line,
        question_id=question_id,
        truth=truth,
        kind=kind,
        stance=stance,
        premise_erroneous=premise_is_erroneous(stance, truth),
        prompt=prompt,
        followup=followup or "",
        model=model,
        sample_index=sample,
        reply=reply,
        verdict=verdict.value,
        first_reply=first_reply or "",
        first_verdict=first_verdict.value if first_verdict else None,
    )


def user_turn(prompt: str) -> str:
    return prompt or NO_PROMPT
