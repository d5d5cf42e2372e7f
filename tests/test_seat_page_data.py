"""What the screen pop and my day read from the database, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.pages.services import lead_details, my_day
from crm_sync.auth import Principal
from crm_sync.models import Lead
from dialer.models import CallAttempt
from recordings.models import Recording
from schedules.holidays import load_calendar
from schedules.windows import CallingHours
from tests.test_dialer_support import seed

TUESDAY_1000 = datetime(2026, 1, 6, 2, 0, tzinfo=UTC)


def _attempt(lead_id: int, specialist_id: int, n: int, outcome: str) -> CallAttempt:
    at = TUESDAY_1000 - timedelta(days=1, minutes=n)
    return CallAttempt(
        attempt_id=f"att-{lead_id}-{n}",
        lead_id=lead_id,
        number="+8613900000000",
        specialist_id=specialist_id,
        mode="seat_first",
        campaign_kind="renewal",
        ami_server="pbx1",
        outcome=outcome,
        state="ended",
        created_at=at,
        ended_at=at + timedelta(seconds=40),
    )


def _recording(a: CallAttempt) -> Recording:
    assert a.ended_at is not None
    return Recording(
        attempt_id=a.attempt_id,
        lead_id=a.lead_id,
        specialist_id=a.specialist_id,
        outcome=a.outcome or "answered",
        source_name=f"{a.attempt_id}.wav",
        status="stored",
        ended_at=a.ended_at,
    )


async def test_the_pop_offers_only_the_specialists_own_recordings(session: AsyncSession) -> None:
    specs, leads = await seed(session, specialists=2, leads=[("renewal", "0", 0)])
    # The lead was a colleague's before it was handed to specialist 0: both called it.
    mine = _attempt(leads[0], specs[0], 1, "answered")
    theirs = _attempt(leads[0], specs[1], 2, "answered")
    session.add_all([mine, theirs])
    await session.flush()
    session.add_all([_recording(mine), _recording(theirs)])
    await session.commit()

    me = Principal(specs[0], "专员0", "specialist")
    d = await lead_details(session, me, leads[0], TUESDAY_1000, "Asia/Shanghai")
    assert d is not None
    playable = {h["attempt_id"]: h["recording_id"] is not None for h in d["history"]}
    assert playable == {mine.attempt_id: True, theirs.attempt_id: False}
    boss = Principal(99, "主管", "supervisor")
    d = await lead_details(session, boss, leads[0], TUESDAY_1000, "Asia/Shanghai")
    assert d is not None and all(h["recording_id"] for h in d["history"])
    # The colleague does not see the lead at all.
    other = Principal(specs[1], "专员1", "specialist")
    assert await lead_details(session, other, leads[0], TUESDAY_1000, "Asia/Shanghai") is None


async def test_my_day_lists_yesterdays_leads_still_without_a_result_before_17(
    session: AsyncSession,
) -> None:
    specs, leads = await seed(
        session,
        specialists=2,
        leads=[("renewal", "0", 0), ("renewal", "0", 0), ("lapsed", "0", 0), ("renewal", "0", 1)],
        today=date(2026, 1, 5),  # handed out on Monday
    )
    rows = {lead.id: lead for lead in await session.scalars(select(Lead).where(Lead.id.in_(leads)))}
    rows[leads[0]].contact_result = "interested"
    rows[leads[0]].contact_result_at = TUESDAY_1000 - timedelta(hours=1)
    rows[leads[2]].next_attempt_at = TUESDAY_1000 + timedelta(hours=5)  # not due yet
    await session.commit()

    hours = CallingHours(calendar=load_calendar())
    day = await my_day(session, Principal(specs[0], "专员0", "specialist"), TUESDAY_1000, hours)
    assert day["deadline"]["handed_out_on"] == "2026-01-05"
    assert [m["lead_id"] for m in day["deadline"]["missing"]] == [leads[1], leads[2]]
    assert day["deadline"]["seconds_left"] == 7 * 3600  # 10:00 → 17:00 Shanghai
    assert day["queue"] == {"renewal": {"total": 2, "due": 2}, "lapsed": {"total": 1, "due": 0}}
    assert [f["lead_id"] for f in day["finished"]] == [leads[0]]
