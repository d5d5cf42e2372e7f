"""No phone rings outside a calling window (issue 11, finding 7): a call near a window's end
rings only for what is left of it, and no call starts with less than 15 s left."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.engine import DialerConfig
from dialer.simulator.pbx import Pbx
from schedules.clock import VirtualClock
from schedules.windows import CallingHours, ring_time
from tests.dialing_support import attempts, ended, record_originates, running, shanghai
from tests.test_dialer_support import seed
from tests.virtual_time import Driver

RING = timedelta(seconds=30)
S = timedelta(seconds=1)


def test_a_call_with_the_whole_ring_time_left_rings_for_all_of_it() -> None:
    assert ring_time(timedelta(minutes=5), RING) == RING
    assert ring_time(30 * S, RING) == RING


def test_near_the_end_the_ring_time_is_cut_to_what_is_left() -> None:
    assert ring_time(20 * S, RING) == 20 * S
    assert ring_time(15 * S, RING) == 15 * S


def test_no_call_starts_with_less_than_the_minimum_ring_left() -> None:
    assert ring_time(14.9 * S, RING) is None
    assert ring_time(None, RING) is None  # closed
    assert ring_time(10 * S, RING, minimum=5 * S) == 10 * S


def test_the_windows_say_how_long_a_call_sent_now_may_ring() -> None:
    hours = CallingHours()
    assert hours.ring_time(shanghai(10, 59, 34.9), RING) == 25.1 * S  # rang to 11:00:04.9
    assert hours.ring_time(shanghai(10, 59, 40), RING) == 20 * S
    assert hours.ring_time(shanghai(10, 59, 20), RING) == RING
    assert hours.ring_time(shanghai(10, 59, 50), RING) is None
    assert hours.ring_time(shanghai(11, 0), RING) is None
    assert hours.ring_time(shanghai(16, 59, 45), RING) == 15 * S


def _hangups(pbx: Pbx, clock: VirtualClock, out: list[tuple[object, str]]) -> None:
    def sink(data: bytes, _class: str) -> None:
        text = data.decode()
        if text.startswith("Event: Hangup\r\n"):
            chan = text.split("Channel: ", 1)[1].split("\r\n", 1)[0]
            out.append((clock.now(), chan))

    pbx.sinks.add(sink)


async def test_a_call_sent_at_10_59_40_rings_the_customer_only_until_11_00(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(shanghai(10, 59, 40))
    drive = Driver(clock, sessions)
    async with sessions() as s:
        specs, leads = await seed(s, specialists=1, leads=[("renewal", "2", 0)])  # never answers
    hangups: list[tuple[object, str]] = []
    with record_originates(monkeypatch, clock) as seen:
        async with running(sessions, clock) as (_engine, service, sim):
            _hangups(sim.pbx, clock, hangups)
            await service.start_campaign("renewal")
            await service.sign_in(specs[0], ready=True)
            await drive.until(lambda: _sent(seen))
            await drive.until(lambda: ended(sessions, 1))
    [sent] = seen.sent
    assert sent.at == shanghai(10, 59, 40)
    # 20 s left, less 1 s for the call to reach the phone: the Originate's Timeout header
    # says 19000 ms (not 30000), and so does the dialplan's Dial of the customer.
    assert sent.timeout == 19.0
    assert sent.variables["RING_SECONDS"] == "19"
    carrier = [at for at, chan in hangups if chan.startswith("PJSIP/carrier-")]
    assert carrier and max(carrier) <= shanghai(11, 0)  # type: ignore[operator]
    [attempt] = await attempts(sessions)
    assert attempt.lead_id == leads[0] and attempt.outcome == "no_answer"


async def test_with_less_than_15_s_left_no_call_is_sent_until_the_next_window(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(shanghai(10, 59, 50))
    drive = Driver(clock, sessions)
    async with sessions() as s:
        specs, leads = await seed(s, specialists=1, leads=[("renewal", "0", 0)])
    config = DialerConfig(wrap_up_seconds=5.0, idle_recheck_seconds=5.0, housekeeping_seconds=5.0)
    with record_originates(monkeypatch, clock) as seen:
        async with running(sessions, clock, config=config) as (_engine, service, _sim):
            await service.start_campaign("renewal")
            await service.sign_in(specs[0], ready=True)
            await drive.until(lambda: _after(clock, shanghai(11, 0, 10)))
            assert seen.sent == []
            clock.set(shanghai(15, 29, 58))
            await drive.until(lambda: _sent(seen))
    [sent] = seen.sent
    assert sent.at >= shanghai(15, 30)
    assert sent.timeout == 30.0 and sent.variables["RING_SECONDS"] == "30"
    assert sent.variables["LEAD_ID"] == str(leads[0])


async def _sent(seen: object) -> bool:
    return bool(getattr(seen, "sent", None))


async def _after(clock: VirtualClock, when: object) -> bool:
    return clock.now() >= when  # type: ignore[operator]
