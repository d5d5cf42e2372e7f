"""Writing to the CRM outbox: every change the external CRM must hear of becomes an
`OutboxMessage` in the caller's transaction (so it sees exactly what was committed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.models import Lead, OutboxMessage


def outbox(
    session: AsyncSession, topic: str, lead_id: int, payload: dict[str, Any], now: datetime
) -> None:
    session.add(OutboxMessage(topic=topic, key=f"lead:{lead_id}", payload=payload, created_at=now))


def status_outbox(
    session: AsyncSession, lead: Lead, old_status: str, reason: str, now: datetime
) -> None:
    """A `lead.status` message, if the lead's status changed from `old_status`."""
    if lead.status != old_status:
        outbox(
            session,
            "lead.status",
            lead.id,
            {"lead_id": lead.id, "from": old_status, "to": lead.status, "reason": reason},
            now,
        )


__all__ = ["outbox", "status_outbox"]
