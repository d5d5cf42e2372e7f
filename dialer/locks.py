"""A lock whose waiters go by priority: the dialer's one SQLite writer at a time.

SQLite has a single writer. The engine takes this lock around every write transaction on
SQLite so that writers queue in the process (not in SQLite's busy-wait), and so that the
claim for a seat that is ready now is not queued behind a batch of call results or the
bookkeeping of seat states. Waiters of a lower rank go first; within a rank, first come
first served. The lock is handed straight to the next waiter on release (no barging).

Strict priority alone starves the lowest rank on a busy desk: with a claim or a result
always waiting, the seat states and "sent" marks stayed unwritten until the shutdown (the
board showed no calls, and a crash would have lost the marks). So a waiter passed over
`MAX_PASSED` times goes next, whatever its rank: the urgent ranks still go first almost
always, and every waiter is served after at most that many others.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

# Ranks used by the engine, most urgent first.
CLAIM = 0  # a seat is ready and waits for its call
PRECLAIM = 1  # a seat in wrap-up: its next lead, needed when the wrap-up ends
RESULTS = 2  # call results, releases, automatic campaigns' claims
BOOKKEEPING = 3  # seat states and "sent" marks (for restarts and reports)

# How many others may overtake a waiter before it goes next (see the module's docstring).
MAX_PASSED = 8


@dataclass
class _Waiter:
    rank: int
    order: int
    future: asyncio.Future[None]
    passed: int = field(default=0)


class PriorityLock:
    def __init__(self) -> None:
        self._held = False
        self._waiters: list[_Waiter] = []
        self._order = itertools.count()

    @property
    def locked(self) -> bool:
        return self._held

    def waiting(self, below: int | None = None) -> int:
        """Waiters not cancelled (of a rank lower than `below`, if given)."""
        return sum(
            1 for w in self._waiters if not w.future.done() and (below is None or w.rank < below)
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
        self._waiters.append(_Waiter(rank, next(self._order), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # handed over just as we were cancelled: pass it on
            raise

    def _release(self) -> None:
        # Cancelled waiters are dropped; the queue is short (a few per seat at most), so a
        # scan per release costs less than keeping a heap in step with the aging.
        self._waiters = [w for w in self._waiters if not w.future.done()]
        if not self._waiters:
            self._held = False
            return
        overdue = [w for w in self._waiters if w.passed >= MAX_PASSED]
        if overdue:
            nxt = min(overdue, key=lambda w: w.order)
        else:
            nxt = min(self._waiters, key=lambda w: (w.rank, w.order))
        self._waiters.remove(nxt)
        for w in self._waiters:
            if w.order < nxt.order:  # it came earlier and was overtaken
                w.passed += 1
        nxt.future.set_result(None)  # still held: now by that waiter


__all__ = ["BOOKKEEPING", "CLAIM", "MAX_PASSED", "PRECLAIM", "RESULTS", "PriorityLock"]
