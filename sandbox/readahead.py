"""Read-ahead for cursor-paged lists: compute page k+1 while the client is busy with page k.

A client paging a list waits for the server, then parses while the server waits: their times add
up. Pages are pure functions of (query, cursor, tick), so an emulator can compute the next page on
a worker thread as soon as it has answered one; the next request then finds it ready (or waits
for it to finish), and serving and parsing overlap even on one connection. Every page is still
computed once, and a changed tick changes the key, so a stale page is never served.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["ReadAhead"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ReadAhead(Generic[K, V]):
    def __init__(self, compute: Callable[[K], V], *, max_pending: int = 8, name: str = "sandbox-readahead") -> None:
        self._compute = compute
        self._max = max_pending
        self._lock = threading.Lock()
        self._pending: OrderedDict[K, Future[V]] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def get(self, key: K) -> V:
        """The value for ``key``: the prefetched one if there is one, else computed now."""
        with self._lock:
            future = self._pending.pop(key, None)
        if future is not None and not future.cancelled():
            return future.result()
        return self._compute(key)

    def prefetch(self, key: K) -> None:
        """Start computing ``key`` in the background (the oldest unclaimed prefetch is dropped)."""
        with self._lock:
            if key in self._pending:
                return
            self._pending[key] = self._pool.submit(self._compute, key)
            while len(self._pending) > self._max:
                _, stale = self._pending.popitem(last=False)
                stale.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
