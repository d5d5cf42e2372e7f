"""A fortnight of the desk in virtual time, on SQLite and PostgreSQL.

30 Mar – 12 Apr 2026 holds two weekends and the Qingming break (Sat 4 – Mon 6 Apr). Policies
are created directly (as an import would), renewal leads fall due day by day, the distribution
runs at 08:30 on calling days, specialists work their queues (calls and results written by
the dialer's own `dialer.results`), one of them misses the result
deadline, callback numbers ring out. Checked: fairness each day, nothing dealt twice, reruns
deal nothing new, and every retry or callback time is inside a calling window.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Lead, Phone, Policy
from dialer.models import CallAttempt
from dialer.results import dispose
from schedules.clock import VirtualClock
from schedules.config import DeskCalendar
from schedules.distribution_run import run_distribution
from schedules.timeline import distribution_at
from schedules.timeline_run import run_timeline
from tests import schedules_rows as rows

SH = ZoneInfo("Asia/Shanghai")
FIRST = date(2026, 3, 30)
DAYS = [FIRST + timedelta(days=i) for i in range(14)]
PER_DAY = 7  # renewal leads falling due each day


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=SH)


async def test_a_simulated_fortnight(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    desk = DeskCalendar()
    hours = desk.hours()
    clock = VirtualClock(at(FIRST, 0))
    a, b, c, lazy = await rows.specialists(session, 4)
    for d in DAYS:  # the import: renewal leads whose T-25 falls on each day of the fortnight
        for _ in range(PER_DAY):
            await rows.policy_with_lead(session, d + timedelta(days=25))
    await rows.policy_with_lead(session, FIRST + timedelta(days=26), renewed=True)
    ring_out, _ = await rows.policy_with_lead(
        session, date(2027, 3, 30), kind=None, underwritten_at=at(date(2026, 3, 31), 15)
    )
    await session.commit()

    called: set[int] = set()
    owner_seen: dict[int, tuple[int, date]] = {}
    skipped_lazy: list[date] = []
    scheduled: list[datetime] = []
    distributed_on_days: list[date] = []

    async def work_queue(now: datetime, who: list[int]) -> None:
        """Specialists call their open leads: a third ring out first, then answer."""
        async with sessions() as s, s.begin():
            leads = (
                await s.scalars(
                    select(Lead).where(
                        Lead.owner_id.in_(who),
                        Lead.status == "assigned",
                        Lead.contact_result.is_(None)
                        | ((Lead.contact_result == "no_answer") & (Lead.next_attempt_at <= now)),
                    )
                )
            ).all()
            for lead in leads:
                if lead.id % 3 == 0 and lead.id not in called:
                    called.add(lead.id)
                    eff = await rows.call_ended(s, lead, "no_answer", now=now, desk=desk)
                    assert eff.next_attempt_at is not None
                    scheduled.append(eff.next_attempt_at)
                else:
                    await rows.call_ended(s, lead, "answered", now=now, desk=desk)
                    assert lead.owner_id is not None
                    result = "interested" if lead.id % 2 else "declined"
                    await dispose(
                        s,
                        lead.id,
                        lead.owner_id,
                        result,
                        callback_at=None,
                        note=None,
                        now=now,
                        hours_for=desk.hours,
                    )

    async def dial_callbacks(now: datetime) -> None:
        """The automatic callback campaign: this number never answers."""
        async with sessions() as s, s.begin():
            due = (
                await s.scalars(
                    select(Lead).where(
                        Lead.kind == "callback",
                        Lead.status == "scheduled",
                        Lead.next_attempt_at <= now,
                    )
                )
            ).all()
            for lead in due:
                assert hours.is_open(now)
                eff = await rows.call_ended(s, lead, "no_answer", now=now, desk=desk)
                if eff.next_attempt_at is not None:
                    scheduled.append(eff.next_attempt_at)

    for day in DAYS:
        if not desk.is_calling_day(day):
            assert day.weekday() >= 5 or day == date(2026, 4, 6)
            continue
        now = distribution_at(day, desk.distribution_time, desk.tz)
        clock.set(now)
        await run_timeline(sessions, day=day, now=clock.now(), desk=desk)
        report = await run_distribution(
            sessions, day=day, now=clock.now(), desk=desk, seed=day.toordinal()
        )
        distributed_on_days.append(day)
        assert report.dealt == report.due
        assert report.spread <= 1, report.lines()
        if any(k.id == lazy.id for k in report.skipped):
            skipped_lazy.append(day)
            assert all(k.blocking_count > 0 for k in report.skipped if k.id == lazy.id)

        # 09:40 the callback campaign, 10:00 the specialists; the lazy one ignores the
        # first day's leads until 2 April.
        await clock.advance((at(day, 9, 40) - clock.now()).total_seconds())
        await dial_callbacks(clock.now())
        await clock.advance((at(day, 10) - clock.now()).total_seconds())
        workers = [a.id, b.id, c.id] + ([lazy.id] if day >= date(2026, 4, 2) else [])
        await work_queue(clock.now(), workers)
        await clock.advance((at(day, 15, 45) - clock.now()).total_seconds())
        await dial_callbacks(clock.now())
        await work_queue(clock.now(), workers)

        if day == date(2026, 4, 2):  # a second run the same day hands out nothing twice
            again = await run_distribution(sessions, day=day, now=clock.now(), desk=desk, seed=1)
            assert again.dealt == 0
        if day == date(2026, 4, 7):  # late import: dealt on top, still even
            for _ in range(5):
                await rows.policy_with_lead(session, day + timedelta(days=20), due_on=day)
            await session.commit()
            await run_timeline(sessions, day=day, now=clock.now(), desk=desk)
            top = await run_distribution(sessions, day=day, now=clock.now(), desk=desk, seed=2)
            assert top.dealt == 5 and top.spread <= 1

        async with sessions() as s:
            for lead_id, owner, dist in (
                await s.execute(
                    select(Lead.id, Lead.owner_id, Lead.distributed_on).where(
                        Lead.owner_id.is_not(None)
                    )
                )
            ).all():
                assert dist is not None and owner is not None
                assert owner_seen.setdefault(lead_id, (owner, dist)) == (owner, dist)

    # Distribution only on calling days; the holiday Monday and weekends had none.
    assert date(2026, 4, 6) not in distributed_on_days and len(distributed_on_days) == 9
    # Mon 30 Mar leads were due Tue 31 Mar 17:00: the lazy specialist got nothing on
    # 1 and 2 April (the 08:30 run comes before the 10:00 catch-up), then was back.
    assert skipped_lazy == [date(2026, 4, 1), date(2026, 4, 2)]
    assert scheduled and all(hours.is_open(t) for t in scheduled)

    async with sessions() as s:
        dealt = (await s.scalars(select(Lead).where(Lead.owner_id.is_not(None)))).all()
        # Everything due up to Fri 10 Apr was dealt (the break's backlog on Tue 7 Apr), plus
        # the late import; the leads falling due on the last weekend wait for Monday.
        assert len(dealt) == len(owner_seen) == 12 * PER_DAY + 5
        renewed_work = await s.scalar(
            select(Lead.id)
            .join(Policy, Policy.id == Lead.policy_id)
            .where(Policy.renewed, Lead.status != "closed")
        )
        assert renewed_work is None
        (callback,) = (await s.scalars(select(Lead).where(Lead.kind == "callback"))).all()
        assert callback.policy_id == ring_out.id
        assert callback.status == "closed"
        assert callback.closed_reason == "third unanswered call: marked inaccurate"
        assert callback.attempt_count == 3
        rung = await s.scalars(
            select(CallAttempt.created_at).where(CallAttempt.lead_id == callback.id)
        )
        days_called = sorted({t.astimezone(SH).date() for t in rung})
        assert days_called == [date(2026, 4, 1), date(2026, 4, 2), date(2026, 4, 3)]
        phone = await s.get(Phone, callback.phone_id)
        assert phone is not None and phone.accuracy == "inaccurate"
