"""The one owner of the dialer's background tasks.

Every task the dialer runs is started here and belongs to one of four kinds: the long-lived
workers (dispatcher, result writers, seat store, housekeeping), the campaign loops (one per
automatic campaign), the seat timers (wrap-up end, idle re-check: one per seat) and the
short jobs (a claim, a send, a hand-over). `cancel_all` cancels and awaits every one of
them, so after the engine's `stop` nothing of the dialer is left running. (An
`asyncio.TaskGroup` would cancel everything when one job fails; here a failed job is logged
and the others go on.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

from common.clock import Clock

log = logging.getLogger(__name__)


async def nap(clock: Clock, seconds: float, wake: asyncio.Event) -> None:
    """Sleep `seconds` of the clock, or less when `wake` is set (a campaign loop's pause)."""
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    waiter = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        waiter.cancel()


class TaskOwner:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.workers: dict[str, asyncio.Task[Any]] = {}
        self.campaigns: dict[int, asyncio.Task[Any]] = {}
        self.timers: dict[int, asyncio.Task[Any]] = {}
        self.jobs: set[asyncio.Task[Any]] = set()

    def worker(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self.workers[name] = task

    def job(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.jobs.add(task)
        task.add_done_callback(self._job_done)
        return task

    def _job_done(self, t: asyncio.Task[Any]) -> None:
        self.jobs.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("dialer task failed", exc_info=t.exception())

    def timer(self, key: int, coro: Awaitable[Any] | None) -> None:
        """Replace the seat's timer (None: just cancel it)."""
        old = self.timers.pop(key, None)
        if old is not None:
            old.cancel()
        if coro is not None:
            self.timers[key] = asyncio.ensure_future(coro)

    def timer_fired(self, key: int) -> None:
        self.timers.pop(key, None)

    def campaign(self, key: int, coro: Awaitable[Any]) -> None:
        self.campaigns[key] = asyncio.ensure_future(coro)

    def named(self, *prefixes: str) -> list[asyncio.Task[Any]]:
        return [t for n, t in self.workers.items() if n.startswith(prefixes)]

    async def wait_quiet(self, tasks: Iterable[asyncio.Task[Any]], grace: float) -> None:
        """Until `tasks` are done, or `grace` seconds of the clock have passed."""
        pending = {t for t in tasks if not t.done()}
        if not pending:
            return
        timer = asyncio.ensure_future(self.clock.sleep(grace))
        try:
            while pending and not timer.done():
                _, pending = await asyncio.wait(
                    {*pending, timer}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(timer)
        finally:
            timer.cancel()
        if pending:
            log.warning(
                "dialer stop: %d tasks still busy after %.1fs; cancelled", len(pending), grace
            )

    def all(self) -> list[asyncio.Task[Any]]:
        return [
            *self.workers.values(),
            *self.campaigns.values(),
            *self.timers.values(),
            *self.jobs,
        ]

    async def cancel_all(self) -> None:
        tasks = self.all()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.workers.clear()
        self.campaigns.clear()
        self.timers.clear()
        self.jobs.clear()


__all__ = ["TaskOwner", "nap"]
