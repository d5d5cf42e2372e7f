from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Customer, Lead, Phone, Policy
from crm_sync.phones import PhoneChoice, choose_lead_phone
from dialer import queues
from schedules.config import DeskCalendar
from schedules.lapsed import central_lapsed
from schedules.timeline import (
    TimelineRules,
    central_cutoff,
    due_day,
    is_central,
    is_lapsed,
    lapsed_at,
    latest_expiry_due,
    latest_expiry_reminded,
    reminder_day,
)
from schedules.timeline_run import run_timeline
from tests import schedules_rows as rows

SH = ZoneInfo("Asia/Shanghai")
TZ = "Asia/Shanghai"
DAY = date(2026, 3, 10)  # a Tuesday
NOW = datetime(2026, 3, 10, 8, 30, tzinfo=SH)


def test_reminder_at_expiry_minus_30_and_distribution_at_minus_25() -> None:
    assert reminder_day(date(2026, 4, 9)) == DAY
    assert due_day("renewal", date(2026, 4, 4)) == DAY
    assert latest_expiry_due("renewal", DAY) == date(2026, 4, 4)


def test_trial_conversion_is_due_a_calendar_month_ahead() -> None:
    assert due_day("trial", date(2026, 4, 10)) == DAY
    assert due_day("trial", date(2026, 3, 31)) == date(2026, 2, 28)
    # Month-end clamping: on 28 Feb, expiries up to 31 Mar are due.
    assert latest_expiry_due("trial", date(2026, 2, 28)) == date(2026, 3, 31)


def test_policy_lapses_as_the_day_after_expiry_starts() -> None:
    assert lapsed_at(date(2026, 3, 9), TZ) == datetime(2026, 3, 10, tzinfo=SH)
    assert not is_lapsed(date(2026, 3, 10), False, NOW, TZ)  # covered all of its expiry day
    assert is_lapsed(date(2026, 3, 9), False, NOW, TZ)
    assert not is_lapsed(date(2026, 3, 9), True, NOW, TZ)


def test_lapsed_more_than_48_hours_is_central() -> None:
    # Lapsed at 8 Mar 00:00: 56.5 h at 10 Mar 08:30.
    assert is_central(date(2026, 3, 7), False, NOW, TZ)
    assert not is_central(date(2026, 3, 8), False, NOW, TZ)  # 32.5 h
    exactly = datetime(2026, 3, 11, 0, 0, tzinfo=SH)  # lapsed 9 Mar 00:00 + 48 h
    assert not is_central(date(2026, 3, 8), False, exactly, TZ)
    assert is_central(date(2026, 3, 8), False, exactly + timedelta(seconds=1), TZ)
    assert central_cutoff(NOW, TZ) == date(2026, 3, 7)


