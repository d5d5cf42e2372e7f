"""The next lead claimed during wrap-up (pre-claim), over TCP with the PBX simulator, on SQLite
and PostgreSQL: dialled as soon as the seat is ready, with its attempt committed first;
released at once when the seat pauses or signs out; never dialled once the window closed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Lead
from dialer.engine import DialerConfig, DialerEngine
from dialer.models import CallAttempt, SeatState, SeatTransition
from dialer.services import DialerService
from schedules.clock import VirtualClock
from tests.test_dialer_support import (
    MONDAY_0930,
    OriginateSpy,
    make_engine,
    seed,
    spy_originates,
    start_simulator,
)
from tests.virtual_time import Driver


async def _attempts(sessions: async_sessionmaker[AsyncSession]) -> list[CallAttempt]:
    async with sessions() as s:
        return list((await s.scalars(select(CallAttempt).order_by(CallAttempt.id))).all())


async def _lead(sessions: async_sessionmaker[AsyncSession], lead_id: int) -> Lead:
    async with sessions() as s:
        lead = await s.get(Lead, lead_id)
        assert lead is not None
        return lead


@dataclass
class Desk:
    engine: DialerEngine
    service: DialerService
    spy: OriginateSpy
    sid: int
    leads: list[int]


@asynccontextmanager
async def one_seat(
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
    monkeypatch: pytest.MonkeyPatch,
    wrap_up: float,
) -> AsyncIterator[Desk]:
    """One specialist with two short answered calls to make, signed in and ready."""
    async with sessions() as s:
        (sid,), leads = await seed(s, specialists=1, leads=[("renewal", "0", 0)] * 2)
    sim = await start_simulator(clock)
    engine = make_engine(
        sessions,
        clock,
        [("pbx1", sim)],
        config=DialerConfig(wrap_up_seconds=wrap_up, idle_recheck_seconds=30.0),
    )
    service = DialerService(engine)
    with spy_originates(monkeypatch, clock) as spy:
        await engine.start()
        try:
            await engine.wait_connected()
            await service.start_campaign("renewal")
            await service.sign_in(sid, ready=True)
            yield Desk(engine, service, spy, sid, leads)
        finally:
            await engine.stop(grace=0)
            await sim.stop()


async def _first_call_over_and_next_lead_claimed(
    engine: DialerEngine,
    sessions: async_sessionmaker[AsyncSession],
    drive: Driver,
    sid: int,
) -> list[CallAttempt]:
    """Wait until the seat wraps up its first call and holds its next lead (not dialled)."""
    rows: list[CallAttempt] = []

    async def preclaimed() -> bool:
        rows[:] = await _attempts(sessions)
        return (
            engine.seats[sid].state is SeatState.WRAP_UP
            and len(rows) == 2
            and rows[0].ended_at is not None
            and rows[1].ended_at is None
        )

    await drive.until(preclaimed)
    return rows


async def test_the_lead_claimed_during_wrap_up_is_dialled_when_the_seat_is_ready(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    async with one_seat(sessions, clock, monkeypatch, wrap_up=10.0) as desk:
        leads = desk.leads
        rows = await _first_call_over_and_next_lead_claimed(desk.engine, sessions, drive, desk.sid)
        assert rows[1].lead_id == leads[1] and rows[1].sent_at is None
        assert desk.spy.per_lead[leads[1]] == 0  # claimed, not dialled during the wrap-up
        # The screen pop still shows the call being wrapped up.
        pop = await desk.service.current_call(desk.sid)
        assert pop is not None and pop["lead"]["id"] == leads[0]
        await drive.until(lambda: _dialled(desk.spy, leads[1]))
    async with sessions() as s:
        ready_at = await s.scalar(
            select(SeatTransition.at).where(SeatTransition.trigger == "wrap_done")
        )
    assert ready_at is not None
    (sent_at,) = [t for t, lead, _ in desk.spy.times if lead == leads[1]]
    # Claimed (committed) during the wrap-up, dialled once the seat was ready.
    assert rows[1].created_at < ready_at <= sent_at
    assert [a.attempt_id for a in await _attempts(sessions)] == [a.attempt_id for a in rows]


async def _dialled(spy: OriginateSpy, lead_id: int) -> bool:
    return spy.per_lead[lead_id] == 1


@pytest.mark.parametrize("leave", ["pause", "sign_out"])
async def test_a_seat_that_leaves_during_wrap_up_releases_its_next_lead_at_once(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch, leave: str
) -> None:
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    async with one_seat(sessions, clock, monkeypatch, wrap_up=3600.0) as desk:
        sid, leads, service = desk.sid, desk.leads, desk.service
        await _first_call_over_and_next_lead_claimed(desk.engine, sessions, drive, sid)
        if leave == "pause":
            await service.pause(sid, "lunch")
        else:
            await service.sign_out(sid)
        # Released by the time the request returns: the lead is free again.
        released = (await _attempts(sessions))[1]
        assert released.lead_id == leads[1]
        assert released.ended_at is not None and released.outcome == "not_sent"
        assert released.sent_at is None and "before dialling" in (released.reason or "")
        lead = await _lead(sessions, leads[1])
        assert lead.attempt_count == 0
        assert lead.next_attempt_at is not None and lead.next_attempt_at <= clock.now()
        # Back at work: the same lead is claimed and dialled again.
        if leave == "pause":
            await service.ready(sid)
        else:
            await service.sign_in(sid, ready=True)
        await drive.until(lambda: _dialled(desk.spy, leads[1]))
    assert desk.spy.per_lead == {leads[0]: 1, leads[1]: 1}


async def test_a_pre_claimed_lead_is_not_dialled_once_the_window_has_closed(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 10:58:30 in Shanghai: the first call ends well inside the morning window; the wrap-up
    # (90 s) ends after 11:00, when the morning window has closed.
    clock = VirtualClock(datetime(2026, 1, 5, 2, 58, 30, tzinfo=UTC))
    drive = Driver(clock, sessions)
    async with one_seat(sessions, clock, monkeypatch, wrap_up=90.0) as desk:
        rows = await _first_call_over_and_next_lead_claimed(desk.engine, sessions, drive, desk.sid)
        assert rows[1].created_at < datetime(2026, 1, 5, 2, 59, 55, tzinfo=UTC)

        async def released() -> bool:
            return (await _attempts(sessions))[1].ended_at is not None

        await drive.until(released)
    attempt = (await _attempts(sessions))[1]
    assert attempt.outcome == "not_sent" and "window" in (attempt.reason or "")
    assert attempt.ended_at is not None and attempt.ended_at >= datetime(
        2026, 1, 5, 3, 0, tzinfo=UTC
    )
    assert desk.spy.per_lead[desk.leads[1]] == 0
    lead = await _lead(sessions, desk.leads[1])
    assert lead.attempt_count == 0
    assert lead.next_attempt_at == datetime(2026, 1, 5, 7, 30, tzinfo=UTC)  # 15:30 Shanghai
