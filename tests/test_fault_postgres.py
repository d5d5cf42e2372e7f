"""PostgreSQL going away under a calling window (docs/reliability.md): every connection cut
at once as a restart does, and the server unreachable for 60 s. The machine's PostgreSQL is
shared with other test runs, so it is never stopped: the service reaches it through a TCP
proxy (`tests.fault_support.PgProxy`) that cuts and refuses. Engine and PBX simulator on a
driven `VirtualClock`; the figures are clock seconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.database import create_engine, session_factory
from dialer.engine import DialerEngine
from dialer.models import CallAttempt
from dialer.services import DialerService
from schedules.clock import VirtualClock
from tests.conftest import _empty_tables
from tests.fault_support import PgProxy, check_whole, figure
from tests.test_dialer_support import (
    MONDAY_0930,
    in_flight,
    make_engine,
    seed,
    spy_originates,
    start_simulator,
)
from tests.virtual_time import Driver

LEADS = 120  # the fault suite's calls (`make faults`); `make test` runs a smaller day
SMALL = 30


@dataclass
class ProxiedDb:
    direct: async_sessionmaker[AsyncSession]  # the test's own view, never cut
    service: async_sessionmaker[AsyncSession]  # the service's, through the proxy
    proxy: PgProxy


@pytest.fixture
async def proxied(_postgres_url: str) -> AsyncIterator[ProxiedDb]:
    from sqlalchemy.engine import make_url

    url = make_url(_postgres_url)
    proxy = PgProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    direct: AsyncEngine = create_engine(_postgres_url)
    service = create_engine(proxy.url(_postgres_url))
    await _empty_tables(direct)
    try:
        yield ProxiedDb(session_factory(direct), session_factory(service), proxy)
    finally:
        await service.dispose()
        await proxy.stop()
        await _empty_tables(direct)
        await direct.dispose()


async def _start(db: ProxiedDb, clock: VirtualClock, sim: object, leads: int) -> DialerEngine:
    async with db.direct() as s:
        await seed(s, specialists=0, leads=[("callback", "8", None)] * leads)
    engine = make_engine(db.service, clock, [("pbx1", sim)])  # type: ignore[list-item]
    await engine.start()
    await engine.wait_connected()
    service = DialerService(engine)
    n = leads // 3
    await service.update_campaign("callback", concurrency=n, trunk_max_calls=n, trunk_max_cps=10)
    await service.start_campaign("callback")
    return engine


async def _all_dialled(db: ProxiedDb, leads: int) -> bool:
    """Nothing in flight and every lead has had its call."""
    if await in_flight(db.direct):
        return False
    async with db.direct() as s:
        called = set((await s.scalars(select(CallAttempt.lead_id))).all())
    return len(called) == leads


async def _outage(
    db: ProxiedDb,
    monkeypatch: pytest.MonkeyPatch,
    *,
    down_for: float,
    name: str,
    leads: int = LEADS,
) -> None:
    """Half-way through the calls, PostgreSQL goes away for `down_for` clock seconds."""
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, db.service)
    sim = await start_simulator(clock)
    with spy_originates(monkeypatch, clock) as spy:
        engine = await _start(db, clock, sim, leads)
        try:
            await drive.until(lambda: engine.stats["originates"] >= leads // 2, within=300)
            async with db.direct() as s:
                caught = set(
                    (
                        await s.scalars(
                            select(CallAttempt.id).where(CallAttempt.ended_at.is_(None))
                        )
                    ).all()
                )
            down_at = clock.monotonic()
            results_before = engine.stats["results"]
            db.proxy.refuse()

            async def back() -> None:
                await clock.sleep(down_for)
                db.proxy.accept()

            reopen = asyncio.ensure_future(back())
            await drive.until(lambda: reopen.done(), within=down_for + 1)
            results_while_down = engine.stats["results"] - results_before

            async def caught_ended() -> bool:
                async with db.direct() as s:
                    rows = await s.scalars(
                        select(CallAttempt.id).where(
                            CallAttempt.id.in_(caught), CallAttempt.ended_at.is_(None)
                        )
                    )
                    return not rows.all()

            await drive.until(caught_ended, within=300)
            results_in = clock.monotonic() - down_at - down_for
            await drive.until(lambda: _all_dialled(db, leads), within=900)
            whole_after = clock.monotonic() - down_at - down_for
        finally:
            await engine.stop()
            await sim.stop()
    verdict = await check_whole(db.direct, spy.times)
    verdict.assert_whole()
    figure(
        name,
        calls=leads,
        in_flight_at_fault=len(caught),
        down_s=down_for,
        connections_cut=db.proxy.cuts,
        connects_refused=db.proxy.refused,
        results_written_while_down=results_while_down,
        result_write_retries=engine.stats["result_retries"],
        their_results_in_after_back_s=round(results_in, 1),
        all_dialled_after_back_s=round(whole_after, 1),
        unknown=verdict.unknown,
        outcomes=dict(verdict.outcomes),
    )


async def test_results_of_calls_ending_while_postgresql_restarts_are_kept_and_written(
    proxied: ProxiedDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fast restart (every connection cut, the port closed for 2 s) on a small day: the
    results that could not be written are kept and written when the server is back (they
    were dropped before, their attempts left in flight and their leads blocked)."""
    await _outage(
        proxied, monkeypatch, down_for=2.0, name="PostgreSQL restarted (small)", leads=SMALL
    )


@pytest.mark.faults
async def test_postgresql_restarted_in_a_calling_window_loses_and_repeats_nothing(
    proxied: ProxiedDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _outage(proxied, monkeypatch, down_for=2.0, name="PostgreSQL restarted mid-window")


@pytest.mark.faults
async def test_postgresql_unreachable_for_60_s_loses_and_repeats_nothing(
    proxied: ProxiedDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _outage(proxied, monkeypatch, down_for=60.0, name="PostgreSQL unreachable 60 s")
