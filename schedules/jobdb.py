"""What the calendar's database jobs share: the dialect, their advisory locks, row counts.

Each daily job is one transaction, idempotent, and on PostgreSQL serialised across service
instances by a transaction-scoped advisory lock (SQLite runs a single instance).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# pg_advisory_xact_lock keys (int64), one per daily job.
LOCK_DISTRIBUTION = 0x43_43_44_49_53_54_31  # "CCDIST1"
LOCK_TIMELINE = 0x43_43_54_49_4D_45_31  # "CCTIME1"


async def is_postgres(session: AsyncSession) -> bool:
    return (await session.connection()).dialect.name == "postgresql"


async def advisory_lock(session: AsyncSession, key: int) -> None:
    """Serialise a daily job across instances until the transaction ends (PostgreSQL)."""
    if await is_postgres(session):
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def rowcount(result: Any) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)
