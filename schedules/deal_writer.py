"""The distribution's bulk SQL: the due lead ids in, the deal out, on each database.

The deal fetches lead ids only (one aggregated value, not a million rows) and writes them back
with `UPDATE … FROM unnest(ids, owners)` over id-ordered chunks on PostgreSQL (a temporary
table and one `UPDATE … FROM` on SQLite). On PostgreSQL that update is HOT (migration
`0010_owner_queue`: no index of `leads` uses the columns it writes); the owner trigger adds
the dealt leads to `owner_queue`, which the distribution compacts first
(`compact_owner_queue`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy import Date, and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import bindparam

from crm_sync.models import Lead, LeadStatus, UtcDateTime
from schedules.jobdb import is_postgres, rowcount

log = logging.getLogger(__name__)

PG_CHUNK = 20_000  # leads per UPDATE of the deal on PostgreSQL
SQLITE_CHUNK = 50_000
SQLITE_WRITE_CACHE_KIB = -65536  # negative: KiB, i.e. 64 MiB


async def fetch_due_ids(session: AsyncSession, day: date, kinds: Sequence[str]) -> list[int]:
    where = and_(
        Lead.status == LeadStatus.DUE.value,
        Lead.owner_id.is_(None),
        Lead.kind.in_(list(kinds)),
        or_(Lead.due_on.is_(None), Lead.due_on <= day),
    )
    # One value instead of a million rows: far less memory and time.
    if await is_postgres(session):
        ids = await session.scalar(select(func.array_agg(Lead.id)).where(where))
        return list(ids or [])
    joined = await session.scalar(select(func.group_concat(Lead.id)).where(where))
    return [int(i) for i in joined.split(",")] if joined else []


# One chunk of the deal on PostgreSQL. The id range lets the planner join only the chunk's
# slice of the primary key, in id order, so the rewrite walks the heap and the indexes forward
# (one UPDATE of a million rows hash-joined in batches, with the stock 4 MB work_mem, visiting
# the rows in hash order and thrashing shared_buffers). Chunks also keep the owner trigger's
# transition table (migration 0009) small, and show progress.
_PG_DEAL_CHUNK = text(
    "UPDATE leads SET owner_id = v.owner, distributed_on = :day, status = 'assigned', "
    "updated_at = :now "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:owners AS integer[])) AS v(id, owner) "
    "WHERE leads.id = v.id AND leads.id BETWEEN :first AND :last "
    "AND leads.owner_id IS NULL AND leads.status = 'due'"
).bindparams(bindparam("day", type_=Date()), bindparam("now", type_=UtcDateTime()))


async def _write_allocation_pg(
    session: AsyncSession, ids: list[int], owners: list[int], day: date, now: datetime
) -> int:
    """`ids` ascending, `owners` parallel to them."""
    written = 0
    shown = 0
    for i in range(0, len(ids), PG_CHUNK):
        chunk = ids[i : i + PG_CHUNK]
        res = await session.execute(
            _PG_DEAL_CHUNK,
            {
                "ids": chunk,
                "owners": owners[i : i + PG_CHUNK],
                "first": chunk[0],
                "last": chunk[-1],
                "day": day,
                "now": now,
            },
        )
        written += rowcount(res)
        done = i + len(chunk)
        if len(ids) > PG_CHUNK and done * 10 // len(ids) > shown:
            shown = done * 10 // len(ids)
            log.info("distribution %s: %d of %d leads written", day, done, len(ids))
    return written


# Rewrites `owner_queue` (PostgreSQL) keeping only the ids still owned by the row's
# specialist with a specialist status: one array per specialist. Rows inserted by concurrent
# transactions are not in this statement's snapshot and stay as they are.
_PG_COMPACT_QUEUE = text(
    "WITH old AS (DELETE FROM owner_queue RETURNING specialist_id, lead_ids) "
    "INSERT INTO owner_queue (specialist_id, lead_ids) "
    "SELECT o.specialist_id, array_agg(DISTINCT l.id ORDER BY l.id) "
    "FROM old AS o CROSS JOIN LATERAL unnest(o.lead_ids) AS u(id) "
    "JOIN leads AS l ON l.id = u.id "
    "WHERE l.owner_id = o.specialist_id AND l.status IN ('assigned', 'scheduled') "
    "GROUP BY o.specialist_id"
)


async def compact_owner_queue(session: AsyncSession) -> int:
    """Drop the stale ids of `owner_queue` (leads re-owned, closed, deleted) and merge each
    specialist's rows into one; returns the rows written. Nothing to do on SQLite."""
    if not await is_postgres(session):
        return 0
    rows = rowcount(await session.execute(_PG_COMPACT_QUEUE))
    log.info("owner queue compacted: %d specialist row(s)", rows)
    return rows


async def write_allocation(
    session: AsyncSession, ids: list[int], owners: list[int], day: date, now: datetime
) -> int:
    if not ids:
        return 0
    if await is_postgres(session):
        return await _write_allocation_pg(session, ids, owners, day, now)
    # SQLite: the deal goes into a temporary table, then one UPDATE … FROM joins it (about
    # five times faster than a million single-row UPDATEs).
    conn = await session.connection()
    # The default 2 MB page cache thrashes on the leads indexes at this size; 64 MB for the
    # write, then back to what it was.
    cache = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar()
    await conn.exec_driver_sql(f"PRAGMA cache_size = {SQLITE_WRITE_CACHE_KIB}")
    await conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS schedules_deal "
        "(id INTEGER PRIMARY KEY, owner INTEGER NOT NULL)"
    )
    await conn.exec_driver_sql("DELETE FROM schedules_deal")
    for i in range(0, len(ids), SQLITE_CHUNK):
        await conn.exec_driver_sql(
            "INSERT INTO schedules_deal (id, owner) VALUES (?, ?)",
            list(zip(ids[i : i + SQLITE_CHUNK], owners[i : i + SQLITE_CHUNK], strict=True)),
        )
    res = await conn.exec_driver_sql(
        "UPDATE leads SET owner_id = d.owner, distributed_on = ?, status = 'assigned', "
        "updated_at = ? FROM schedules_deal AS d "
        "WHERE leads.id = d.id AND leads.owner_id IS NULL AND leads.status = 'due'",
        (day.isoformat(), now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")),
    )
    await conn.exec_driver_sql("DELETE FROM schedules_deal")
    await conn.exec_driver_sql(f"PRAGMA cache_size = {int(cache or -2000)}")
    return rowcount(res)
