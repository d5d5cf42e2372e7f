"""The board's reader: the whole desk's live state, kept in memory from `board_entries`, and
fanned out to every open board (server-sent events, see http.py).

PostgreSQL: LISTEN `callcenter_board` on a connection of its own (asyncpg `add_listener`);
each NOTIFY names a process and its revision, and the reader fetches that process's rows
newer than what it has. SQLite (one process) and a lost listener: a short poll asks which
process has a newer revision (this process's own changes come from its publisher directly,
`take`, and are not read back). Either way one fetch serves every open board: the changes are
encoded once and the same bytes go to each browser (a patch of the rows that changed, never
the whole board). Figures and alerts come from `BoardService.figures` every few seconds and
soon after a call ends; they are sent only when they differ from the last ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.board.config import BoardSettings
from callcenter.board.models import BoardEntry
from callcenter.board.publisher import CHANNEL
from callcenter.board.rules import Key, stale_owners
from common.clock import Clock
from common.pglisten import PgListener

log = logging.getLogger(__name__)

CLOSE = b""
QUEUE_LIMIT = 200  # a browser this far behind is dropped; it reconnects and gets a snapshot
KINDS = ("seat", "call", "link", "process")

Figures = Callable[[dict[Key, dict[str, Any]], datetime], Awaitable[dict[str, Any]]]


def sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class BoardHub:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        cfg: BoardSettings,
        figures: Figures | None = None,
        tz: str = "Asia/Shanghai",
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.clock = clock
        self.cfg = cfg
        self.figures_source = figures
        self.tz = tz  # the desk's: the page's clock shows it
        self.entries: dict[Key, tuple[str, int, dict[str, Any]]] = {}
        self.known: dict[str, int] = {}
        self.figures: dict[str, Any] = {}
        self._figures_json = ""
        self._subscribers: set[asyncio.Queue[bytes]] = set()
        self._wake = asyncio.Event()
        self._figures_due = asyncio.Event()
        self.listener = PgListener(engine, "board")
        self.listener.listen(CHANNEL, self.notified)
        self.fetches = 0
        self.patches = 0
        # The process whose publisher hands its changes straight to `take`: its rows in the
        # table are never read back (they can only be older than what `take` had, and
        # reading them back put an ended call on the board again until its tombstone was
        # written: the ended calls' latency tail of issue 15's benchmark).
        self.local_owner: str | None = None

    # -- subscribers ---------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[bytes]:
        q: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_LIMIT)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[bytes]) -> None:
        self._subscribers.discard(q)

    @property
    def watching(self) -> int:
        return len(self._subscribers)

    def snapshot(self) -> dict[str, Any]:
        by_kind: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
        for (kind, key), (_owner, _rev, data) in self.entries.items():
            by_kind.setdefault(kind, {})[key] = data
        return {
            **by_kind,
            "figures": self.figures,
            "server_now": self.clock.now().isoformat(),
            "tz": self.tz,
        }

    def _broadcast(self, message: bytes) -> None:
        for q in list(self._subscribers):
            try:
                q.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("a board is too slow: dropped (it reconnects)")
                self._subscribers.discard(q)

    def close_all(self) -> None:
        for q in list(self._subscribers):
            while True:
                try:
                    q.put_nowait(CLOSE)
                    break
                except asyncio.QueueFull:
                    q.get_nowait()

    # -- reading the shared state ----------------------------------------------------------

    def notified(self, payload: str) -> None:
        """A NOTIFY: wake the reader unless it already has that revision."""
        owner, _, rev = payload.rpartition(" ")
        if owner == self.local_owner:
            return
        if not rev.isdigit() or self.known.get(owner, -1) < int(rev):
            self._wake.set()

    async def refresh(self) -> int:
        """Fetch every process's rows newer than what this board has; apply and broadcast
        them as one patch. Returns how many rows changed."""
        async with self.sessions() as s:
            heads = (
                await s.execute(
                    select(BoardEntry.owner, func.max(BoardEntry.rev)).group_by(BoardEntry.owner)
                )
            ).all()
            newer = [(o, r) for o, r in heads if r > self.known.get(o, 0) and o != self.local_owner]
            rows: list[BoardEntry] = []
            for owner, _rev in newer:
                rows += (
                    await s.scalars(
                        select(BoardEntry).where(
                            BoardEntry.owner == owner, BoardEntry.rev > self.known.get(owner, 0)
                        )
                    )
                ).all()
        self.fetches += 1
        for owner, head in newer:
            self.known[owner] = head
        return self._apply(rows)

    def take(
        self, owner: str, rev: int, changed: dict[Key, dict[str, Any]], gone: list[Key]
    ) -> int:
        """This process's own changes, straight from its publisher (no database round
        trip); the table's copy of them is not read (`local_owner`)."""
        self.local_owner = owner
        rows = [
            BoardEntry(kind=k[0], key=k[1], owner=owner, rev=rev, gone=False, data=data)
            for k, data in changed.items()
        ] + [
            BoardEntry(kind=k[0], key=k[1], owner=owner, rev=rev, gone=True, data={}) for k in gone
        ]
        return self._apply(rows)

    def _apply(self, rows: list[BoardEntry]) -> int:
        put: dict[str, dict[str, Any]] = {}
        drop: dict[str, list[str]] = {}
        ended = flipped = False
        for row in sorted(rows, key=lambda r: r.rev):
            k = (row.kind, row.key)
            have = self.entries.get(k)
            if have is not None and have[0] == row.owner and have[1] >= row.rev:
                continue
            if row.gone:
                if have is not None and have[0] == row.owner:
                    del self.entries[k]
                    drop.setdefault(row.kind, []).append(row.key)
                    put.get(row.kind, {}).pop(row.key, None)
                    ended = ended or row.kind == "call"
                continue
            if row.kind == "link":
                flipped = (
                    flipped or have is None or have[2].get("connected") != row.data.get("connected")
                )
            self.entries[k] = (row.owner, row.rev, row.data)
            put.setdefault(row.kind, {})[row.key] = row.data
            if row.kind in drop and row.key in drop[row.kind]:
                drop[row.kind].remove(row.key)
        changed = sum(map(len, put.values())) + sum(map(len, drop.values()))
        if changed:
            self.patches += 1
            self._broadcast(
                sse("patch", {"set": put, "del": drop, "server_now": self.clock.now().isoformat()})
            )
        if ended or flipped:
            self._figures_due.set()  # figures moved, or a link alert came or went
        return changed

    def drop_owner(self, owner: str) -> None:
        """A process gone silent: its seats and calls leave the board (an alert says so)."""
        keys = [k for k, v in self.entries.items() if v[0] == owner and k[0] != "process"]
        drop: dict[str, list[str]] = {}
        for k in keys:
            del self.entries[k]
            drop.setdefault(k[0], []).append(k[1])
        if drop:
            self._broadcast(sse("patch", {"set": {}, "del": drop}))

    # -- figures and alerts ----------------------------------------------------------------

    async def update_figures(self) -> bool:
        if self.figures_source is None:
            return False
        now = self.clock.now()
        processes = [v[2] for k, v in self.entries.items() if k[0] == "process"]
        for owner in stale_owners(processes, now, self.cfg):
            self.drop_owner(owner)
        figures = await self.figures_source({k: v[2] for k, v in self.entries.items()}, now)
        encoded = json.dumps(figures, ensure_ascii=False, sort_keys=True)
        if encoded == self._figures_json:
            return False
        self.figures, self._figures_json = figures, encoded
        self._broadcast(sse("figures", figures))
        return True

    # -- the tasks (owned by the app's cleanup_ctx) ---------------------------------------------

    async def _wait(self, event: asyncio.Event, timeout: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(timeout))
        waker = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, waker):
                t.cancel()

    async def run(self) -> None:
        """Keep the state current: woken by NOTIFY, or polling (SQLite, or no listener)."""
        while True:
            await self.listener.ensure()
            self._wake.clear()
            try:
                await self.refresh()
            except Exception:
                log.exception("board: reading the live state failed; trying again")
            # With a listener the poll is only a safety net.
            poll = self.cfg.heartbeat_seconds if self.listener.active else self.cfg.poll_seconds
            await self._wait(self._wake, poll)

    async def run_figures(self) -> None:
        """Figures and alerts: every `stats_seconds`, and soon after a call ended."""
        while True:
            self._figures_due.clear()
            try:
                await self.update_figures()
            except Exception:
                log.exception("board: the figures failed; trying again")
            await self._wait(self._figures_due, self.cfg.stats_seconds)
            # A burst of ended calls makes one query, not one each.
            await self.clock.sleep(min(1.0, self.cfg.stats_seconds))

    async def stop(self) -> None:
        await self.listener.close()
