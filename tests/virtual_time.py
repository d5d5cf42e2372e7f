"""Helper for tests (no tests here): drive a `VirtualClock` shared by the code under test
(dialer engine, PBX simulator over TCP, web app) without ever sleeping in real time.

Time moves only when the system is idle: no callback ready in the event loop, no bytes
waiting on a socket, no database work in flight. Then the clock jumps to the next sleeper.
A loaded machine therefore makes a test slower, never different: every step the code takes
between two timers happens at the same virtual moment however long it really takes."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.pglisten import LISTENING
from schedules.clock import VirtualClock
from tests.loop_guard import await_chain

# Loop turns with nothing ready before the system counts as idle. Bytes written to a local
# socket are readable at the next turn's select(), so two would do; a margin costs nothing.
QUIET_TURNS = 4

Condition = Callable[[], Awaitable[bool] | bool]


class DatabaseWork:
    """Counts database connections being opened or in use (pool events of one engine).

    aiosqlite works in a thread and PostgreSQL in another process: neither shows in the
    event loop while a query runs, so the driver asks this instead."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._calls = 0  # connects and pings under way
        # Connections checked out, by record: a connection whose checkout failed (the server
        # gone) is checked in without a checkout event, which a plain count took as negative.
        # By record id: the record (a LISTEN connection is marked in its `info`) and the task
        # that checked it out, for the hang message.
        self._out: dict[int, tuple[Any, asyncio.Task[Any] | None]] = {}
        self.changed = asyncio.Event()
        sync = engine.sync_engine
        event.listen(sync, "checkout", self._start)
        event.listen(sync, "checkin", self._done)
        # Opening a connection and the pool's pre-ping (PostgreSQL) have no before/after
        # events (a refused connect fires none at all): both are counted around the
        # dialect's own calls. Without the ping, a burst of short transactions left gaps in
        # which the clock jumped ahead of work still on its way.
        dialect = sync.dialect
        dialect.connect = self._counted(dialect.connect)  # type: ignore[method-assign]
        dialect.do_ping = self._counted(dialect.do_ping)  # type: ignore[method-assign]

    @property
    def busy(self) -> int:
        # A LISTEN connection (common.pglisten) is held for good and runs no statements.
        return self._calls + sum(1 for rec, _ in self._out.values() if LISTENING not in rec.info)

    def _counted(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self._calls += 1
            try:
                return call(*args, **kwargs)
            finally:
                self._calls -= 1
                self.changed.set()

        return counted

    def _start(self, _dbapi: Any, record: Any, *_: Any) -> None:
        # The pool's events run in SQLAlchemy's greenlet inside the task that asked.
        self._out[id(record)] = (record, asyncio.current_task())

    def _done(self, _dbapi: Any, record: Any, *_: Any) -> None:
        self._out.pop(id(record), None)
        self.changed.set()

    def holders(self) -> str:
        """Who holds a connection, and where each of them is waiting now."""
        lines = [f"{self._calls} connects or pings under way"] if self._calls else []
        for _, task in self._out.values():
            if task is None:
                lines.append("a connection checked out outside any task")
                continue
            where = " -> ".join(await_chain(task)[0])
            lines.append(f"{task.get_name()}{' (done)' if task.done() else ''}: {where}")
        return "; ".join(lines)


class Driver:
    """Moves `clock` from timer to timer whenever the system is idle.

    `until(cond)` waits for a condition, `run_for(seconds)` lets a stretch of virtual time
    pass; both fail with a clear message instead of hanging."""

    def __init__(
        self, clock: VirtualClock, sessions: async_sessionmaker[AsyncSession] | None = None
    ) -> None:
        self.clock = clock
        bind = sessions.kw.get("bind") if sessions is not None else None
        self._db = DatabaseWork(bind) if isinstance(bind, AsyncEngine) else None

    async def idle(self, timeout_real: float = 240.0) -> None:
        """Return once nothing runs: the loop has had QUIET_TURNS empty turns in a row and no
        database work is in flight."""
        loop = asyncio.get_running_loop()
        ready = loop._ready  # type: ignore[attr-defined]  # asyncio's run queue
        deadline = time.monotonic() + timeout_real
        quiet = 0
        while quiet < QUIET_TURNS:
            if self._db is not None and self._db.busy > 0:
                quiet = 0
                self._db.changed.clear()
                left = deadline - time.monotonic()
                try:
                    # In slices: a connection can stop counting without an event (a LISTEN
                    # connection is marked just after its checkout).
                    await asyncio.wait_for(self._db.changed.wait(), timeout=min(left, 0.05))
                except TimeoutError:
                    if time.monotonic() < deadline:
                        continue
                    raise AssertionError(
                        f"database work still in flight after {timeout_real}s (a connection "
                        "held across a clock sleep would stop the clock for good): "
                        f"{self._db.holders()}"
                    ) from None
                continue
            await asyncio.sleep(0)
            quiet = quiet + 1 if not ready else 0

    async def until(
        self, cond: Condition, *, timeout_real: float = 240.0, within: float | None = None
    ) -> None:
        """Drive the clock until `cond()` holds; fail when `within` virtual seconds pass,
        when nothing is left to wake, or after `timeout_real` seconds of real time (a
        guard against a hang, not a pace: a loaded machine only takes longer)."""
        start = self.clock.monotonic()
        deadline = time.monotonic() + timeout_real
        while True:
            await self.idle(timeout_real)
            if await _holds(cond):
                return
            passed = self.clock.monotonic() - start
            if within is not None and passed > within:
                raise AssertionError(f"condition not reached within {within}s of clock time")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"condition not reached in {timeout_real}s of real time "
                    f"({passed:.0f}s of clock time passed)"
                )
            if not self.clock.advance_to_next():
                raise AssertionError("condition not reached: the system is idle, no timer left")

    async def run_for(
        self, seconds: float, *, quantum: float = 0.0, timeout_real: float = 240.0
    ) -> None:
        """Let `seconds` of virtual time pass, timer by timer, the system idle at each.

        With a `quantum`, each step from an idle system goes to the next timer plus
        `quantum` seconds, waking every sleeper due on the way in order without waiting
        for idle between them: work of timers close together then overlaps (a large
        simulation runs several times faster), and no step moves the clock further than
        `quantum` past what the system has seen, however loaded the machine is."""
        target = self.clock.monotonic() + seconds
        while True:
            await self.idle(timeout_real)
            left = target - self.clock.monotonic()
            if left <= 0:
                break
            nxt = self.clock.next_wakeup
            if quantum > 0 and nxt is not None and nxt < left:
                await self.clock.advance(min(max(nxt, 0.0) + quantum, left))
            elif not self.clock.advance_to_next(limit=left):
                break
        await self.idle(timeout_real)


async def _holds(cond: Condition) -> bool:
    got = cond()
    return bool(await got) if inspect.isawaitable(got) else bool(got)
