"""Callback key 2 through the whole engine: the customer is handed to a free specialist live
(AMI Setvar + Redirect to the simulator over TCP), or, with nobody free, a specialist is
booked for later. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Lead
from dialer.models import CallAttempt, SeatTransition
from dialer.services import DialerService
from schedules.clock import VirtualClock
from tests.test_dialer_support import (
    MONDAY_0930,
    make_engine,
    seed,
    start_simulator,
)
from tests.virtual_time import Driver


@pytest.mark.parametrize("ready", [True, False], ids=["specialist-free", "nobody-free"])
async def test_key_2_hands_the_customer_to_a_free_specialist_or_books_one(
    sessions: async_sessionmaker[AsyncSession], ready: bool
) -> None:
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    async with sessions() as s:
        # Number ending in 9: the customer answers the callback and presses 2.
        specs, leads = await seed(s, specialists=1, leads=[("callback", "9", None)])
    sim = await start_simulator(clock)
    engine = make_engine(sessions, clock, [("pbx1", sim)])
    service = DialerService(engine)
    await engine.start()
    try:
        await engine.wait_connected()
        await service.sign_in(specs[0], ready=ready)
        await service.start_campaign("callback")

        async def called() -> bool:
            async with sessions() as s:
                lead = await s.get(Lead, leads[0])
                return lead is not None and lead.attempt_count > 0

        await drive.until(called)
    finally:
        await engine.stop()
        await sim.stop()
    async with sessions() as s:
        lead = await s.get(Lead, leads[0])
        attempt = (await s.scalars(select(CallAttempt))).one()
        moves = [
            (t.from_state, t.to_state, t.trigger)
            for t in (await s.scalars(select(SeatTransition).order_by(SeatTransition.id))).all()
        ]
    assert lead is not None and attempt.key_pressed == "2"
    if ready:
        # Talked live: the specialist's lead now, waiting for their contact result, and in
        # their queue as a booked callback until they set it.
        assert (lead.status, lead.owner_id, attempt.specialist_id) == (
            "assigned",
            specs[0],
            specs[0],
        )
        assert attempt.seat is not None and "connected to" in (attempt.reason or "")
        assert lead.contact_result is None and lead.callback_at is not None
        assert ("ready", "ringing", "dial") in moves
        assert ("ringing", "on_call", "answer") in moves
        assert ("on_call", "wrap_up", "call_end") in moves
        assert (attempt.talk_seconds or 0) > 0
    else:
        assert lead.status == "scheduled" and lead.contact_result == "callback"
        assert lead.owner_id == specs[0] and attempt.specialist_id is None
        assert not any(trigger == "dial" for _, _, trigger in moves)


async def test_key_2_hands_the_customer_to_the_policy_owners_seat_when_it_is_free(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Two free seats; the one ready longest is not the owner's. The specialist who owns the
    customer's policy (its renewal lead, closed after the renewal) gets the call: the key-2
    hand-over passes the owner to the seat choice."""
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    async with sessions() as s:
        specs, leads = await seed(s, specialists=2, leads=[("callback", "9", None)])
        callback = await s.get(Lead, leads[0])
        assert callback is not None
        s.add(
            Lead(
                policy_id=callback.policy_id,
                kind="renewal",
                phone_id=callback.phone_id,
                status="closed",
                owner_id=specs[1],
                distributed_on=callback.due_on,
                due_on=callback.due_on,
            )
        )
        await s.commit()
    sim = await start_simulator(clock)
    engine = make_engine(sessions, clock, [("pbx1", sim)])
    service = DialerService(engine)
    await engine.start()
    try:
        await engine.wait_connected()
        await service.sign_in(specs[0], ready=True)  # ready longest
        await drive.run_for(1.0)
        await service.sign_in(specs[1], ready=True)  # the owner
        await service.start_campaign("callback")

        async def ended() -> bool:
            async with sessions() as s:
                a = (await s.scalars(select(CallAttempt))).first()
                return a is not None and a.ended_at is not None

        await drive.until(ended)
    finally:
        await engine.stop()
        await sim.stop()
    async with sessions() as s:
        attempt = (await s.scalars(select(CallAttempt))).one()
    assert attempt.key_pressed == "2"
    assert attempt.specialist_id == specs[1]
