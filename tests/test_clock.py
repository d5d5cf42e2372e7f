"""VirtualClock.advance_to_next: the seam a test driver uses to move time only from one
timer to the next while the system under test is idle."""

from __future__ import annotations

import asyncio

from schedules.clock import VirtualClock


async def test_advance_to_next_wakes_only_the_earliest_sleepers() -> None:
    clock = VirtualClock()
    woke: list[tuple[str, float]] = []

    async def nap(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(nap(n, s)) for n, s in [("c", 9.0), ("a", 2.0), ("b", 2.0)]]
    await asyncio.sleep(0)
    assert clock.advance_to_next()
    await asyncio.sleep(0)
    assert sorted(woke) == [("a", 2.0), ("b", 2.0)] and clock.monotonic() == 2.0
    assert clock.advance_to_next()
    await asyncio.gather(*tasks)
    assert woke[-1] == ("c", 9.0)
    assert not clock.advance_to_next()  # nobody left: time stands still
    assert clock.monotonic() == 9.0


async def test_advance_to_next_never_passes_its_limit() -> None:
    clock = VirtualClock()
    task = asyncio.create_task(clock.sleep(10.0))
    await asyncio.sleep(0)
    assert not clock.advance_to_next(limit=4.0)
    assert clock.monotonic() == 4.0 and not task.done()
    assert clock.advance_to_next(limit=6.0)
    await task
    assert clock.monotonic() == 10.0


async def test_advance_to_next_skips_cancelled_sleepers() -> None:
    clock = VirtualClock()
    gone = asyncio.create_task(clock.sleep(1.0))
    kept = asyncio.create_task(clock.sleep(5.0))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    assert clock.advance_to_next()
    await kept
    assert clock.monotonic() == 5.0
