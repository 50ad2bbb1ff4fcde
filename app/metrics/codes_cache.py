"""A run's packed reply codes kept between results computations, in each web process.

Every rating makes the stored results stale, and reading all of a large run's replies again is
most of a computation (336,000 replies: ~0.5 s of the ~0.8 s). So each process keeps the codes
it last read (``replies.codes_select``, about 64 bytes a reply) and, next time, reads again only
the replies whose tally was written since: ``rating_tallies.changed_at``, stamped by the
database clock with every rating and adjudication write.

Rows committed late are not missed: a stamp is taken inside the writing transaction, which may
commit after a read that did not see it, so each read looks back ``LOOKBACK_S`` before the clock
reading that preceded the previous one. That bounds the time from a stamp to its commit: the
tally row is the last write of a rating (the commit follows at once) and a recount stamps its
rows at its end. Rows re-read twice are harmless; right after a recount, views re-read every
reply until the look-back has passed. What the tallies do not stamp (a reply finishing, a
run's status) is in the entry's ``base``: when it differs, everything is read again. Edits
made behind the app's back are not seen here, as with stored results (see ``snapshots``).

Nothing here is shared state: a process without an entry reads everything, as before.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

LOOKBACK_S = 60.0


@dataclass
class _Entry:
    base: Hashable
    ids: IntArray  # reply ids, ascending
    codes: IntArray  # one row per id; column 0 is the id
    since: float  # re-read replies whose tally changed at or after this database time


class CodesCache:
    """Up to ``max_runs`` runs' codes, least recently used dropped first."""

    def __init__(self, max_runs: int) -> None:
        self.max_runs = max_runs
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.full_reads = 0  # counted for tests and benchmarks
        self.partial_reads = 0

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.full_reads = self.partial_reads = 0

    def codes(
        self,
        key: Hashable,
        base: Hashable,
        *,
        clock: Callable[[], float],
        read_all: Callable[[], IntArray],
        read_changed: Callable[[float], IntArray],
    ) -> IntArray:
        """The codes of ``key`` (rows sorted by id; a copy the caller owns).

        ``clock`` reads the database clock; ``read_all`` reads every row, sorted by id;
        ``read_changed(t)`` the rows of replies whose tally changed at or after ``t``.
        """
        if self.max_runs <= 0:
            return read_all()
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            now = clock()
            with self._lock:
                entry = self._entries.get(key)
            if entry is None or entry.base != base or not self._patch(entry, read_changed):
                codes = read_all()
                entry = _Entry(base, codes[:, 0].copy(), codes, 0.0)
                self.full_reads += 1
            else:
                self.partial_reads += 1
            entry.since = now - LOOKBACK_S
            with self._lock:
                self._entries[key] = entry
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_runs:
                    dropped, _ = self._entries.popitem(last=False)
                    self._locks.pop(dropped, None)
            return entry.codes.copy()

    @staticmethod
    def _patch(entry: _Entry, read_changed: Callable[[float], IntArray]) -> bool:
        """Overwrite the changed replies' rows; False when one is not in the entry."""
        changed = read_changed(entry.since)
        if len(changed) == 0:
            return True
        if len(entry.ids) == 0:
            return False
        pos = np.minimum(np.searchsorted(entry.ids, changed[:, 0]), len(entry.ids) - 1)
        if not np.array_equal(entry.ids[pos], changed[:, 0]):
            return False
        entry.codes[pos] = changed
        return True
