"""Retry decisions applied to leads through the service's own path (`dialer.results`).

The calendar's retry rules are pure (tests/test_retry.py); these check what the service writes
with them: an appointment kept with the same specialist, and the three-call rule for an
appointment that is never answered.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.models import Lead, Phone
from dialer.results import dispose
from schedules.config import DeskCalendar
from tests import schedules_rows as rows

SH = ZoneInfo("Asia/Shanghai")


async def _assigned_lead(session: AsyncSession) -> tuple[int, Lead]:
    (s,) = await rows.specialists(session, 1)
    _, lead = await rows.policy_with_lead(
        session,
        date(2026, 4, 5),
        status="assigned",
        owner_id=s.id,
        distributed_on=date(2026, 3, 9),
    )
    assert lead is not None
    return s.id, lead


async def _customer_asks_for(
    session: AsyncSession, lead: Lead, specialist: int, chosen: datetime, now: datetime
) -> None:
    """The specialist logs the contact result `callback` with the customer's chosen time."""
    await dispose(
        session,
        lead.id,
        specialist,
        "callback",
        callback_at=chosen,
        note=None,
        now=now,
        hours_for=DeskCalendar().hours,
    )


async def test_customer_appointment_at_noon_is_booked_for_15_30_with_the_same_specialist(
    session: AsyncSession,
) -> None:
    specialist, lead = await _assigned_lead(session)
    await _customer_asks_for(
        session,
        lead,
        specialist,
        datetime(2026, 3, 9, 12, 0, tzinfo=SH),
        now=datetime(2026, 3, 9, 10, 5, tzinfo=SH),
    )
    await session.commit()
    got = await session.get(Lead, lead.id, populate_existing=True)
    assert got is not None
    assert got.next_attempt_at == datetime(2026, 3, 9, 15, 30, tzinfo=SH) == got.callback_at
    assert got.owner_id == specialist
    assert got.status == "scheduled" and got.contact_result == "callback"


async def test_unanswered_appointment_follows_the_three_call_rule(session: AsyncSession) -> None:
    specialist, lead = await _assigned_lead(session)
    desk = DeskCalendar()
    await _customer_asks_for(
        session,
        lead,
        specialist,
        datetime(2026, 3, 9, 16, 0, tzinfo=SH),
        now=datetime(2026, 3, 9, 10, tzinfo=SH),
    )
    nexts = []
    for day in (9, 10, 11):
        eff = await rows.call_ended(
            session, lead, "busy", now=datetime(2026, 3, day, 16, 0, tzinfo=SH), desk=desk
        )
        nexts.append(eff.next_attempt_at)
    await session.commit()
    # An appointment's number is a callback number: busy means the next calling day, not
    # half an hour later as for a renewal call, and the third failure ends it.
    assert nexts[:2] == [
        datetime(2026, 3, 10, 9, 30, tzinfo=SH),
        datetime(2026, 3, 11, 9, 30, tzinfo=SH),
    ]
    got = await session.get(Lead, lead.id, populate_existing=True)
    assert got is not None and got.status == "closed" and got.contact_result == "unreachable"
    assert got.closed_reason == "third unanswered call: marked inaccurate"
    assert got.owner_id == specialist and got.attempt_count == 3
    phone = await session.get(Phone, got.phone_id, populate_existing=True)
    assert phone is not None and phone.accuracy == "inaccurate"
    assert phone.accuracy_reason == "third unanswered call: marked inaccurate"
