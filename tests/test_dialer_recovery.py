"""Never twice, never lost: the engine killed mid-call and restarted, and the AMI link
dropped under it. Real TCP to the PBX simulator; the simulator keeps its calls running."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Lead, OutboxMessage
from dialer.models import CallAttempt
from dialer.services import DialerService
from schedules.clock import VirtualClock
from tests.test_dialer_support import (
    MONDAY_0930,
    disposing_hook,
    in_flight,
    make_engine,
    seed,
    spy_originates,
    start_simulator,
)
from tests.virtual_time import Driver

# 0: a ~7 s call that ends while the dialer is down; 7: a ~57 s call that outlives the outage.
DIGITS = "07" * 6


async def _attempts(sessions: async_sessionmaker[AsyncSession]) -> list[CallAttempt]:
    async with sessions() as s:
        return list((await s.scalars(select(CallAttempt))).all())


async def test_killed_and_restarted_dialer_redials_nobody_and_loses_no_result(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    async with sessions() as s:
        specs, leads = await seed(
            s, specialists=6, leads=[("renewal", d, i % 6) for i, d in enumerate(DIGITS)]
        )
    sim = await start_simulator(clock)
    ref: list[DialerService] = []
    hook = disposing_hook(ref, lambda _l: "renewed")
    with spy_originates(monkeypatch, clock) as spy:
        first = make_engine(sessions, clock, [("pbx1", sim)], on_attempt_ended=hook)
        ref.append(DialerService(first))
        await first.start()
        await first.wait_connected()
        for sid in specs:
            await ref[0].sign_in(sid, ready=True)
        await ref[0].start_campaign("renewal")

        async def every_seat_on_a_call() -> bool:
            sent = first.stats["originates"] >= 6
            return sent and await in_flight(sessions) == 6

        await drive.until(every_seat_on_a_call)
        # Kill: tasks cancelled at once, the AMI link dropped; the calls go on in the PBX.
        await first.stop(grace=0)
        assert await in_flight(sessions) == 6
        killed_in_flight = {a.attempt_id for a in await _attempts(sessions) if not a.ended_at}
        await drive.run_for(12)  # the short calls end while nobody listens
        live_at_restart = {c.linkedid for c in sim.pbx.channels.values()}

        second = make_engine(sessions, clock, [("pbx1", sim)], on_attempt_ended=hook)
        ref[0] = DialerService(second)
        await second.start()
        try:

            async def twelve_done() -> bool:
                rows = await _attempts(sessions)
                return await in_flight(sessions) == 0 and len(rows) == len(leads)

            await drive.until(twelve_done)
        finally:
            await second.stop()
            await sim.stop()

    assert max(spy.per_lead.values()) == 1, "a lead was dialled twice"
    rows = await _attempts(sessions)
    # Every Originate has its row; a row whose Originate never left (killed between the
    # commit and the send) is unknown, like one whose call ended unseen.
    assert set(spy.per_attempt) <= {a.attempt_id for a in rows}
    assert all(a.unknown for a in rows if a.attempt_id not in spy.per_attempt)
    unknown = [a for a in rows if a.unknown]
    reattached = [a for a in rows if a.attempt_id in killed_in_flight & live_at_restart]
    # Calls still up when the dialer came back were re-attached and got their real result;
    # the ones that ended while it was away are unknown.
    assert reattached, "no call outlived the outage"
    assert all(a.outcome == "answered" and not a.unknown for a in reattached)
    assert {a.attempt_id for a in unknown} == (killed_in_flight - live_at_restart) | {
        a.attempt_id for a in rows if a.attempt_id not in spy.per_attempt
    }
    async with sessions() as s:
        for a in unknown:
            lead = await s.get(Lead, a.lead_id)
            assert lead is not None and lead.next_attempt_at is not None
            assert a.ended_at is not None
            # Not redialled before the next window: 15:30 Shanghai is 07:30 UTC.
            assert lead.next_attempt_at == a.ended_at.replace(
                hour=7, minute=30, second=0, microsecond=0
            )
        topics = [
            m.payload["attempt_id"]
            for m in (
                await s.scalars(
                    select(OutboxMessage).where(OutboxMessage.topic == "attempt.result")
                )
            ).all()
        ]
    assert sorted(topics) == sorted(a.attempt_id for a in rows)  # no result lost


async def test_dropped_ami_link_resyncs_live_calls_and_never_resends(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    async with sessions() as s:
        specs, leads = await seed(
            s, specialists=4, leads=[("renewal", "7", i % 4) for i in range(4)]
        )
    sim = await start_simulator(clock)
    ref: list[DialerService] = []
    with spy_originates(monkeypatch, clock) as spy:
        engine = make_engine(
            sessions,
            clock,
            [("pbx1", sim)],
            on_attempt_ended=disposing_hook(ref, lambda _l: "declined"),
        )
        ref.append(DialerService(engine))
        await engine.start()
        try:
            await engine.wait_connected()
            await ref[0].start_campaign("renewal")
            for sid in specs:
                await ref[0].sign_in(sid, ready=True)

            async def four_on_call() -> bool:
                return sum(1 for s in engine.seats.values() if s.state.value == "on_call") == 4

            await drive.until(four_on_call)
            await sim.drop_clients()

            async def all_done() -> bool:
                return await in_flight(sessions) == 0

            await drive.until(all_done)
        finally:
            await engine.stop()
            await sim.stop()
    assert dict(spy.per_lead) == {lead: 1 for lead in leads}
    rows = await _attempts(sessions)
    assert [a.outcome for a in rows] == ["answered"] * 4
    assert not any(a.unknown for a in rows)
