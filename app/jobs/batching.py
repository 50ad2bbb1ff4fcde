"""Coalesce the database work of concurrent jobs: calls made by many handlers while the
previous batch was running go to the database as one batch (one query, one transaction).

A worker runs dozens of handlers at once; each doing its own small transaction costs more CPU
in the database layer than the work itself. ``batched`` turns a function over a list of items
into an awaitable over one item.
"""

import asyncio
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """``await batcher(item)``: items are gathered while the previous batch runs, then
    passed to ``fn`` together on the batcher's own thread, so the event loop keeps serving
    other jobs while the database works. ``fn`` returns one result per item (in order) or
    raises for all of them."""

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        max_size: int = 500,
        quiet_s: float = 0.0,
        linger_s: float = 0.0,
    ) -> None:
        self._fn = fn
        self._max_size = max_size
        self._quiet_s = quiet_s
        self._linger_s = max(linger_s, quiet_s)
        self._items: list[T] = []
        self._futures: list[asyncio.Future[R]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._first_at = 0.0
        self._scheduled = False
        self._busy = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sdilab-batch")

    def __call__(self, item: T) -> "asyncio.Future[R]":
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._items.append(item)
        self._futures.append(future)
        if self._busy:
            return future  # sent when the running batch is done
        if self._quiet_s <= 0:
            if not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._start, loop)
            return future
        now = loop.time()
        if self._timer is None:
            self._first_at = now
        else:
            self._timer.cancel()
        when = min(self._first_at + self._linger_s, now + self._quiet_s)
        self._timer = loop.call_at(when, self._start, loop)
        return future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy or not self._items:
            return
        items, futures = self._items[: self._max_size], self._futures[: self._max_size]
        del self._items[: self._max_size], self._futures[: self._max_size]
        self._busy = True
        running = loop.run_in_executor(self._executor, self._fn, items)
        running.add_done_callback(lambda done: self._finish(loop, done, futures))

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        done: "asyncio.Future[Sequence[R]]",
        futures: list["asyncio.Future[R]"],
    ) -> None:
        self._busy = False
        exc = done.exception()
        if exc is not None:
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
        else:
            for future, result in zip(futures, done.result(), strict=True):
                if not future.done():
                    future.set_result(result)
        if self._items:
            self._start(loop)


# Futures belong to one event loop: one batcher per (loop, function).
_per_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[object, Batcher]]" = (
    weakref.WeakKeyDictionary()
)


def batched(
    fn: Callable[[list[T]], Sequence[R]], *, quiet_s: float = 0.0, linger_s: float = 0.0
) -> Callable[[T], "asyncio.Future[R]"]:
    """Wrap ``fn(items) -> results`` as ``await wrapper(item) -> result``.

    With ``quiet_s``, an idle batcher waits until no item has come for ``quiet_s`` (at most
    ``linger_s`` after the first): items that come in a burst go in one batch."""

    def call(item: T) -> "asyncio.Future[R]":
        batchers = _per_loop.setdefault(asyncio.get_running_loop(), {})
        batcher = batchers.get(fn)
        if batcher is None:
            batcher = batchers[fn] = Batcher(fn, quiet_s=quiet_s, linger_s=linger_s)
        return batcher(item)

    return call
