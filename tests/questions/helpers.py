"""Small builders for question-file tests, and an HTML table reader."""

import csv
import io
import json
import random
import string
from html.parser import HTMLParser
from typing import Any


def csv_bytes(
    rows: list[dict[str, Any]],
    delimiter: str = ",",
    bom: bool = False,
    header: list[str] | None = None,
) -> bytes:
    out = io.StringIO()
    fields = list(rows[0])
    writer = csv.DictWriter(out, fieldnames=fields, delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return ("\ufeff" if bom else "").encode() + out.getvalue().encode()


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def distinct_statements(n: int, seed: int = 1) -> list[str]:
    """n statements made of random words: no two are near-duplicates of each other."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 9))) for _ in range(3000)]
    return [" ".join(rng.sample(words, 7)).capitalize() + "." for _ in range(n)]


def rows_for(statements: list[str]) -> list[dict[str, Any]]:
    return [
        {"id": f"r{i}", "statement": s, "truth": "true" if i % 2 else "false", "category": "misc"}
        for i, s in enumerate(statements, start=1)
    ]


class _TableReader(HTMLParser):
    def __init__(self, css_class: str) -> None:
        super().__init__()
        self.css_class = css_class
        self.depth = 0
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "table" and (self.depth or self.css_class in classes):
            self.depth += 1
        elif self.depth and tag == "tbody":
            self._in_body = True
        elif self.depth and self._in_body and tag == "tr":
            self.rows.append([])
        elif self.depth and self._in_body and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1
        elif tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(html: str, css_class: str) -> list[list[str]]:
    """The text of each body cell of the table with class ``css_class``."""
    reader = _TableReader(css_class)
    reader.feed(html)
    return reader.rows
