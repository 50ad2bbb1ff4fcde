"""What every importer reports about an uploaded file."""

from dataclasses import dataclass


@dataclass(frozen=True)
class RowError:
    """One problem: ``row`` is the 1-based data row (None for the file as a whole)."""

    row: int | None
    column: str
    message: str
    line: int | None = None  # line in the file where the row ends, when it differs from row

    def __str__(self) -> str:
        if self.row is None:
            return self.message
        where = f"row {self.row}"
        if self.line is not None and self.line != self.row:
            where += f" (line {self.line})"
        column = f", column {self.column}" if self.column else ""
        return f"{where}{column}: {self.message}"
