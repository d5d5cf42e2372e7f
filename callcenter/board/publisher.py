"""One service process's share of the live desk: its seats, calls in flight and AMI links,
written to `board_entries` (callcenter.board.models) for every board of every process.

The dialer tells what changed through its public events (the engine's seat listeners, the
bus's OriginateSent, CallBridged, CallHungUp, AttemptSettled, PbxShuttingDown); the publisher only marks
itself dirty then, and a single flush task coalesces a burst of events into one update:
it builds what the events touched, diffs it against what it wrote last, hands the changed
rows (with the next revision of its own) to this process's board at once, and to the writer,
which writes them and (PostgreSQL) NOTIFYs `callcenter_board` with "<owner> <revision>" in
the same statement, so the notification goes out with the rows. A heartbeat task re-checks
everything every few seconds (link health and trunk use have no event) and refreshes the
process's own row, by which boards tell that it is alive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.board.models import BoardEntry
from callcenter.board.rules import Key, call_entry, link_entry, seat_entry
from common.clock import Clock
from dialer.domain import (
    AttemptSettled,
    CallBridged,
    CallHungUp,
    OriginateSent,
    PbxShuttingDown,
)
from dialer.engine import DialerEngine
from dialer.seats import Seat

log = logging.getLogger(__name__)

CHANNEL = "callcenter_board"
TOMBSTONE_LIFE = timedelta(minutes=1)  # a poller (SQLite) sees an ended call go within this
DEAD_PROCESS = timedelta(minutes=10)  # rows of a process silent this long are removed


# The upsert of `_upsert` (a tombstone replaces only this process's row) and the NOTIFY at
# once; arrays, so that the statement's text, and so asyncpg's prepared statement, is the
# same whatever the number of rows.
_PG_WRITE = text(
    f"""
