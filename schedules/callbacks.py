"""Booking a callback (预约回拨): the one rule for every path that books one.

A specialist's disposition `callback`, an automatic callback whose customer pressed 2 and was
not connected, and a supervisor's failed recording review all book the same way:

* the time: the one asked for, or (none, or not in the future) the next calling slot; a time
  outside the calling hours moves to the next window's start (`callback_time`, pure);
* the lead: `callback_at` and `next_attempt_at` at that time, and `scheduled` when it has an
  owner to call it (`book_callback`). The caller writes the `lead.status` outbox row for the
  change (`crm_sync.outbox.status_message`), in the same transaction. `book_callback` works
  on the lead or on the plain copy of it that `dialer.decisions.decide` decides over.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.models import Customer, Lead, LeadStatus, Policy
from schedules.retry import appointment_time
from schedules.windows import DEFAULT_TZ, CallingHours


def callback_time(
    chosen: datetime | None, *, now: datetime, hours: CallingHours, tz: str | None = None
) -> tuple[datetime, str]:
    """When a booked callback is dialled, and why (UTC).

    No time, or one not after `now`: the next calling slot (an open window counts). A time
    outside the calling hours: the next window's start."""
    if chosen is not None and chosen.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC)")
    if chosen is None or chosen <= now:
        chosen = hours.next_slots(now, 1, tz)[0].start
    return appointment_time(chosen, hours, tz)


class Bookable(Protocol):
    """A lead, or the plain copy of one a pure decision works on (dialer.decisions)."""

    owner_id: int | None
    status: str
    callback_at: datetime | None
    next_attempt_at: datetime | None


def book_callback(lead: Bookable, when: datetime) -> None:
    """Book `lead` for a callback at `when` (from `callback_time`). A lead with no owner keeps
    its status: nobody's queue would dial a `scheduled` lead without an owner."""
    lead.callback_at = when
    lead.next_attempt_at = when
    if lead.owner_id is not None:
        lead.status = LeadStatus.SCHEDULED.value


async def lead_time_zone(session: AsyncSession, lead: Lead) -> str:
    """The policyholder's time zone, in which the lead's calling hours are judged."""
    tz = await session.scalar(
        select(Customer.time_zone)
        .join(Policy, Policy.policyholder_id == Customer.id)
        .where(Policy.id == lead.policy_id)
    )
    return tz or DEFAULT_TZ


__all__ = ["Bookable", "book_callback", "callback_time", "lead_time_zone"]