async def test_daily_timeline_turns_the_database_into_the_days_work(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    b = await rows.branch(session)
    (s,) = await rows.specialists(session, 1)
    _, due = await rows.policy_with_lead(session, DAY + timedelta(days=25))
    _, not_yet = await rows.policy_with_lead(session, DAY + timedelta(days=26))
    _, renewed = await rows.policy_with_lead(session, DAY + timedelta(days=25), renewed=True)
    _, imported = await rows.policy_with_lead(
        session, DAY + timedelta(days=40), due_on=DAY - timedelta(days=1)
    )
    _, trial = await rows.policy_with_lead(session, date(2026, 4, 10), kind="trial")
    _, trial_later = await rows.policy_with_lead(session, date(2026, 4, 11), kind="trial")
    lapsing, worked = await rows.policy_with_lead(
        session,
        DAY - timedelta(days=1),
        status="assigned",
        owner_id=s.id,
        distributed_on=DAY - timedelta(days=20),
        contact_result="interested",
    )
    await rows.policy_with_lead(
        session, DAY - timedelta(days=1), status="closed", contact_result="renewed_elsewhere"
    )
    old_lapse, _ = await rows.policy_with_lead(
        session,
        DAY - timedelta(days=3),
        status="assigned",
        owner_id=s.id,
        distributed_on=DAY - timedelta(days=28),
        branch_id=b.id,
    )
    uw, _ = await rows.policy_with_lead(
        session, date(2027, 3, 9), kind=None, underwritten_at=NOW - timedelta(days=1)
    )
    await rows.policy_with_lead(
        session, date(2027, 1, 9), kind=None, underwritten_at=NOW - timedelta(days=60)
    )
    await session.commit()
    desk = DeskCalendar()

    report = await run_timeline(sessions, day=DAY, now=NOW, desk=desk)

    assert report.made_due == {"renewal": 2, "lapsed": 0, "trial": 1, "callback": 0}
    assert report.closed_renewed == 1
    assert report.lapsed_created == 2 and report.renewal_closed_for_lapse == 2
    assert report.central_marked == 1
    assert report.callbacks_created == 1

    async def status(lead: Lead | None) -> tuple[str, str | None]:
        assert lead is not None
        got = await session.get(Lead, lead.id, populate_existing=True)
        assert got is not None
        return got.status, got.closed_reason

    assert (await status(due))[0] == "due"
    assert (await status(not_yet))[0] == "new"
    assert await status(renewed) == ("closed", "policy already renewed")
    assert (await status(imported))[0] == "due"
    assert (await status(trial))[0] == "due"
    assert (await status(trial_later))[0] == "new"
    assert (await status(worked))[0] == "closed"

    lapsed = (
        await session.scalars(select(Lead).where(Lead.kind == "lapsed").order_by(Lead.id))
    ).all()
    assert {(lead.policy_id, lead.status, lead.central) for lead in lapsed} == {
        (lapsing.id, "due", False),
        (old_lapse.id, "due", True),
    }
    assert all(lead.phone_id is not None for lead in lapsed)
    listed = await central_lapsed(session, b.id)
    assert [(c.branch_id, c.policy_number) for c in listed] == [(b.id, old_lapse.policy_number)]

    (callback,) = (await session.scalars(select(Lead).where(Lead.kind == "callback"))).all()
    assert callback.policy_id == uw.id and callback.status == "scheduled"
    assert callback.next_attempt_at == datetime(2026, 3, 10, 9, 30, tzinfo=SH)
    assert callback.phone_id is not None

    again = await run_timeline(sessions, day=DAY, now=NOW + timedelta(hours=1), desk=desk)
    assert again.made_due == {"renewal": 0, "lapsed": 0, "trial": 0, "callback": 0}
    assert (again.lapsed_created, again.callbacks_created, again.central_marked) == (0, 0, 0)
    assert again.closed_renewed == 0


async def test_lapsed_lead_becomes_central_two_days_later(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    (s,) = await rows.specialists(session, 1)
    await rows.policy_with_lead(
        session,
        DAY - timedelta(days=1),
        status="assigned",
        owner_id=s.id,
        distributed_on=DAY - timedelta(days=20),
    )
    await session.commit()
    desk = DeskCalendar()
    first = await run_timeline(sessions, day=DAY, now=NOW, desk=desk)
    assert first.lapsed_created == 1 and first.central_marked == 0
    later = datetime(2026, 3, 12, 8, 30, tzinfo=SH)  # lapsed 10 Mar 00:00 + 56.5 h
    second = await run_timeline(sessions, day=date(2026, 3, 12), now=later, desk=desk)
    assert second.lapsed_created == 0 and second.central_marked == 1


async def _reminders_owed(
    session: AsyncSession, day: date, rules: TimelineRules | None = None
) -> list[int]:
    """Policies the dialer's reminder campaign would call on `day` (its own query)."""
    now = datetime.combine(day, datetime.min.time(), tzinfo=SH) + timedelta(hours=10)
    got = await queues.fetch_candidates(
        session,
        queues.reminder_queue(now, day, rules or DeskCalendar().rules),
        limit=100,
        now=now,
        lock=False,
    )
    leads = {c.lead_id for c in got}
    return sorted((await session.scalars(select(Lead.policy_id).where(Lead.id.in_(leads)))).all())


async def test_renewal_reminders_due_at_expiry_minus_30(session: AsyncSession) -> None:
    target = DAY + timedelta(days=30)
    p, _ = await rows.policy_with_lead(session, target)
    await rows.policy_with_lead(session, target, renewed=True)
    await rows.policy_with_lead(session, target, status="closed", contact_result="declined")
    await rows.policy_with_lead(session, target + timedelta(days=1))
    await session.commit()
    assert await _reminders_owed(session, DAY) == [p.id]


def test_lapse_instant_is_utc() -> None:
    assert lapsed_at(date(2026, 3, 9), TZ).tzinfo is UTC


async def test_monday_reminders_include_those_whose_t_minus_30_fell_on_the_weekend(
    session: AsyncSession,
) -> None:
    friday, monday = date(2026, 3, 13), date(2026, 3, 16)
    sat, _ = await rows.policy_with_lead(session, date(2026, 3, 14) + timedelta(days=30))
    sun, _ = await rows.policy_with_lead(session, date(2026, 3, 15) + timedelta(days=30))
    mon, _ = await rows.policy_with_lead(session, monday + timedelta(days=30))
    fri, fri_lead = await rows.policy_with_lead(session, friday + timedelta(days=30))
    await session.commit()
    assert await _reminders_owed(session, friday) == [fri.id]
    assert fri_lead is not None
    rung = datetime.combine(friday, datetime.min.time(), tzinfo=SH) + timedelta(hours=10)
    # Friday's reminder call was made.
    await rows.call_ended(
        session, fri_lead, "answered", now=rung, desk=DeskCalendar(), kind="reminder"
    )
    await session.commit()
    # The weekend's reminders are owed on Monday; Friday's, made, is not owed again.
    assert await _reminders_owed(session, monday) == sorted([sat.id, sun.id, mon.id])


def test_the_reminder_is_owed_from_its_day_under_any_configured_rules() -> None:
    """One rule (schedules.timeline) for the reminder day and for the queue's SQL filter."""
    for rules in (TimelineRules(), TimelineRules(reminder_days=10)):
        for offset in range(-3, 4):
            expiry = latest_expiry_reminded(DAY, rules) + timedelta(days=offset)
            assert (reminder_day(expiry, rules) <= DAY) == (offset <= 0)


async def test_the_reminder_campaign_follows_the_timeline_s_configured_reminder_day(
    session: AsyncSession,
) -> None:
    """The timeline's reminder setting is the one the dialer uses (it used to keep its own)."""
    near, _ = await rows.policy_with_lead(session, DAY + timedelta(days=10))
    far, _ = await rows.policy_with_lead(session, DAY + timedelta(days=20))
    await session.commit()
    assert await _reminders_owed(session, DAY, TimelineRules(reminder_days=10)) == [near.id]
    assert await _reminders_owed(session, DAY) == sorted([near.id, far.id])


async def test_a_fleet_callback_lead_calls_the_insured_like_the_import_would(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The timeline's new callback lead takes its phone by the import's rule
    (crm_sync.phones): a fleet policy calls the insured's own number, not the fleet's
    switchboard that was stored first (the timeline used to take the lowest phone id)."""
    fleet = Customer(name="车队", match_key="fleet-1")
    fleet.phones.append(Phone(raw="03118555", e164="+8631185550001", role="fleet"))
    driver = Customer(name="司机", match_key="driver-1")
    driver.phones.append(Phone(raw="13900000001", e164="+8613900000001", role="insured"))
    policy = Policy(
        policy_number="PFLEET1",
        policyholder=fleet,
        insured=driver,
        is_fleet=True,
        expiry_date=date(2027, 3, 9),
        underwritten_at=NOW - timedelta(days=1),
    )
    session.add(policy)
    await session.flush()
    switchboard, own = fleet.phones[0].id, driver.phones[0].id
    policy_id = policy.id
    assert switchboard < own
    await session.commit()

    await run_timeline(sessions, day=DAY, now=NOW, desk=DeskCalendar())

    lead = (await session.scalars(select(Lead).where(Lead.policy_id == policy_id))).one()
    assert lead.phone_id == own
    assert lead.phone_id == choose_lead_phone(
        [PhoneChoice(switchboard, "fleet", True), PhoneChoice(own, "insured", True)],
        is_fleet=True,
    )
