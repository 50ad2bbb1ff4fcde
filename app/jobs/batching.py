"""Coalesce the database work of concurrent jobs: calls made by many handlers in the same
turn of the event loop go to the database as one batch (one query, one transaction).

A worker runs dozens of handlers at once; each doing its own small transaction costs more CPU
in the database layer than the work itself. ``batched`` turns a function over a list of items
into an awaitable over one item.
"""

import asyncio
import weakref
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """``await batcher(item)``: items gathered until the loop's next turn, then passed to
    ``fn`` together; ``fn`` returns one result per item (in order) or raises for all."""

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], max_size: int = 500) -> None:
        self._fn = fn
        self._max_size = max_size
        self._items: list[T] = []
        self._futures: list[asyncio.Future[R]] = []
        self._scheduled = False

    def __call__(self, item: T) -> "asyncio.Future[R]":
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._items.append(item)
        self._futures.append(future)
        if len(self._items) >= self._max_size:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        items, futures = self._items, self._futures
        self._items, self._futures = [], []
        if not items:
            return
        try:
            results = self._fn(items)
        except BaseException as exc:
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, result in zip(futures, results, strict=True):
            if not future.done():
                future.set_result(result)


# Futures belong to one event loop: one batcher per (loop, function).
_per_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[object, Batcher]]" = (
    weakref.WeakKeyDictionary()
)


def batched(fn: Callable[[list[T]], Sequence[R]]) -> Callable[[T], "asyncio.Future[R]"]:
    """Wrap ``fn(items) -> results`` as ``await wrapper(item) -> result``."""

    def call(item: T) -> "asyncio.Future[R]":
        batchers = _per_loop.setdefault(asyncio.get_running_loop(), {})
        batcher = batchers.get(fn)
        if batcher is None:
            batcher = batchers[fn] = Batcher(fn)
        return batcher(item)

    return call
