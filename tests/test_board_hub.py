"""The board's hub and publisher on the database (SQLite and PostgreSQL), without a service:
an ended call taken from this process's publisher does not come back from the table's older
copy (the ended calls' latency tail of the board benchmark), other processes' rows are still
read, and a tombstone written with the changed rows removes only this process's row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.board.config import BoardSettings
from callcenter.board.live import BoardHub
from callcenter.board.models import BoardEntry
from callcenter.board.publisher import BoardPublisher
from common.clock import VirtualClock

NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


def _row(owner: str, rev: int, key: str, **data: Any) -> BoardEntry:
    return BoardEntry(
        kind="call", key=key, owner=owner, rev=rev, gone=False, data=data, updated_at=NOW
    )


async def test_an_ended_call_taken_locally_does_not_come_back_from_the_table(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = BoardHub(engine, sessions, VirtualClock(NOW), BoardSettings())
    seen = hub.subscribe()
    hub.take("me", 1, {("call", "att-1"): {"answered": None}}, [])
    hub.take("me", 2, {("call", "att-1"): {"answered": "10:00"}}, [])
    hub.take("me", 3, {}, [("call", "att-1")])
    # The writer is behind: the table still has the call as it was at revision 2; another
    # process has a call of its own.
    async with sessions() as s:
        s.add_all([_row("me", 2, "att-1", answered="10:00"), _row("other", 5, "att-9")])
        await s.commit()
    changed = await hub.refresh()
    assert changed == 1, "only the other process's call"
    assert ("call", "att-1") not in hub.entries
    assert hub.entries[("call", "att-9")][0] == "other"
    patches = [seen.get_nowait() for _ in range(seen.qsize())]
    assert b"att-1" not in patches[-1] and b"att-9" in patches[-1]


async def test_a_tombstone_in_the_upsert_leaves_another_process_s_row_alone(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    publisher = BoardPublisher(cast(Any, _NoDialer()), sessions, VirtualClock(NOW), owner="me")
    async with sessions() as s:
        s.add_all([_row("me", 1, "att-1"), _row("other", 4, "att-2")])
        await s.commit()
    publisher._pending = {("call", "att-1"): (2, None), ("call", "att-2"): (2, None)}
    assert await publisher.write() == 2
    async with sessions() as s:
        rows = {r.key: r for r in (await s.scalars(select(BoardEntry))).all()}
    assert (rows["att-1"].gone, rows["att-1"].rev, rows["att-1"].data) == (True, 2, {})
    assert (rows["att-2"].gone, rows["att-2"].owner, rows["att-2"].rev) == (False, "other", 4)


class _NoDialer:
    """The publisher's dialer is not used by `write`."""
