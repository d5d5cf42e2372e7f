"""A lock whose waiters go by priority: the dialer's one SQLite writer at a time.

SQLite has a single writer. The engine takes this lock around every write transaction on
SQLite so that writers queue in the process (not in SQLite's busy-wait), and so that the
claim for a seat that is ready now is not queued behind a batch of call results or the
bookkeeping of seat states. Waiters of a lower rank go first; within a rank, first come
first served. The lock is handed straight to the next waiter on release (no barging).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator

# Ranks used by the engine, most urgent first.
CLAIM = 0  # a seat is ready and waits for its call
PRECLAIM = 1  # a seat in wrap-up: its next lead, needed when the wrap-up ends
RESULTS = 2  # call results, releases, automatic campaigns' claims
BOOKKEEPING = 3  # seat states and "sent" marks (for restarts and reports)


class PriorityLock:
    def __init__(self) -> None:
        self._held = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def locked(self) -> bool:
        return self._held

    def waiting(self, below: int | None = None) -> int:
        """Waiters not cancelled (of a rank lower than `below`, if given)."""
        return sum(
            1
            for rank, _, fut in self._waiters
            if not fut.done() and (below is None or rank < below)
        )

    @contextlib.asynccontextmanager
    async def hold(self, rank: int) -> AsyncIterator[None]:
        await self._acquire(rank)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, rank: int) -> None:
        if not self._held:
            self._held = True
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (rank, next(self._order), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # handed over just as we were cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():  # cancelled waiters are skipped
                fut.set_result(None)  # still held: now by that waiter
                return
        self._held = False


__all__ = ["BOOKKEEPING", "CLAIM", "PRECLAIM", "RESULTS", "PriorityLock"]
