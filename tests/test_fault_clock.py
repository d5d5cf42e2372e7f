"""The machine's clock stepped back and forward by an hour in a calling window
(docs/reliability.md), through the project's clock abstraction (`SteppedClock`: wall time
jumps, the monotonic clock and every wait go on). The windows follow the wall clock (it is
what the desk's hours mean); durations, timeouts and timers run on the monotonic clock, so
no call is cut, stretched or timed out by the step."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.engine import DialerConfig
from dialer.models import CallAttempt
from dialer.services import DialerService
from schedules.clock import VirtualClock
from schedules.windows import CallingHours
from tests.fault_support import SteppedClock, check_whole, figure
from tests.test_dialer_support import (
    MONDAY_0930,
    in_flight,
    make_engine,
    seed,
    spy_originates,
    start_simulator,
)
from tests.virtual_time import Driver

LEADS = 24
pytestmark = [
    pytest.mark.faults,
    pytest.mark.timeout(1200),
]  # hours of clock time, 0.5-2 min each: `make faults`
CONFIG = DialerConfig(
    wrap_up_seconds=5.0, idle_recheck_seconds=30.0, automatic_tick_seconds=10.0,
    housekeeping_seconds=30.0,
)  # fmt: skip


async def _durations_sane(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    """Ring and talk times come from the monotonic clock: a step shows in none of them."""
    async with sessions() as s:
        rows = (await s.scalars(select(CallAttempt))).all()
    return [
        f"{a.attempt_id}: ring {a.ring_seconds} talk {a.talk_seconds}"
        for a in rows
        if any(v is not None and not 0 <= v < 120 for v in (a.ring_seconds, a.talk_seconds))
    ]


@pytest.mark.parametrize(
    ("start", "step", "reopens"),
    [
        # 09:40 stepped back to 08:40: closed until 09:30 on the new clock.
        (timedelta(minutes=10), -3600.0, timedelta(minutes=50)),
        # 10:30 stepped forward to 11:30: closed until 15:30.
        (timedelta(hours=1), 3600.0, timedelta(hours=4)),
    ],
    ids=["back", "forward"],
)
async def test_a_clock_stepped_an_hour_dials_nobody_outside_a_window_and_cuts_no_call(
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    start: timedelta,
    step: float,
    reopens: timedelta,
) -> None:
    virtual = VirtualClock(MONDAY_0930 + start)
    clock = SteppedClock(virtual)
    drive = Driver(virtual, sessions)
    hours = CallingHours()
    async with sessions() as s:
        await seed(s, specialists=0, leads=[("callback", "8", None)] * LEADS)
    sim = await start_simulator(clock)
    with spy_originates(monkeypatch, clock) as spy:
        engine = make_engine(sessions, clock, [("pbx1", sim)], config=CONFIG)
        await engine.start()
        try:
            await engine.wait_connected()
            service = DialerService(engine)
            await service.update_campaign(
                "callback", concurrency=4, trunk_max_calls=4, trunk_max_cps=2
            )
            await service.start_campaign("callback")
            await drive.until(lambda: engine.stats["originates"] >= 6, within=120)
            in_flight_at_step = await in_flight(sessions)
            sent_before = engine.stats["originates"]
            clock.step(step)
            stepped_at = virtual.monotonic()
            assert not hours.is_open(clock.now())
            # The calls already up go on to their real end; nothing new starts.
            await drive.until(lambda: _none_in_flight(sessions), within=120)
            assert engine.stats["originates"] == sent_before
            await drive.until(
                lambda: engine.stats["originates"] > sent_before,
                within=reopens.total_seconds() + 60,
            )
            paused = virtual.monotonic() - stepped_at
            resumed_at = clock.now()
            await drive.until(lambda: _every_lead_called(sessions), within=600)
        finally:
            await engine.stop()
            await sim.stop()
    verdict = await check_whole(sessions, spy.times)
    verdict.assert_whole()
    assert await _durations_sane(sessions) == []
    assert hours.is_open(resumed_at) and paused >= reopens.total_seconds() - 60
    figure(
        f"clock stepped {'back' if step < 0 else 'forward'} 1 h",
        backend=sessions.kw["bind"].dialect.name,
        calls=LEADS,
        in_flight_at_step=in_flight_at_step,
        no_calls_for_s=round(paused),
        resumed_at_local=f"{resumed_at + timedelta(hours=8):%H:%M:%S}",
        unknown=verdict.unknown,
        outcomes=dict(verdict.outcomes),
    )


async def _none_in_flight(sessions: async_sessionmaker[AsyncSession]) -> bool:
    return await in_flight(sessions) == 0


async def _every_lead_called(sessions: async_sessionmaker[AsyncSession]) -> bool:
    if await in_flight(sessions):
        return False
    async with sessions() as s:
        called = set((await s.scalars(select(CallAttempt.lead_id))).all())
    return len(called) == LEADS
