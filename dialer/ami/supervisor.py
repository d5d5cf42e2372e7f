"""Keeps one AMI link to one Asterisk alive: connect, ping, reconnect, resync.

API (what the dialer uses)::

    sup = AmiSupervisor(config, clock=clock, on_event=tracker.on_event,
                        on_resync=tracker.resync)
    async with sup:                      # or: sup.start() ... await sup.stop()
        await sup.wait_connected()
        reply = await sup.send("Originate", {...}, action_id=attempt_id)

* After every (re)connect, `CoreShowChannels` is run and the live channels (typed
  `CoreShowChannel` events when `dialer.ami.events` is available) are handed to
  `on_resync`; the dialer rebuilds its live calls from them. No action is ever replayed.
* A Ping every `ping_interval` seconds; no answer within `ping_timeout` means the link is
  dead: it is dropped (pending actions fail with AmiDisconnected) and re-opened.
* Reconnect delays follow `backoff_delays` (capped exponential with full jitter), on the
  project Clock, so tests move time instead of sleeping.
* While the link is down, `send` raises AmiDisconnected at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from common.clock import Clock, SystemClock
from dialer.ami.connection import (
    AmiConnection,
    EventCallback,
    EventParser,
    Reply,
    default_event_parser,
)
from dialer.ami.exceptions import AmiAuthError, AmiDisconnected, AmiError
from dialer.ami.protocol import HeaderValue

log = logging.getLogger(__name__)

ResyncCallback = Callable[[Sequence[Any]], object | Awaitable[object]]


@dataclass(frozen=True, slots=True)
class AmiConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "dialer"
    secret: str = ""
    auth: str = "md5"
    ping_interval: float = 20.0
    ping_timeout: float = 5.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    action_timeout: float = 10.0


def backoff_delay(attempt: int, *, base: float, cap: float, rand: float) -> float:
    """Delay before reconnect attempt `attempt` (0-based): full jitter over a capped
    exponential, `rand` in [0, 1). Never below 10% of the step, so a flapping server is
    not hammered when `rand` is near 0."""
    step = min(cap, base * (2 ** min(attempt, 30)))
    return step * (0.1 + 0.9 * rand)


def backoff_delays(base: float, cap: float, rng: random.Random | None = None) -> Iterator[float]:
    """The endless schedule of reconnect delays."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        yield backoff_delay(attempt, base=base, cap=cap, rand=rng.random())
        attempt += 1


class AmiSupervisor:
    """Owns the connection task; `start()`/`stop()` or `async with`."""

    def __init__(
        self,
        config: AmiConfig,
        *,
        clock: Clock | None = None,
        on_event: EventCallback | None = None,
        on_resync: ResyncCallback | None = None,
        event_parser: EventParser | None = None,
        rng: random.Random | None = None,
        name: str | None = None,
    ) -> None:
        self.config = config
        self.name = name or f"{config.host}:{config.port}"
        self._clock: Clock = clock or SystemClock()
        self._on_event = on_event
        self._on_resync = on_resync
        self._parse = event_parser or default_event_parser()
        self._rng = rng or random.Random()
        self._conn: AmiConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._up = asyncio.Event()
        self._stopping = False
        self.connects = 0
        self.last_error: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("supervisor already started")
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"ami-supervisor {self.name}")

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        conn = self._conn
        if conn is not None and conn.connected:
            await conn.close()
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._up.clear()

    async def __aenter__(self) -> AmiSupervisor:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.connected and self._up.is_set()

    @property
    def connection(self) -> AmiConnection | None:
        return self._conn

    async def wait_connected(self) -> None:
        await self._up.wait()

    # -- actions ---------------------------------------------------------------------------

    async def send(
        self,
        action: str,
        headers: Mapping[str, HeaderValue] | None = None,
        *,
        action_id: str | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Reply:
        conn = self._conn
        if conn is None or not self._up.is_set():
            raise AmiDisconnected(f"AMI {self.name} is not connected; {action} not sent")
        return await conn.send(
            action,
            headers,
            action_id=action_id,
            timeout=self.config.action_timeout if timeout is None else timeout,
            check=check,
        )

    # -- the loop --------------------------------------------------------------------------

    def _new_connection(self) -> AmiConnection:
        c = self.config
        conn = AmiConnection(
            c.host,
            c.port,
            username=c.username,
            secret=c.secret,
            auth=c.auth,
            clock=self._clock,
            event_parser=self._parse,
            name=self.name,
        )
        if self._on_event is not None:
            conn.subscribe(self._on_event)
        return conn

    async def _run(self) -> None:
        delays = backoff_delays(self.config.backoff_base, self.config.backoff_cap, self._rng)
        while not self._stopping:
            conn = self._new_connection()
            self._conn = conn
            try:
                await conn.connect()
                self.connects += 1
                await self._resync(conn)
                self._up.set()
                delays = backoff_delays(
                    self.config.backoff_base, self.config.backoff_cap, self._rng
                )
                await self._ping_until_dead(conn)
            except (AmiError, OSError) as exc:
                self.last_error = str(exc)
                level = logging.ERROR if isinstance(exc, AmiAuthError) else logging.WARNING
                log.log(level, "AMI %s: %s", self.name, exc)
            except Exception as exc:
                # A failing resync callback (say, the database is briefly locked) must not end
                # the supervisor: without it this server is never dialled again. Drop the
                # link and let the backoff loop connect and resync once more.
                self.last_error = f"resync failed: {exc}"
                log.exception("AMI %s: resync failed; reconnecting to try again", self.name)
            finally:
                self._up.clear()
                if conn.connected:
                    await conn.abort("supervisor reconnecting")
            if self._stopping:
                break
            delay = next(delays)
            log.info("AMI %s: reconnecting in %.2fs", self.name, delay)
            await self._clock.sleep(delay)

    async def _resync(self, conn: AmiConnection) -> None:
        reply = await conn.send("CoreShowChannels", timeout=self.config.action_timeout, check=True)
        channels = [self._parse(m) for m in reply.events]
        log.info("AMI %s: %d live channels after connect", self.name, len(channels))
        if self._on_resync is not None:
            result = self._on_resync(channels)
            if asyncio.iscoroutine(result):
                await result

    async def _ping_until_dead(self, conn: AmiConnection) -> None:
        closed = asyncio.ensure_future(conn.wait_closed())
        try:
            while True:
                tick = asyncio.ensure_future(self._clock.sleep(self.config.ping_interval))
                await asyncio.wait({closed, tick}, return_when=asyncio.FIRST_COMPLETED)
                if closed.done():
                    tick.cancel()
                    raise AmiDisconnected(f"link lost: {closed.result()}")
                await conn.send("Ping", timeout=self.config.ping_timeout)
        finally:
            closed.cancel()


__all__ = ["AmiConfig", "AmiSupervisor", "backoff_delay", "backoff_delays"]
