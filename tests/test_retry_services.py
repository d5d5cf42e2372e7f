from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.models import Lead, Phone
from schedules.config import DeskCalendar
from schedules.retry import Attempt, Outcome
from schedules.services import apply_outcome, book_appointment
from tests import schedules_rows as rows

SH = ZoneInfo("Asia/Shanghai")


async def test_customer_appointment_at_noon_is_booked_for_15_30_with_the_same_specialist(
    session: AsyncSession,
) -> None:
    (s,) = await rows.specialists(session, 1)
    _, lead = await rows.policy_with_lead(
        session,
        date(2026, 4, 5),
        status="assigned",
        owner_id=s.id,
        distributed_on=date(2026, 3, 9),
    )
    assert lead is not None
    now = datetime(2026, 3, 9, 10, 5, tzinfo=SH)
    when, reason = await book_appointment(
        lead, datetime(2026, 3, 9, 12, 0, tzinfo=SH), now=now, desk=DeskCalendar()
    )
    await session.commit()
    got = await session.get(Lead, lead.id, populate_existing=True)
    assert got is not None
    assert when == datetime(2026, 3, 9, 15, 30, tzinfo=SH) == got.next_attempt_at
    assert got.owner_id == s.id and got.status == "scheduled" and got.contact_result == "callback"
    assert "outside calling hours" in reason


async def test_unanswered_appointment_follows_the_three_call_rule(session: AsyncSession) -> None:
    (s,) = await rows.specialists(session, 1)
    _, lead = await rows.policy_with_lead(
        session,
        date(2026, 4, 5),
        status="assigned",
        owner_id=s.id,
        distributed_on=date(2026, 3, 9),
    )
    assert lead is not None
    desk = DeskCalendar()
    await book_appointment(
        lead,
        datetime(2026, 3, 9, 16, 0, tzinfo=SH),
        now=datetime(2026, 3, 9, 10, tzinfo=SH),
        desk=desk,
    )
    history: list[Attempt] = []
    for day in (9, 10, 11):
        at = datetime(2026, 3, day, 16, 0, tzinfo=SH)
        d = await apply_outcome(session, lead, "busy", at=at, history=history, desk=desk)
        history.append(Attempt(at, Outcome.BUSY, lead.phone_id))
    await session.commit()
    assert d.reason == "third unanswered call: marked inaccurate"
    got = await session.get(Lead, lead.id, populate_existing=True)
    assert got is not None and got.status == "closed" and got.contact_result == "unreachable"
    assert got.owner_id == s.id and got.attempt_count == 3
    phone = await session.get(Phone, got.phone_id, populate_existing=True)
    assert phone is not None and phone.accuracy == "inaccurate"
    assert phone.accuracy_reason == "third unanswered call: marked inaccurate"
