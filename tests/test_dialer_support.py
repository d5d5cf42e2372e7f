"""Helpers for the dialer's integration tests (no tests here): a fast clock that can jump over
nights, seeded CRM data, an engine wired to the PBX simulator over real TCP, and a spy that
counts the Originates the simulator received per lead (and when)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.bootstrap import Container, build_app
from callcenter.service import Service, wire
from callcenter.settings import AmiServer, Settings
from crm_sync.models import Branch, Customer, Lead, Phone, Policy, Specialist
from dialer.ami.supervisor import AmiConfig
from dialer.engine import AmiServerSpec, AttemptEnded, DialerConfig, DialerEngine
from dialer.models import CallAttempt
from dialer.originate import DialPlan
from dialer.services import DialerService
from dialer.simulator import PbxSimulator
from dialer.simulator import server as sim_server

MONDAY_0930 = datetime(2026, 1, 5, 1, 30, tzinfo=UTC)  # 09:30 in Asia/Shanghai


class FastClock:
    """Real time times `speed`, plus jumps: `jump(seconds)` moves time forward at once and
    wakes every sleeper to look at the new time (for skipping nights in a simulated day)."""

    def __init__(self, start: datetime, speed: float) -> None:
        self._start = start
        self.speed = speed
        self._t0 = time.monotonic()
        self._offset = 0.0
        self._sleepers: set[asyncio.Future[None]] = set()

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self.speed + self._offset

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        target = self.monotonic() + max(0.0, seconds)
        loop = asyncio.get_running_loop()
        while (left := target - self.monotonic()) > 0:
            fut: asyncio.Future[None] = loop.create_future()
            handle = loop.call_later(left / self.speed, _wake, fut)
            self._sleepers.add(fut)
            try:
                await fut
            finally:
                handle.cancel()
                self._sleepers.discard(fut)
        if seconds <= 0:
            await asyncio.sleep(0)

    def jump_to(self, when: datetime) -> None:
        delta = (when - self.now()).total_seconds()
        if delta <= 0:
            return
        self._offset += delta
        for fut in list(self._sleepers):
            _wake(fut)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


@dataclass
class OriginateSpy:
    """What the simulator received: Originates per lead, with the clock time of each."""

    clock: Any
    per_lead: Counter[int] = field(default_factory=Counter)
    per_attempt: Counter[str] = field(default_factory=Counter)
    times: list[tuple[datetime, int, str]] = field(default_factory=list)


@contextmanager
def spy_originates(monkeypatch: pytest.MonkeyPatch, clock: Any) -> Iterator[OriginateSpy]:
    spy = OriginateSpy(clock)
    real = sim_server.start_originate

    def counting(pbx: Any, o: Any, respond: Any) -> None:
        v = dict(o.variables)
        lead = int(v.get("LEAD_ID", "0") or 0)
        spy.per_lead[lead] += 1
        spy.per_attempt[o.action_id] += 1
        spy.times.append((clock.now(), lead, o.action_id))
        real(pbx, o, respond)

    monkeypatch.setattr(sim_server, "start_originate", counting)
    yield spy


async def start_simulator(clock: Any, tmp_path: Any = None) -> PbxSimulator:
    sim = PbxSimulator(clock=clock, users={"dialer": "secret"}, seed=1)
    await sim.start("127.0.0.1", 0)
    return sim


def wire_desk(
    db_url: str,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    data_dir: Path,
    clock: Any,
    sim: PbxSimulator,
) -> tuple[Service, web.Application]:
    """The whole service wired to one simulator, without daily jobs, with a long wrap-up (a
    test acts on the seat after a call); the `engine` fixture disposes the database."""
    settings = Settings(
        data_dir=data_dir,
        database_url=db_url,
        ami=[AmiServer(name="pbx1", host=sim.host, port=sim.port, secret=SecretStr("secret"))],
    )
    container = Container(settings=settings, clock=clock, engine=engine, sessions=sessions)
    service = wire(container, daily_jobs=False, dialer_config=DialerConfig(wrap_up_seconds=600))
    return service, build_app(container, owns_engine=False)


def make_engine(
    sessions: async_sessionmaker[AsyncSession],
    clock: Any,
    sims: list[tuple[str, PbxSimulator]],
    *,
    config: DialerConfig | None = None,
    on_attempt_ended: Callable[[AttemptEnded], Awaitable[None]] | None = None,
    family: str = "pjsip",
) -> DialerEngine:
    specs = [
        AmiServerSpec(
            name,
            AmiConfig(
                host=sim.host,
                port=sim.port,
                username="dialer",
                secret="secret",
                ping_interval=30.0,
                ping_timeout=10.0,
                backoff_base=0.2,
                backoff_cap=2.0,
                action_timeout=10.0,
            ),
            DialPlan(family=family),
        )
        for name, sim in sims
    ]
    return DialerEngine(
        sessions,
        clock,
        specs,
        config=config
        or DialerConfig(
            wrap_up_seconds=5.0,
            idle_recheck_seconds=30.0,
            automatic_tick_seconds=1.0,
            housekeeping_seconds=5.0,
        ),
        on_attempt_ended=on_attempt_ended,
    )


def number_for(i: int, digit: str) -> str:
    return f"+86139{i:07d}{digit}"


async def seed(
    session: AsyncSession,
    *,
    specialists: int,
    leads: list[tuple[str, str, int | None]],  # (kind, last digit, owner index or None)
    today: date = date(2026, 1, 5),
    expiry_days: int = 25,
) -> tuple[list[int], list[int]]:
    """Specialists with seats PJSIP/81NN and leads with numbers ending in the given digit."""
    branch = Branch(code="B1", name="一分公司", email="b1@example.com")
    session.add(branch)
    specs = [
        Specialist(name=f"专员{i}", seat=f"PJSIP/{8100 + i}", branch=branch)
        for i in range(specialists)
    ]
    session.add_all(specs)
    await session.flush()
    lead_ids: list[int] = []
    objs: list[Lead] = []
    for i, (kind, digit, owner) in enumerate(leads):
        number = number_for(i, digit)
        cust = Customer(name=f"客户{i}", match_key=f"c{i}")
        phone = Phone(customer=cust, raw=number, e164=number, kind="mobile")
        pol = Policy(
            policy_number=f"P{i:06d}",
            policyholder=cust,
            branch=branch,
            expiry_date=today + timedelta(days=expiry_days + i % 3),
        )
        owner_id = specs[owner].id if owner is not None else None
        lead = Lead(
            policy=pol,
            kind=kind,
            phone=phone,
            status="assigned" if owner_id is not None else "due",
            owner_id=owner_id,
            distributed_on=today if owner_id is not None else None,
            due_on=today,
        )
        session.add_all([cust, phone, pol, lead])
        objs.append(lead)
    await session.flush()
    lead_ids = [lead.id for lead in objs]
    await session.commit()
    return [s.id for s in specs], lead_ids


async def wait_for(
    cond: Callable[[], Awaitable[bool]], clock: Any, *, timeout_real: float = 60, step: float = 1.0
) -> None:
    """Poll `cond` every `step` seconds of the (fast) clock, up to `timeout_real` real s."""
    deadline = time.monotonic() + timeout_real
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await clock.sleep(step)


async def in_flight(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s:
        return int(
            await s.scalar(
                select(func.count()).select_from(CallAttempt).where(CallAttempt.ended_at.is_(None))
            )
            or 0
        )


def disposing_hook(
    service_ref: list[DialerService], codes: Callable[[int], str]
) -> Callable[[AttemptEnded], Awaitable[None]]:
    """A simulated specialist: logs a result for every answered call right after it ends."""

    async def hook(e: AttemptEnded) -> None:
        if e.specialist_id is None or e.outcome not in ("answered", "answered_hung_up_early"):
            return
        await service_ref[0].dispose(e.lead_id, e.specialist_id, codes(e.lead_id))

    return hook


async def drive_days(
    sessions: async_sessionmaker[AsyncSession],
    clock: FastClock,
    done: Callable[[], Awaitable[bool]],
    *,
    timeout_real: float = 50,
    idle_polls: int = 3,
    poll: float = 5.0,
) -> int:
    """Let the dialer work; whenever nothing is in flight for a few polls, jump the clock to
    the next moment something becomes due (or the next window). Returns the jumps made."""
    from schedules.windows import CallingHours

    hours = CallingHours()
    deadline = time.monotonic() + timeout_real
    quiet = 0
    jumps = 0
    while not await done():
        if time.monotonic() > deadline:
            raise AssertionError("the simulated days did not finish in time")
        n_in_flight = await in_flight(sessions)
        if os.environ.get("DIALER_SIM_PROGRESS"):
            print(
                f"{time.monotonic() - deadline + timeout_real:6.1f}s {clock.now():%a %H:%M:%S} in flight {n_in_flight}",
                flush=True,
            )
        quiet = quiet + 1 if n_in_flight == 0 else 0
        if quiet >= idle_polls:
            now = clock.now()
            async with sessions() as s:
                nxt = await s.scalar(
                    select(func.min(Lead.next_attempt_at)).where(
                        Lead.status != "closed", Lead.next_attempt_at > now
                    )
                )
            target = hours.next_window_start(now) if nxt is None else nxt
            if hours.is_open(now) and nxt is not None and nxt > hours.next_window_start(now):
                target = hours.next_window_start(now)
            clock.jump_to(target if hours.is_open(target) else hours.next_open(target))
            jumps += 1
            quiet = 0
        await clock.sleep(poll)
    return jumps
