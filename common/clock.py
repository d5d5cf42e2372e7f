"""The project's clock: every reading of "now" and every wait goes through one of these.

Pure code takes `now` as an argument; I/O code (dialer loops, pings, daily jobs) takes a
`Clock`, so tests and simulations drive time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC datetime."""

    def monotonic(self) -> float:
        """Seconds on a monotonic scale (virtual for fake clocks)."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Real time sped up by `speed` from `start` (for demos and accelerated simulations)."""

    def __init__(self, start: datetime, speed: float) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start = start.astimezone(UTC)
        self._speed = speed
        self._t0 = time.monotonic()
        self._mono0 = 0.0

    @property
    def speed(self) -> float:
        return self._speed

    def monotonic(self) -> float:
        return self._mono0 + (time.monotonic() - self._t0) * self._speed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    def set_speed(self, speed: float) -> None:
        """Change the pace from now on; time stays continuous (the demo slows to real time
        after its accelerated day). Sleeps already begun keep their old pace."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._mono0 = self.monotonic()
        self._t0 = time.monotonic()
        self._speed = speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self._speed)


class VirtualClock:
    """A clock that moves only when told to: `advance()` wakes every sleeper whose time has come.

    Sleepers are woken in deadline order, and the event loop is given a chance to run between
    wake-ups, so code that reacts to one timer is scheduled before the next fires.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 5, 1, 30, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._start = start.astimezone(UTC)
        self._mono = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._added: asyncio.Event | None = None

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._mono)

    def monotonic(self) -> float:
        return self._mono

    def set(self, when: datetime) -> None:
        """Jump to an absolute time without waking sleepers one by one (only forwards)."""
        delta = (when - self.now()).total_seconds()
        if delta < 0:
            raise ValueError("a clock never goes backwards")
        self._mono += delta

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), fut))
        if self._added is not None:
            self._added.set()
        await fut

    def sleeper_added(self) -> Coroutine[Any, Any, bool]:
        """Wait for the next `sleep()` begun after this call: a test that drives the clock
        waits on this while the code under test works in real time (threads, subprocesses),
        instead of moving the clock under it."""
        if self._added is None:
            self._added = asyncio.Event()
        self._added.clear()  # now, not when the wait starts: a sleep in between still counts
        return self._added.wait()

    @property
    def pending_sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    @property
    def next_wakeup(self) -> float | None:
        """Seconds until the earliest live sleeper wakes (None when nobody waits)."""
        live = [d for d, _, f in self._sleepers if not f.done()]
        return min(live) - self._mono if live else None

    def advance_to_next(self, limit: float | None = None) -> bool:
        """Move time to the earliest live sleeper and wake it (with every sleeper due at the
        same moment); never further than `limit` seconds. False when nobody sleeps or the
        earliest wakes later than `limit` (time then moves by `limit`, or not at all).

        A test driver calls this when the system is idle: time jumps from one timer to the
        next, so a loaded machine slows the test down but never changes what happens."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)  # cancelled sleeps
        if not self._sleepers:
            if limit is not None:
                self._mono += max(0.0, limit)
            return False
        deadline = self._sleepers[0][0]
        if limit is not None and deadline > self._mono + limit:
            self._mono += max(0.0, limit)
            return False
        self._mono = max(self._mono, deadline)
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
        return True

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking sleepers in order."""
        target = self._mono + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._mono = max(self._mono, deadline)
            if not fut.done():
                fut.set_result(None)
                # Let the woken task (and what it schedules) run before the next timer.
                for _ in range(5):
                    await asyncio.sleep(0)
        self._mono = target
        for _ in range(5):
            await asyncio.sleep(0)
