"""One daily cap per number across every campaign (issue 11, finding 8): a number that got its
three calls today (renewal attempts and a reminder together) is not called again until the
next calling day, by any campaign."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Lead, Phone
from dialer import queues
from dialer.models import AttemptState, CallAttempt
from schedules.clock import VirtualClock
from schedules.retry import DAILY_CALLS_PER_NUMBER
from schedules.timeline import TimelineRules
from schedules.windows import CallingHours
from tests.dialing_support import Originates, attempts, record_originates, running, shanghai
from tests.test_dialer_support import seed
from tests.virtual_time import Driver


async def _history(session: AsyncSession, lead_id: int, *times: datetime) -> None:
    """Earlier renewal calls of the lead today, as the dialer recorded them."""
    lead = await session.get(Lead, lead_id)
    assert lead is not None and lead.phone_id is not None
    phone = await session.get(Phone, lead.phone_id)
    assert phone is not None and phone.e164 is not None
    number = phone.e164
    for i, at in enumerate(times):
        session.add(
            CallAttempt(
                attempt_id=f"att-earlier-{at:%H%M}-{i}",
                lead_id=lead_id,
                phone_id=lead.phone_id,
                number=number,
                specialist_id=lead.owner_id,
                seat="PJSIP/8100",
                mode="seat_first",
                campaign_kind="renewal",
                ami_server="pbx1",
                state=AttemptState.ENDED.value,
                outcome="busy",
                created_at=at,
                sent_at=at,
                ended_at=at + timedelta(seconds=5),
            )
        )
    await session.commit()


async def test_the_queues_leave_out_a_number_called_three_times_today(
    session: AsyncSession,
) -> None:
    specs, leads = await seed(session, specialists=1, leads=[("renewal", "0", 0)])
    now = shanghai(10, 30)
    day_start = CallingHours().day_start(now)
    await _history(session, leads[0], shanghai(9, 31), shanghai(10, 1))

    async def ids(query: object) -> list[int]:
        got = await queues.fetch_candidates(session, query, limit=5, now=now, lock=False)
        return [c.lead_id for c in got]

    cap = {"day_start": day_start, "daily_cap": DAILY_CALLS_PER_NUMBER}
    assert await ids(queues.specialist_queue(specs[0], ["renewal"], now, **cap)) == leads  # 2
    assert await ids(queues.reminder_queue(now, now.date(), TimelineRules(), **cap)) == leads
    await _history(session, leads[0], shanghai(10, 15))  # the third call today
    assert await ids(queues.specialist_queue(specs[0], ["renewal"], now, **cap)) == []
    assert await ids(queues.reminder_queue(now, now.date(), TimelineRules(), **cap)) == []
    # Yesterday's calls do not count today; without a cap the lead is there.
    tomorrow = {"day_start": day_start + timedelta(days=1), "daily_cap": DAILY_CALLS_PER_NUMBER}
    assert await ids(queues.reminder_queue(now, now.date(), TimelineRules(), **tomorrow)) == leads
    assert await ids(queues.specialist_queue(specs[0], ["renewal"], now)) == leads
    # The engine's prepared statement: the same rule with bound values.
    capped = queues.SeatQueue(lock=False, daily_cap=DAILY_CALLS_PER_NUMBER)
    got = await capped.candidates(
        session, specs[0], ["renewal"], now=now, limit=5, day_start=day_start
    )
    assert got == []
    with pytest.raises(ValueError, match="day_start"):
        await capped.candidates(session, specs[0], ["renewal"], now=now, limit=5)
    uncapped = queues.SeatQueue(lock=False, daily_cap=None)
    got = await uncapped.candidates(session, specs[0], ["renewal"], now=now, limit=5)
    assert [c.lead_id for c in got] == leads


async def test_the_automatic_campaigns_prepared_queues_find_what_their_queries_find(
    session: AsyncSession,
) -> None:
    """The engine builds the callback, reminder and pool queues once and binds values each
    round (`AutomaticQueues`); they must pick what the queries built from values pick, the
    daily cap included."""
    _specs, leads = await seed(
        session,
        specialists=1,
        leads=[("renewal", "0", 0), ("callback", "1", None), ("lapsed", "2", None),
               ("callback", "3", None)],
    )  # fmt: skip
    now = shanghai(10, 30)
    day_start = CallingHours().day_start(now)
    today, rules = now.date(), TimelineRules()
    cap = {"day_start": day_start, "daily_cap": DAILY_CALLS_PER_NUMBER}
    prepared = queues.AutomaticQueues(lock=False, daily_cap=DAILY_CALLS_PER_NUMBER)

    async def ids(fetch: queues.Fetch) -> list[int]:
        return [c.lead_id for c in await fetch(session, limit=5)]

    async def built(query: object) -> list[int]:
        got = await queues.fetch_candidates(session, query, limit=5, now=now, lock=False)
        return [c.lead_id for c in got]

    async def same_as_built() -> None:
        pairs = [
            (prepared.callback(now, day_start), queues.callback_queue(now, **cap)),
            (prepared.pool("lapsed", now, day_start), queues.pool_queue("lapsed", now, **cap)),
            (
                prepared.reminder(now, today, rules, day_start),
                queues.reminder_queue(now, today, rules, **cap),
            ),
        ]
        for fetch, query in pairs:
            assert await ids(fetch) == await built(query)

    assert await ids(prepared.callback(now, day_start)) == [leads[1], leads[3]]
    assert await ids(prepared.pool("lapsed", now, day_start)) == [leads[2]]
    assert await ids(prepared.pool("trial", now, day_start)) == []
    assert await ids(prepared.reminder(now, today, rules, day_start)) == [leads[0]]
    # Sixty days before the expiry no reminder is owed yet.
    early = today - timedelta(days=60)
    assert await ids(prepared.reminder(now, early, rules, day_start)) == []
    await same_as_built()
    # The first callback's number had its three calls today: only the other one is left.
    await _history(session, leads[1], shanghai(9, 31), shanghai(10, 1), shanghai(10, 15))
    assert await ids(prepared.callback(now, day_start)) == [leads[3]]
    await same_as_built()


async def test_a_number_with_two_renewal_calls_and_a_reminder_today_is_not_called_again(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two campaigns over TCP: the reminder campaign makes the number's third call of the day;
    the renewal campaign's seat then calls the other lead, not this one, until tomorrow."""
    clock = VirtualClock(shanghai(10, 30))
    drive = Driver(clock, sessions)
    async with sessions() as s:
        # Lead 0: two busy renewal calls this morning and due again now; lead 1: fresh.
        specs, leads = await seed(
            s, specialists=1, leads=[("renewal", "0", 0), ("renewal", "0", 0)]
        )
        await _history(s, leads[0], shanghai(9, 31), shanghai(10, 1))
    capped, fresh = leads
    with record_originates(monkeypatch, clock) as seen:
        async with running(sessions, clock) as (_engine, service, _sim):
            await service.start_campaign("reminder")
            await drive.until(lambda: _reminded(sessions, 2))
            await service.stop_campaign("reminder")
            await service.start_campaign("renewal")
            await service.sign_in(specs[0], ready=True)
            await drive.until(lambda: _renewal_sent(seen, fresh))
            # The seat wraps up, is ready again, looks again: still nothing for lead 0.
            await drive.until(lambda: _after(clock, shanghai(10, 45)))
            assert [s.variables["LEAD_ID"] for s in seen.sent if _renewal(s)] == [str(fresh)]
            assert len(seen.for_lead(capped)) == 1  # the reminder: the number's third call
            # The next calling day the number may be called again.
            clock.set(shanghai(9, 29, 50, day=6))
            await drive.until(lambda: _renewal_sent(seen, capped))
    [again] = [s for s in seen.for_lead(capped) if _renewal(s)]
    assert again.at >= shanghai(9, 30, day=6)
    today = [a for a in await attempts(sessions) if a.created_at < shanghai(0, 0, day=6)]
    assert sum(1 for a in today if a.lead_id == capped) == DAILY_CALLS_PER_NUMBER


def _renewal(sent: object) -> bool:
    return "RING_SECONDS" in getattr(sent, "variables", {})  # seat first: a renewal call


async def _renewal_sent(seen: Originates, lead_id: int) -> bool:
    return any(_renewal(s) for s in seen.for_lead(lead_id))


async def _reminded(sessions: async_sessionmaker[AsyncSession], n: int) -> bool:
    async with sessions() as s:
        rows = (
            await s.scalars(
                select(CallAttempt).where(
                    CallAttempt.campaign_kind == "reminder", CallAttempt.ended_at.is_not(None)
                )
            )
        ).all()
    return len(rows) >= n


async def _after(clock: VirtualClock, when: datetime) -> bool:
    return clock.now() >= when
