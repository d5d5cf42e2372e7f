"""Retention: recordings older than `retention_days` are deleted, except those a supervisor
kept; each deletion is told to the CRM through the outbox (`recording.deleted`).

The row goes first, in its own transaction with its outbox message; the file after the
commit, so a failure leaves an orphan file that the integrity check reports, never a row
pointing at nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import OutboxMessage
from recordings.models import Recording
from recordings.store import RecordingStore

log = logging.getLogger(__name__)

TOPIC_DELETED = "recording.deleted"


@dataclass
class RetentionReport:
    cutoff: str
    dry_run: bool
    deleted: list[dict[str, Any]] = field(default_factory=list)
    kept: int = 0


async def run_retention(
    sessions: async_sessionmaker[AsyncSession],
    store: RecordingStore,
    *,
    now: datetime,
    retention_days: int,
    dry_run: bool = False,
) -> RetentionReport:
    """Delete recordings older than `retention_days`, except those a supervisor kept."""
    cutoff = now - timedelta(days=retention_days)
    report = RetentionReport(cutoff=cutoff.isoformat(), dry_run=dry_run)
    async with sessions() as s:
        old = (
            await s.scalars(
                select(Recording).where(Recording.ended_at < cutoff).order_by(Recording.id)
            )
        ).all()
    for rec in old:
        if rec.keep:
            report.kept += 1
            continue
        item = {
            "recording_id": rec.id,
            "attempt_id": rec.attempt_id,
            "lead_id": rec.lead_id,
            "ended_at": rec.ended_at.isoformat(),
            "key": rec.storage_key,
        }
        if dry_run or await _delete(sessions, store, rec, item, now):
            report.deleted.append(item)
    return report


async def _delete(
    sessions: async_sessionmaker[AsyncSession],
    store: RecordingStore,
    rec: Recording,
    item: dict[str, Any],
    now: datetime,
) -> bool:
    """Delete one recording: its row with an outbox message, then its file. False when a
    supervisor kept it meanwhile."""
    async with sessions() as s, s.begin():
        gone = await s.execute(
            delete(Recording).where(Recording.id == rec.id, Recording.keep.is_(False))
        )
        if not gone.rowcount:  # type: ignore[attr-defined]
            return False  # kept meanwhile
        if rec.storage_key:
            s.add(
                OutboxMessage(
                    topic=TOPIC_DELETED,
                    key=f"lead:{rec.lead_id}",
                    payload={**item, "reason": "retention", "deleted_at": now.isoformat()},
                    created_at=now,
                )
            )
    # After the commit: a failure here leaves an orphan the check reports, never a row
    # pointing at nothing.
    if rec.storage_key:
        try:
            await store.delete(rec.storage_key)
        except Exception as exc:
            log.warning("retention: could not delete %s: %s", rec.storage_key, exc)
    log.info(
        "retention: deleted recording %s (attempt %s, lead %s, ended %s, %s)",
        rec.id,
        rec.attempt_id,
        rec.lead_id,
        item["ended_at"],
        rec.storage_key,
    )
    return True
