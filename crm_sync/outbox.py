"""Operating the outbox: what is waiting, what failed and why, and the hands-on fixes (retry a
parked message, park one that can never go, purge what was delivered). Used by the CLI
(`callcenter outbox …`), the supervisor API (`GET /api/outbox`) and the relay's alarm."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.exceptions import NotFound
from crm_sync.models import Lead, OutboxMessage, OutboxState

log = logging.getLogger(__name__)

# Consumed inside the service (by the recordings worker), never sent to the CRM: "this attempt
# ended with a recording file". Written in the attempt's result transaction, so a process
# killed between hang-up and ingest leaves it pending and the next relay hands it on.
TOPIC_ATTEMPT_RECORDING = "attempt.recording"
INTERNAL_TOPICS = frozenset({TOPIC_ATTEMPT_RECORDING})


def attempt_recording_message(
    session: AsyncSession, payload: dict[str, Any], now: datetime
) -> None:
    """The durable "attempt ended with a recording" message, keyed by the attempt (not the
    lead) so that a CRM outage holding a lead's messages back never holds back its ingest."""
    session.add(
        OutboxMessage(
            topic=TOPIC_ATTEMPT_RECORDING,
            key=f"attempt:{payload['attempt_id']}",
            payload=payload,
            created_at=now,
        )
    )


def lead_message(
    session: AsyncSession, topic: str, lead_id: int, payload: dict[str, Any], now: datetime
) -> None:
    """A message about a lead, in the caller's transaction (ordered per lead by the relay)."""
    session.add(OutboxMessage(topic=topic, key=f"lead:{lead_id}", payload=payload, created_at=now))


def status_message(
    session: AsyncSession, lead: Lead, old_status: str, reason: str, now: datetime
) -> None:
    """A `lead.status` message, if the lead's status changed from `old_status`."""
    if lead.status != old_status:
        lead_message(
            session,
            "lead.status",
            lead.id,
            {"lead_id": lead.id, "from": old_status, "to": lead.status, "reason": reason},
            now,
        )


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    counts: dict[str, dict[str, int]]  # topic -> state -> count
    oldest_undelivered_at: datetime | None
    oldest_undelivered_age: float | None  # seconds
    parked: int
    pending: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "pending": self.pending,
            "parked": self.parked,
            "oldest_undelivered_at": (
                self.oldest_undelivered_at.isoformat() if self.oldest_undelivered_at else None
            ),
            "oldest_undelivered_age_seconds": self.oldest_undelivered_age,
        }


async def status(session: AsyncSession, now: datetime) -> OutboxStatus:
    o = OutboxMessage
    rows = (
        await session.execute(select(o.topic, o.state, func.count()).group_by(o.topic, o.state))
    ).all()
    counts: dict[str, dict[str, int]] = {}
    for topic, state, n in rows:
        counts.setdefault(topic, {})[state] = n
    oldest = await session.scalar(
        select(func.min(o.created_at)).where(o.state == OutboxState.PENDING.value)
    )
    pending = sum(c.get(OutboxState.PENDING.value, 0) for c in counts.values())
    parked = sum(c.get(OutboxState.PARKED.value, 0) for c in counts.values())
    age = (now - oldest).total_seconds() if oldest is not None else None
    return OutboxStatus(counts, oldest, age, parked, pending)


def message_view(m: OutboxMessage) -> dict[str, Any]:
    return {
        "id": m.id,
        "topic": m.topic,
        "key": m.key,
        "state": m.state,
        "created_at": m.created_at.isoformat(),
        "delivered_at": m.delivered_at.isoformat() if m.delivered_at else None,
        "sink": m.sink,
        "attempts": m.attempts,
        "next_try_at": m.next_try_at.isoformat() if m.next_try_at else None,
        "lease_owner": m.lease_owner,
        "last_error": m.last_error,
        "parked_reason": m.parked_reason,
        "history": m.history or [],
    }


async def list_messages(
    session: AsyncSession,
    *,
    state: str | None = None,
    topic: str | None = None,
    key: str | None = None,
    limit: int = 50,
) -> list[OutboxMessage]:
    if state is not None and state not in {s.value for s in OutboxState}:
        raise ValueError(
            f"unknown state {state!r}; use one of {', '.join(s.value for s in OutboxState)}"
        )
    stmt = select(OutboxMessage).order_by(OutboxMessage.id).limit(limit)
    if state:
        stmt = stmt.where(OutboxMessage.state == state)
    if topic:
        stmt = stmt.where(OutboxMessage.topic == topic)
    if key:
        stmt = stmt.where(OutboxMessage.key == key)
    return list((await session.scalars(stmt)).all())


async def get(session: AsyncSession, message_id: int) -> OutboxMessage:
    m = await session.get(OutboxMessage, message_id)
    if m is None:
        raise NotFound(f"no outbox message {message_id} (see `callcenter outbox list`)")
    return m


async def retry(session: AsyncSession, ids: Sequence[int], now: datetime) -> int:
    """Parked or waiting messages become due now. A retried parked message goes after any
    message of its key already delivered: the receiver sorts by `id` if order matters."""
    o = OutboxMessage
    result = await session.execute(
        update(o)
        .where(o.id.in_(ids), o.state != OutboxState.DELIVERED.value)
        .values(state=OutboxState.PENDING.value, next_try_at=None, parked_reason=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def park(session: AsyncSession, ids: Sequence[int], reason: str, now: datetime) -> int:
    """Stop trying messages (e.g. one the receiver can never take): its key moves on."""
    o = OutboxMessage
    result = await session.execute(
        update(o)
        .where(o.id.in_(ids), o.state == OutboxState.PENDING.value)
        .values(
            state=OutboxState.PARKED.value,
            parked_reason=f"parked by hand at {now.isoformat()}: {reason}",
            lease_owner=None,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def purge(session: AsyncSession, now: datetime, retention: timedelta) -> int:
    """Delete messages delivered before `now - retention`. Parked ones stay until handled."""
    o = OutboxMessage
    result = await session.execute(
        delete(o)
        .where(o.state == OutboxState.DELIVERED.value, o.delivered_at < now - retention)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def alarm_text(st: OutboxStatus, alarm_age: float) -> str | None:
    """The alarm's words when the oldest undelivered message is older than `alarm_age`."""
    if st.oldest_undelivered_age is None or st.oldest_undelivered_age <= alarm_age:
        return None
    return (
        f"outbox: the oldest undelivered message is {st.oldest_undelivered_age:.0f} s old "
        f"(alarm at {alarm_age:.0f} s), {st.pending} pending, {st.parked} parked: is the CRM "
        "receiver up? See `callcenter outbox status` and `callcenter outbox list --state pending`"
    )
