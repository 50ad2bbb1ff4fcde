"""Exceptions a task handler raises to tell the worker what to do with its job."""


class RetryLater(Exception):
    """Try the job again later: after ``delay_s`` seconds when given (e.g. a provider's
    Retry-After), else after an exponential backoff with jitter. Counts as an attempt."""

    def __init__(self, message: str = "retry later", delay_s: float | None = None) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class PermanentFailure(Exception):
    """Fail the job now, without retrying (bad input, a refused request)."""


class Snooze(Exception):
    """Not ready yet (e.g. a remote batch still running): look again after ``delay_s``
    seconds. Does not count as an attempt."""

    def __init__(self, delay_s: float, message: str = "waiting") -> None:
        super().__init__(message)
        self.delay_s = delay_s
