"""Pooled campaigns (dialer.pool): who takes an answered call, the abandoned lead booked as an
appointment through the one booking and ownership rules (audited), the per-day record of
live answers and abandons behind the 30-day rate, and the settings the law refuses."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.models import Campaign, PoolMember
from dialer.pool import (
    ABANDON_REASON,
    FreeSeat,
    PacingSettings,
    PoolSettingError,
    abandon_appointment,
    abandon_rates,
    abandoned_lead,
    answered_lead,
    choose_specialist,
    load_ledger,
    pacing_limits,
    pool_members,
    record_answer,
    set_pool_members,
)
from dialer.queues import pool_queue, specialist_queue
from schedules.models import DistributionRun
from schedules.windows import CallingHours
from tests import schedules_rows as db_rows

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=SH)
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_the_free_member_who_waited_longest_takes_the_call_if_their_share_allows() -> None:
    free = [
        FreeSeat(1, T0),  # waited longest, but their own queue still has calls
        FreeSeat(2, T0 + timedelta(seconds=5)),
        FreeSeat(3, T0 + timedelta(seconds=1)),  # not in the pool
        FreeSeat(4, T0 + timedelta(seconds=9)),
    ]
    members = {1: "after_own_queue", 2: "after_own_queue", 4: "always"}
    assert choose_specialist(free, members, own_queue_empty=[2]) == 2
    assert choose_specialist(free, members, own_queue_empty=[]) == 4
    assert choose_specialist(free, members, own_queue_empty=[1, 2]) == 1
    assert choose_specialist(free[2:3], members, own_queue_empty=[3]) is None


def test_a_cap_above_the_legal_maximum_is_refused_with_what_to_do() -> None:
    ok = PacingSettings(True, "predictive", 3.0, 0.01, 0.02)
    limits = pacing_limits(ok, legal_max=0.03)
    assert limits.predictive and limits.abandon_cap == 0.02
    with pytest.raises(PoolSettingError, match="legal maximum"):
        pacing_limits(PacingSettings(True, "predictive", 3.0, 0.02, 0.05), legal_max=0.03)
    with pytest.raises(PoolSettingError, match="must not exceed the cap"):
        pacing_limits(PacingSettings(True, "predictive", 3.0, 0.03, 0.02), legal_max=0.03)
    # A campaign that is not pooled is never paced predictively.
    assert not pacing_limits(PacingSettings(False, "predictive", 3.0, 0.01, 0.02), 0.03).predictive


def test_an_abandoned_customer_is_called_back_on_a_later_day_in_the_calling_hours() -> None:
    hours = CallingHours()
    when = abandon_appointment(NOW.astimezone(UTC), hours)
    local = when.astimezone(SH)
    assert local.date() == date(2026, 12, 2)
    assert hours.is_open(when)


async def _campaign(session: AsyncSession) -> Campaign:
    camp = Campaign(name="lapsed-pool", kind="lapsed", mode="customer_first", pooled=True)
    session.add(camp)
    await session.flush()
    return camp


async def test_an_abandoned_pool_lead_goes_to_a_specialists_queue_as_an_audited_appointment(
    session: AsyncSession,
) -> None:
    (first, second) = await db_rows.specialists(session, 2)
    _, lead = await db_rows.policy_with_lead(
        session, date(2026, 12, 26), kind="lapsed", status="due"
    )
    assert lead is not None and lead.owner_id is None
    when = abandon_appointment(NOW.astimezone(UTC), CallingHours())
    run = abandoned_lead(lead, second.id, when=when, day=NOW.date(), now=NOW)
    assert run is not None
    session.add(run)
    await session.flush()
    assert (lead.owner_id, lead.status, lead.callback_at, lead.next_attempt_at) == (
        second.id,
        "scheduled",
        when,
        when,
    )
    stored = (await session.scalars(select(DistributionRun))).one()
    assert stored.counts[str(second.id)]["reason"] == ABANDON_REASON
    assert stored.allocation == {str(second.id): [lead.id]}
    # Answered and connected to the first specialist later: theirs, audited again.
    again = answered_lead(lead, first.id, day=NOW.date(), now=NOW)
    assert again is not None and lead.owner_id == first.id
    assert answered_lead(lead, first.id, day=NOW.date(), now=NOW) is None


async def test_live_answers_and_abandons_are_counted_per_day_over_30_days(
    session: AsyncSession,
) -> None:
    camp = await _campaign(session)
    today = date(2026, 12, 1)
    for day, answered, abandoned in (
        (today - timedelta(days=40), 10, 5),
        (today - timedelta(days=3), 100, 2),
        (today, 50, 1),
    ):
        for i in range(answered):
            await record_answer(session, camp.id, day, abandoned=i < abandoned)
        await session.flush()
    rates = await abandon_rates(session, camp.id, today)
    assert (rates["answered_today"], rates["abandoned_today"]) == (50, 1)
    # The day 40 days ago is outside the rolling 30 days.
    assert (rates["answered_30d"], rates["abandoned_30d"]) == (150, 3)
    assert rates["abandon_rate_30d"] == pytest.approx(0.02)
    ledger = await load_ledger(session, camp.id, today)
    assert ledger.budget(today, 0.03) == 0  # 1 of 50 today: one more would be 3.9 %


async def test_the_pool_is_replaced_and_a_share_is_one_of_the_two(session: AsyncSession) -> None:
    camp = await _campaign(session)
    (a, b) = await db_rows.specialists(session, 2)
    await set_pool_members(session, camp.id, {a.id: "always", b.id: "after_own_queue"})
    await session.flush()
    assert await pool_members(session, camp.id) == {a.id: "always", b.id: "after_own_queue"}
    await set_pool_members(session, camp.id, {b.id: "always"})
    await session.flush()
    assert await pool_members(session, camp.id) == {b.id: "always"}
    with pytest.raises(ValueError):
        await set_pool_members(session, camp.id, {a.id: "sometimes"})
    session.add(PoolMember(campaign_id=camp.id, specialist_id=a.id, share="sometimes"))
    with pytest.raises(IntegrityError):
        await session.flush()


async def test_the_database_refuses_a_target_above_the_cap(session: AsyncSession) -> None:
    session.add(
        Campaign(name="bad", kind="trial", mode="seat_first", target_abandon=0.05, abandon_cap=0.03)
    )
    with pytest.raises(IntegrityError):
        await session.flush()


async def _queued(session: AsyncSession, query: object) -> list[int]:
    return [row[0] for row in (await session.execute(query)).all()]  # type: ignore[call-overload]


async def test_an_abandoned_lead_leaves_the_pool_and_waits_for_its_appointment_tomorrow(
    session: AsyncSession,
) -> None:
    (owner, specialist) = await db_rows.specialists(session, 2)
    _, free = await db_rows.policy_with_lead(
        session, date(2026, 12, 26), kind="lapsed", status="due"
    )
    _, owned = await db_rows.policy_with_lead(
        session,
        date(2026, 12, 26),
        kind="lapsed",
        status="assigned",
        owner_id=owner.id,
        distributed_on=date(2026, 11, 30),
    )
    _, renewal = await db_rows.policy_with_lead(session, date(2026, 12, 26), status="due")
    assert free is not None and owned is not None and renewal is not None
    now = NOW.astimezone(UTC)
    assert await _queued(session, pool_queue("lapsed", now)) == [free.id]
    # Abandoned: booked to a pool specialist for tomorrow's first window.
    when = abandon_appointment(now, CallingHours())
    run = abandoned_lead(free, specialist.id, when=when, day=NOW.date(), now=NOW)
    assert run is not None
    session.add(run)
    await session.flush()
    assert await _queued(session, pool_queue("lapsed", now)) == []
    mine = specialist_queue(specialist.id, ["lapsed"], now)
    assert await _queued(session, mine) == []  # not again today
    tomorrow = specialist_queue(specialist.id, ["lapsed"], when)
    assert await _queued(session, tomorrow) == [free.id]