WITH up AS (
    INSERT INTO {BoardEntry.__tablename__} AS b (kind, key, owner, rev, gone, data, updated_at)
    SELECT t.kind, t.key, :owner, t.rev, t.gone, CAST(t.data AS json), :at
    FROM unnest(CAST(:kinds AS varchar[]), CAST(:keys AS varchar[]), CAST(:revs AS bigint[]),
                CAST(:gones AS boolean[]), CAST(:datas AS text[])) AS t(kind, key, rev, gone, data)
    ON CONFLICT (kind, key) DO UPDATE SET owner = excluded.owner, rev = excluded.rev,
        gone = excluded.gone, data = excluded.data, updated_at = excluded.updated_at
    WHERE b.owner = excluded.owner OR NOT excluded.gone
)
SELECT pg_notify(:channel, :payload)
"""
)


def new_owner() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class BoardPublisher:
    def __init__(
        self,
        engine: DialerEngine,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        coalesce_seconds: float = 0.02,
        heartbeat_seconds: float = 5.0,
        owner: str | None = None,
        write_seconds: float = 0.0,
    ) -> None:
        self.write_every = write_seconds
        self.engine = engine
        self.sessions = sessions
        self.clock = clock
        self.owner = owner or new_owner()
        self.coalesce = coalesce_seconds
        self.heartbeat = heartbeat_seconds
        self.rev = 0
        self.flushes = 0
        self._dirty = asyncio.Event()
        self._published: dict[Key, dict[str, Any]] = {}
        self._started: dict[str, str] = {}  # attempt id -> when sent (ISO)
        self._answered: dict[str, str] = {}  # attempt id -> when bridged (ISO)
        self._over: set[str] = set()  # hung up, result not written yet
        self._marked: set[Key] = set()  # what the events since the last flush touched
        # Rows waiting for the database: key -> (revision, data or None for gone).
        self._pending: dict[Key, tuple[int, dict[str, Any] | None]] = {}
        self._to_write = asyncio.Event()
        self._pg: bool | None = None
        # This process's own board takes the changes at once, before the database has them
        # (the hub's `take`); other processes' boards read them from the table.
        self.local: Callable[[str, int, dict[Key, dict[str, Any]], list[Key]], object] | None = None

    def attach(self) -> None:
        """Listen to the dialer's public events (the composition root calls it once)."""
        self.engine.seat_listeners.append(self._seat_changed)
        bus = self.engine.bus
        bus.subscribe(OriginateSent, self._sent)
        bus.subscribe(CallBridged, self._bridged)
        bus.subscribe(CallHungUp, self._hung_up)
        bus.subscribe(AttemptSettled, self._ended)
        bus.subscribe(PbxShuttingDown, lambda e: self._mark(("link", e.server)))

    # -- the dialer's events: mark dirty, nothing else (publishing never awaits) ----------

    def _mark(self, key: Key) -> None:
        self._marked.add(key)
        self._dirty.set()

    def _seat_changed(self, seat: Seat) -> None:
        self._mark(("seat", str(seat.specialist_id)))
        if seat.attempt_id:  # ringing, answered: the call's row moves with its seat
            self._mark(("call", seat.attempt_id))

    def _sent(self, e: OriginateSent) -> None:
        self._started[e.attempt_id] = e.at.isoformat()
        self._mark(("call", e.attempt_id))

    def _bridged(self, e: CallBridged) -> None:
        self._answered.setdefault(e.attempt_id, self.clock.now().isoformat())
        self._mark(("call", e.attempt_id))

    def _hung_up(self, e: CallHungUp) -> None:
        # Off the board at the PBX's hang-up, not after the result is written.
        self._over.add(e.attempt_id)
        self._mark(("call", e.attempt_id))

    def _ended(self, e: AttemptSettled) -> None:
        attempt_id = e.live.attempt_id
        self._over.discard(attempt_id)
        self._started.pop(attempt_id, None)
        self._answered.pop(attempt_id, None)
        self._mark(("call", attempt_id))

    # -- the view of this process --------------------------------------------------------

    def view(self, now: datetime) -> dict[Key, dict[str, Any]]:
        out: dict[Key, dict[str, Any]] = {}
        for seat in self.engine.seats.values():
            out[("seat", str(seat.specialist_id))] = seat_entry(seat)
        live = [str(call["attempt_id"]) for call in self.engine.live_calls()]
        for aid in live:
            entry = self.entry(("call", aid), now)
            if entry is not None:
                out[("call", aid)] = entry
        # Whatever an event missed (a result that never came) is forgotten here.
        now_live = set(live)
        self._over &= now_live
        for memo in (self._started, self._answered):
            for aid in set(memo) - now_live:
                del memo[aid]
        out.update(self.view_links())
        return out

    def view_links(self) -> dict[Key, dict[str, Any]]:
        out: dict[Key, dict[str, Any]] = {}
        for link in self.engine.health():
            pbx = self.engine.pbx(link["server"])
            out[("link", link["server"])] = link_entry(link, {} if pbx is None else pbx.trunks)
        return out

    def entry(self, key: Key, now: datetime) -> dict[str, Any] | None:
        """One seat, call or link as it is now (None: not there any more). A flush builds
        only what the events marked; the heartbeat builds the whole `view`."""
        kind, name = key
        if kind == "seat":
            seat = self.engine.seats.get(int(name))
            return None if seat is None else seat_entry(seat)
        if kind == "call":
            live = self.engine.live_attempt(name)
            pbx = None if live is None else self.engine.pbx(live.server)
            if live is None or pbx is None or name in self._over:
                return None
            state = pbx.tracker.state_of(name)
            started = self._started.setdefault(name, now.isoformat())
            return call_entry(
                live,
                state.value if state is not None else "reserved",
                started,
                self._answered.get(name),
            )
        return self.view_links().get(key)

    def diff(
        self, view: Mapping[Key, dict[str, Any] | None], *, whole: bool = True
    ) -> tuple[dict[Key, dict[str, Any]], list[Key]]:
        """What differs from the last flush. `whole`: `view` is everything this process has
        (a key not in it is gone); else only the keys it names are compared."""
        changed = {k: v for k, v in view.items() if v is not None and self._published.get(k) != v}
        if whole:
            gone = [k for k in self._published if view.get(k) is None]
        else:
            gone = [k for k, v in view.items() if v is None and k in self._published]
        return changed, gone

    # -- writing -------------------------------------------------------------------------

    def flush(self, *, beat: bool = False) -> int:
        """Take what changed since the last flush: this process's board gets it at once, the
        database writer next (`write`). Returns the number of rows that changed."""
        now = self.clock.now()
        if beat:
            view: dict[Key, dict[str, Any] | None] = dict(self.view(now))
        else:
            view = {k: self.entry(k, now) for k in self._marked}
            # The links have no event of their own (a reconnect, trunk use): few, so always.
            view.update((k, v) for k, v in self.view_links().items())
        self._marked.clear()
        changed, gone = self.diff(view, whole=beat)
        if beat:
            changed[("process", self.owner)] = {
                "owner": self.owner,
                "at": now.isoformat(),
                "heartbeat": self.heartbeat,
                "servers": sorted(k[1] for k in view if k[0] == "link"),
            }
        if not changed and not gone:
            return 0
        self.rev += 1
        rev = self.rev
        if self.local is not None:
            self.local(self.owner, rev, changed, gone)
        for k, v in changed.items():
            self._pending[k] = (rev, v)
            if k[0] != "process":
                self._published[k] = v
        for k in gone:
            self._pending[k] = (rev, None)
            self._published.pop(k, None)
        self.flushes += 1
        self._to_write.set()
        return len(changed) + len(gone)

    async def write(self, *, sweep: bool = False) -> int:
        """Write the pending rows at once (one statement on PostgreSQL, `_write_pg`; one
        transaction otherwise), each with the revision it changed at, and NOTIFY the newest
        revision with them. On failure they stay pending."""
        batch, self._pending = self._pending, {}
        self._to_write.clear()
        if not batch and not sweep:
            return 0
        now = self.clock.now()
        try:
            async with self.sessions() as s:
                if self._pg is None:
                    self._pg = s.get_bind().dialect.name == "postgresql"
                if self._pg and batch and not sweep:
                    await self._write_pg(s, batch, now)
                    return len(batch)
                # Tombstones go in the same statement as the changed rows (one round trip
                # for a burst of ended calls, not one UPDATE each).
                await self._upsert(s, batch, now)
                if sweep:
                    await self._sweep(s, now)
                if self._pg and batch:
                    head = max(rev for rev, _ in batch.values())
                    await s.execute(
                        text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": CHANNEL, "payload": f"{self.owner} {head}"},
                    )
                await s.commit()
        except BaseException:
            for k, v in batch.items():  # newer changes taken meanwhile win
                self._pending.setdefault(k, v)
            self._to_write.set()
            raise
        return len(batch)

    async def _write_pg(
        self, s: AsyncSession, rows: Mapping[Key, tuple[int, dict[str, Any] | None]], now: datetime
    ) -> None:
        """PostgreSQL: the rows and the NOTIFY in one statement of one shape, outside a
        transaction (it is atomic by itself): one round trip ten times a second instead of
        four (BEGIN, the upsert, the NOTIFY, COMMIT), on the event loop the dialer shares."""
        await s.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        kinds, keys, revs, gones, datas = [], [], [], [], []
        for (kind, key), (rev, data) in rows.items():
            kinds.append(kind)
            keys.append(key)
            revs.append(rev)
            gones.append(data is None)
            datas.append(json.dumps({} if data is None else data, ensure_ascii=False))
        head = max(revs)
        await s.execute(
            _PG_WRITE,
            {
                "owner": self.owner,
                "at": now,
                "kinds": kinds,
                "keys": keys,
                "revs": revs,
                "gones": gones,
                "datas": datas,
                "channel": CHANNEL,
                "payload": f"{self.owner} {head}",
            },
        )

    async def _upsert(
        self, s: AsyncSession, rows: Mapping[Key, tuple[int, dict[str, Any] | None]], now: datetime
    ) -> None:
        if not rows:
            return
        values = [
            {
                "kind": kind,
                "key": key,
                "owner": self.owner,
                "rev": rev,
                "gone": data is None,
                "data": {} if data is None else data,
                "updated_at": now,
            }
            for (kind, key), (rev, data) in rows.items()
        ]
        insert = postgresql.insert if self._pg else sqlite.insert
        stmt = insert(BoardEntry)
        stmt = stmt.on_conflict_do_update(
            index_elements=["kind", "key"],
            set_={
                c: getattr(stmt.excluded, c) for c in ("owner", "rev", "gone", "data", "updated_at")
            },
            # A tombstone removes only this process's row (another may own the key now).
            where=or_(BoardEntry.owner == stmt.excluded.owner, stmt.excluded.gone.is_(False)),
        )
        await s.execute(stmt, values)

    async def _sweep(self, s: AsyncSession, now: datetime) -> None:
        """Drop this process's old tombstones, and every row of a process long silent."""
        await s.execute(
            delete(BoardEntry).where(
                BoardEntry.owner == self.owner,
                BoardEntry.gone.is_(True),
                BoardEntry.updated_at < now - TOMBSTONE_LIFE,
            )
        )
        dead = (
            await s.scalars(
                select(BoardEntry.owner).where(
                    BoardEntry.kind == "process", BoardEntry.updated_at < now - DEAD_PROCESS
                )
            )
        ).all()
        if dead:
            log.info("board: removing the rows of silent processes %s", ", ".join(dead))
            await s.execute(delete(BoardEntry).where(BoardEntry.owner.in_(dead)))

    async def withdraw(self) -> None:
        """At a clean stop: this process's rows go, so boards drop them at once."""
        async with self.sessions() as s:
            rows = (
                await s.execute(
                    select(BoardEntry.kind, BoardEntry.key).where(BoardEntry.owner == self.owner)
                )
            ).all()
            self.rev += 1
            await s.execute(
                update(BoardEntry)
                .where(BoardEntry.owner == self.owner)
                .values(gone=True, rev=self.rev, data={}, updated_at=self.clock.now())
            )
            if self._pg and rows:
                await s.execute(
                    text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": CHANNEL, "payload": f"{self.owner} {self.rev}"},
                )
            await s.commit()

    async def run(self) -> None:
        """The flush task: on every mark, after a short coalescing pause. Owned by the
        app's cleanup_ctx (callcenter.board.wiring), with `run_heartbeat` and `run_writer`.

        It waits on the event itself, not on "the event or the heartbeat's timeout": that
        wait took two helper tasks per flush and three turns of the event loop between the
        dialer's event and the flush, each as long as everything else the busy loop had to
        run (the AMI → board latency of issue 15's benchmark on PostgreSQL)."""
        while True:
            await self._dirty.wait()
            if self.coalesce > 0:
                await self.clock.sleep(self.coalesce)
            self._dirty.clear()
            self._flush_safely()

    async def run_heartbeat(self) -> None:
        """Everything re-checked every `heartbeat` seconds (link health and trunk use have
        no event) and the process's own row refreshed, by which boards tell it is alive."""
        while True:
            self._flush_safely(beat=True)
            await self.clock.sleep(self.heartbeat)

    def _flush_safely(self, *, beat: bool = False) -> None:
        try:
            self.flush(beat=beat)
        except Exception:
            log.exception("board: reading the dialer's state failed")

    async def run_writer(self) -> None:
        """The database writer: whatever is pending, in one transaction; a slow write
        (SQLite's single writer) only makes the next batch bigger, never the board later."""
        swept = self.clock.monotonic()
        while True:
            await self._to_write.wait()
            sweep = self.clock.monotonic() - swept >= TOMBSTONE_LIFE.total_seconds()
            try:
                await self.write(sweep=sweep)
                if sweep:
                    swept = self.clock.monotonic()
            except Exception:
                log.exception("board: writing the live state failed; retrying")
                await self.clock.sleep(1.0)
            if self.write_every > 0:
                # A flush every 20 ms made as many transactions (and NOTIFYs, and reads by
                # every other board) on the event loop the dialer shares: one per interval
                # carries them all.
                await self.clock.sleep(self.write_every)
