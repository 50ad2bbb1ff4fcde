"""Hostile uploads: random bytes, wrong encodings, huge fields, missing and extra columns,
formula cells, NUL bytes, broken quoting."""

import csv
import io
import json

from hypothesis import strategies as st

FORMULAS = ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=x", "\r=x", '  =HYPERLINK("x")']
NASTY = [
    "\x00",
    "\ufeff",
    "\u202e",
    '"',
    '""',
    "\n",
    "\r\n",
    ",",
    ";",
    "\t",
    "{",
    "}",
    "{statement}",
    "{0}",
    "{__class__}",
    "{{",
    "%s",
    "\ud7ff",
    "é",
    "\U0001f600",
]

QUESTION_COLUMNS = ["statement", "truth", "negation", "explanation", "category", "id", "source_id"]
REPLY_COLUMNS = [
    "statement_id",
    "statement",
    "variant_kind",
    "prompt",
    "model",
    "reply",
    "stance",
    "sample_index",
    "first_reply",
    "followup",
]

cell = st.one_of(
    st.text(max_size=40),
    st.sampled_from(FORMULAS + NASTY + ["true", "false", "TRUE", "yes", "0", "1", "", "maybe"]),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "\x00", "x"]), st.integers(0, 300)),
)
huge = st.builds(
    lambda c, n: c * n, st.sampled_from(["a", "é", "x y "]), st.sampled_from([70_000, 1_100_000])
)
encoding = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "cp1252"])


@st.composite
def table(draw: st.DrawFn, known: list[str]) -> tuple[list[str], list[list[str]]]:
    columns = draw(
        st.lists(st.one_of(st.sampled_from(known), st.text(max_size=12)), min_size=0, max_size=9)
    )
    width = st.integers(max(0, len(columns) - 2), len(columns) + 2)
    rows = draw(
        st.lists(
            st.builds(lambda n, cells: cells[:n], width, st.lists(cell, min_size=12, max_size=12)),
            max_size=8,
        )
    )
    return columns, rows


@st.composite
def upload_bytes(draw: st.DrawFn, known: list[str]) -> tuple[bytes, str]:
    """A CSV, TSV or JSONL file (sometimes truncated or re-encoded) and its file name."""
    columns, rows = draw(table(known))
    if rows and rows[0] and draw(st.integers(0, 19)) == 0:
        rows[0][0] = draw(huge)  # far over any field limit
    kind = draw(st.sampled_from(["csv", "tsv", "jsonl", "json", "txt"]))
    if kind in ("csv", "tsv", "txt"):
        out = io.StringIO()
        writer = csv.writer(out, delimiter="\t" if kind == "tsv" else ",")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(row)
        text = out.getvalue()
    else:
        lines = []
        for row in rows:
            record = {
                c: draw(
                    st.one_of(
                        cell,
                        st.integers(),
                        st.none(),
                        st.booleans(),
                        st.lists(st.integers(), max_size=2),
                    )
                )
                for c in columns
            }
            del row
            lines.append(json.dumps(record) if draw(st.booleans()) else str(record))
        text = "\n".join(lines)
    enc = draw(encoding)
    raw = (
        text.encode(enc, errors="replace")
        if enc != "utf-8"
        else text.encode("utf-8", "surrogatepass")
    )
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut]
    if draw(st.integers(0, 9)) == 0:
        raw = raw + draw(st.binary(max_size=64))
    name = draw(st.sampled_from([f"x.{kind}", "x", "x.CSV", "../../etc/passwd", "x.xlsx", ""]))
    return raw, name
