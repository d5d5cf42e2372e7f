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


async def test_bookkeeping_is_served_while_claims_keep_coming() -> None:
    """A steady stream of urgent waiters overtakes the seat states at most MAX_PASSED
    times: strict priority had left them unwritten until the shutdown."""
    lock = PriorityLock()
    order: list[str] = []

    async def take(name: str, rank: int) -> None:
        async with lock.hold(rank):
            order.append(name)
            # Each holder brings the next claim before it lets go, as a busy desk does.
            if name.startswith("claim") and len(order) < 40:
                claims.append(asyncio.ensure_future(take(f"claim {len(order)}", locks.CLAIM)))
            await asyncio.sleep(0)

    claims: list[asyncio.Future[None]] = []
    async with lock.hold(locks.RESULTS):
        seats = asyncio.ensure_future(take("seats", locks.BOOKKEEPING))
        await _settle()
        claims.append(asyncio.ensure_future(take("claim 0", locks.CLAIM)))
        await _settle()
    await seats
    while not all(c.done() for c in claims):
        await asyncio.gather(*claims)
    assert "seats" in order
    assert order.index("seats") == locks.MAX_PASSED, order
    assert all(n.startswith("claim") for n in order[: locks.MAX_PASSED])
    assert not lock.locked
