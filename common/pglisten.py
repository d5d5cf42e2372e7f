"""PostgreSQL LISTEN on a connection of its own, reopened when it was lost.

A NOTIFY only wakes its owner sooner: owners keep polling, so a failed or lost LISTEN
falls back to polling instead of stopping the work. On other databases it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

Notified = Callable[[str], None]
# Set in the pool record's `info` of a listening connection: it is checked out for as long as
# its owner lives, on purpose. Whoever watches the pool for work in flight (the tests'
# virtual-clock driver) leaves it out instead of waiting for it to come back.
LISTENING = "pglisten.listening"


class PgListener:
    """The listening connection of one owner, for its channels and their callbacks."""

    def __init__(self, engine: AsyncEngine, owner: str) -> None:
        self._engine = engine
        self._owner = owner  # names the owner in the log
        self._pg = engine.dialect.name == "postgresql"
        self._channels: dict[str, Notified] = {}
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()  # several workers may share one listener

    def listen(self, channel: str, callback: Notified) -> None:
        """Add a channel; it takes effect when the connection is (re)opened."""
        self._channels[channel] = callback

    @property
    def active(self) -> bool:
        return self._conn is not None

    async def ensure(self) -> bool:
        """Open the connection if there is none or it was closed; True when listening."""
        if not self._pg:
            return False
        async with self._lock:
            if self._conn is not None:
                raw = await self._conn.get_raw_connection()
                if not raw.driver_connection.is_closed():  # type: ignore[union-attr]
                    return True
                await self._close()
            try:
                conn = await self._engine.connect()
                raw = await conn.get_raw_connection()
                raw.info[LISTENING] = self._owner
                driver = raw.driver_connection
                for channel, callback in self._channels.items():
                    await driver.add_listener(  # type: ignore[union-attr]
                        channel, lambda _c, _pid, _ch, payload, cb=callback: cb(payload)
                    )
                self._conn = conn
            except Exception:
                log.exception("%s: LISTEN failed; polling instead", self._owner)
            return self._conn is not None

    async def close(self) -> None:
        async with self._lock:
            await self._close()

    async def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
