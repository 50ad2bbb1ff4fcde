"""What the schemathesis run sent, printed at the end of the test session (conftest.py)."""

from dataclasses import dataclass, field

from app.web import API_V1


@dataclass
class Figures:
    operations: set[str] = field(default_factory=set)
    requests: int = 0
    server_errors: int = 0
    # Of which the served schema's (/api/v1).
    api_requests: int = 0

    def count(self, method: str, path: str, status: int) -> None:
        self.operations.add(f"{method.upper()} {path}")
        self.requests += 1
        self.server_errors += status >= 500
        self.api_requests += path.startswith(API_V1)

    def line(self) -> str:
        api = sum(op.split(" ", 1)[1].startswith(API_V1) for op in self.operations)
        return (
            f"schemathesis: {len(self.operations)} operations, {self.requests:,} requests "
            f"generated, {self.server_errors} server errors (of which {API_V1}: {api} "
            f"operations, {self.api_requests:,} requests)"
        )


FUZZ = Figures()
