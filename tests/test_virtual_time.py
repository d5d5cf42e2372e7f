"""The test driver of the virtual clock (tests/virtual_time.py): a hang names its holder."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.pglisten import PgListener
from schedules.clock import VirtualClock
from tests.test_dialer_support import MONDAY_0930
from tests.virtual_time import Driver


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_connection_held_across_a_clock_sleep_is_named_with_where_it_waits(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    holding = asyncio.Event()

    async def holds_across_a_sleep() -> None:
        async with sessions() as s:
            await s.execute(text("SELECT 1"))
            holding.set()
            await clock.sleep(60)

    task = asyncio.create_task(holds_across_a_sleep(), name="the-holder")
    await holding.wait()
    try:
        with pytest.raises(AssertionError) as failed:
            await drive.until(lambda: False, timeout_real=0.2)
        message = str(failed.value)
        assert "the-holder: holds_across_a_sleep (" in message
        assert "sleep (clock.py:" in message
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_listen_connection_opened_after_the_driver_does_not_stop_the_clock(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The board's and the relay's LISTEN connections stay checked out for good; one opened
    after the driver started watching the pool held every later step for 240 s."""
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    listener = PgListener(engine, "a test")
    listener.listen("nothing", lambda _payload: None)
    assert await listener.ensure()
    woke: list[object] = []

    async def sleeps() -> None:
        await clock.sleep(30)
        woke.append(clock.now())

    task = asyncio.create_task(sleeps())
    try:
        await drive.until(lambda: bool(woke), timeout_real=10)
    finally:
        task.cancel()
        await listener.close()
