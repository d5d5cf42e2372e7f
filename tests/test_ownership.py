"""Every owner change is recorded like the daily deal (schedules.ownership.change_owner)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from schedules.config import DeskCalendar
from schedules.models import DistributionRun
from schedules.ownership import change_owner
from tests import schedules_rows as db_rows

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=SH)


async def test_a_new_owner_is_recorded_as_a_one_lead_deal(session: AsyncSession) -> None:
    (first, second) = await db_rows.specialists(session, 2)
    _, lead = await db_rows.policy_with_lead(
        session,
        date(2026, 12, 26),
        status="assigned",
        owner_id=first.id,
        distributed_on=date(2026, 11, 30),
    )
    assert lead is not None
    assert change_owner(session, lead, second.id, day=date(2026, 12, 1), reason="why", now=NOW)
    assert not change_owner(session, lead, second.id, day=date(2026, 12, 1), reason="x", now=NOW)
    await session.flush()
    assert (lead.owner_id, lead.distributed_on) == (second.id, date(2026, 12, 1))
    runs = (await session.scalars(select(DistributionRun))).all()
    assert [(r.day, r.allocation, r.counts[str(second.id)]) for r in runs] == [
        (
            date(2026, 12, 1),
            {str(second.id): [lead.id]},
            {"new": 1, "reason": "why", "previous_owner": first.id},
        )
    ]


async def test_a_callback_booked_to_the_least_loaded_specialist_is_audited(
    session: AsyncSession,
) -> None:
    """Key 2 with nobody free: the lead nobody owned goes to the least-loaded specialist, and
    the change is in the audit like a deal (it used to leave no trace)."""
    (specialist,) = await db_rows.specialists(session, 1)
    _, lead = await db_rows.policy_with_lead(
        session, date(2026, 12, 26), kind="callback", status="due"
    )
    assert lead is not None
    effects = await db_rows.call_ended(
        session, lead, "answered", now=NOW, desk=DeskCalendar(), key="2"
    )
    assert effects.book_specialist and lead.owner_id == specialist.id
    run = (await session.scalars(select(DistributionRun))).one()
    assert run.allocation == {str(specialist.id): [lead.id]}
    assert "least-loaded" in run.counts[str(specialist.id)]["reason"]
