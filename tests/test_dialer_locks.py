"""The SQLite writer lock of the dialer: the most urgent waiter goes first."""

from __future__ import annotations

import asyncio

from dialer import locks
from dialer.locks import PriorityLock


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_claim_goes_before_results_and_bookkeeping_that_waited_longer() -> None:
    lock = PriorityLock()
    order: list[str] = []

    async def take(name: str, rank: int) -> None:
        async with lock.hold(rank):
            order.append(name)
            await asyncio.sleep(0)

    async with lock.hold(locks.RESULTS):
        waiters = [
            asyncio.ensure_future(take("seats", locks.BOOKKEEPING)),
            asyncio.ensure_future(take("results 1", locks.RESULTS)),
            asyncio.ensure_future(take("results 2", locks.RESULTS)),
            asyncio.ensure_future(take("preclaim", locks.PRECLAIM)),
            asyncio.ensure_future(take("claim", locks.CLAIM)),
        ]
        await _settle()
        assert lock.waiting() == 5 and lock.waiting(below=locks.RESULTS) == 2
    await asyncio.gather(*waiters)
    assert order == ["claim", "preclaim", "results 1", "results 2", "seats"]
    assert not lock.locked


async def test_a_cancelled_waiter_neither_holds_nor_blocks_the_lock() -> None:
    lock = PriorityLock()
    got: list[str] = []

    async def take(name: str) -> None:
        async with lock.hold(locks.CLAIM):
            got.append(name)

    async with lock.hold(locks.RESULTS):
        gone = asyncio.ensure_future(take("cancelled"))
        after = asyncio.ensure_future(take("next"))
        await _settle()
        gone.cancel()
        await _settle()
    await after
    assert got == ["next"] and gone.cancelled() and not lock.locked
    async with lock.hold(locks.BOOKKEEPING):  # free again for anyone
        assert lock.locked
