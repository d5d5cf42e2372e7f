"""The engine end to end over real TCP with the PBX simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Lead, OutboxMessage
from dialer.models import CallAttempt, SeatState, SeatTransition
from dialer.services import DialerService
from schedules.clock import VirtualClock
from tests.test_dialer_support import (
    MONDAY_0930,
    disposing_hook,
    make_engine,
    seed,
    spy_originates,
    start_simulator,
)
from tests.virtual_time import Driver


async def test_seat_first_calls_every_lead_of_the_queue_once_and_logs_results(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    async with sessions() as s:
        specs, leads = await seed(
            s,
            specialists=2,
            leads=[("renewal", d, i % 2) for i, d in enumerate("0126540126")],
        )
    sim = await start_simulator(clock)
    ref: list[DialerService] = []
    engine = make_engine(
        sessions, clock, [("pbx1", sim)], on_attempt_ended=disposing_hook(ref, lambda _l: "renewed")
    )
    service = DialerService(engine)
    ref.append(service)
    with spy_originates(monkeypatch, clock) as spy:
        await engine.start()
        try:
            await engine.wait_connected()
            await service.start_campaign("renewal")
            for sid in specs:
                await service.sign_in(sid, ready=True)

            async def all_have_results() -> bool:
                async with sessions() as s:
                    rows = (await s.scalars(select(Lead))).all()
                    return all(r.contact_result is not None for r in rows)

            await drive.until(all_have_results)
        finally:
            await engine.stop()
            await sim.stop()
    assert set(spy.per_lead) == set(leads)
    assert max(spy.per_lead.values()) == 1
    async with sessions() as s:
        by_lead = {r.id: r.contact_result for r in (await s.scalars(select(Lead))).all()}
        attempts = (await s.scalars(select(CallAttempt))).all()
        outbox = (await s.scalars(select(OutboxMessage))).all()
        transitions = (await s.scalars(select(SeatTransition))).all()
    digits = "0126540126"
    expected = {
        "0": "renewed",
        "1": "busy",
        "2": "no_answer",
        "6": "wrong_number",
        "5": "switched_off",
        "4": "renewed",
    }
    assert [by_lead[lead] for lead in leads] == [expected[d] for d in digits]
    assert all(a.ended_at is not None and a.sent_at is not None for a in attempts)
    assert {m.topic for m in outbox} >= {"attempt.result", "lead.contact_result"}
    assert any(t.trigger == "answer" for t in transitions)


async def test_a_call_the_dialer_hangs_up_ends_as_hung_up_by_action(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    async with sessions() as s:
        (sid,), _ = await seed(s, specialists=1, leads=[("renewal", "7", 0)])  # a ~57 s call
    sim = await start_simulator(clock)
    engine = make_engine(sessions, clock, [("pbx1", sim)])
    service = DialerService(engine)
    await engine.start()
    try:
        await engine.wait_connected()
        await service.start_campaign("renewal")
        await service.sign_in(sid, ready=True)

        async def on_call() -> bool:
            return engine.seats[sid].state is SeatState.ON_CALL

        await drive.until(on_call)
        attempt_id = engine.seats[sid].attempt_id
        assert attempt_id is not None
        assert (await service.hang_up(attempt_id))["hung_up"]

        async def over() -> bool:
            async with sessions() as s:
                a = await s.scalar(select(CallAttempt).where(CallAttempt.attempt_id == attempt_id))
                return a is not None and a.ended_at is not None

        await drive.until(over)
        assert not (await service.hang_up(attempt_id))["hung_up"]  # nothing left to hang up
    finally:
        await engine.stop()
        await sim.stop()
    async with sessions() as s:
        attempt = await s.scalar(select(CallAttempt).where(CallAttempt.attempt_id == attempt_id))
    assert attempt is not None and attempt.outcome == "hung_up_by_action"
    assert attempt.talk_seconds is not None and attempt.talk_seconds < 57
