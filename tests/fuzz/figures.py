"""What the schemathesis run sent, printed at the end of the test session (conftest.py)."""

from dataclasses import dataclass, field


@dataclass
class Figures:
    operations: set[str] = field(default_factory=set)
    requests: int = 0
    server_errors: int = 0

    def line(self) -> str:
        return (
            f"schemathesis: {len(self.operations)} operations, {self.requests:,} requests "
            f"generated, {self.server_errors} server errors"
        )


FUZZ = Figures()
