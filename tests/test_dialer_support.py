"""Helpers for the dialer's integration tests (no tests here): seeded CRM data, an engine
wired to the PBX simulator over real TCP, a spy that counts the Originates the simulator
received per lead (and when), and simulated days on a driven `VirtualClock` that jump over
nights (`tests/virtual_time.py` moves the clock)."""

from __future__ import annotations

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
from tests.virtual_time import Driver

MONDAY_0930 = datetime(2026, 1, 5, 1, 30, tzinfo=UTC)  # 09:30 in Asia/Shanghai


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
    drive: Driver,
    done: Callable[[], Awaitable[bool]],
    *,
    within_days: float = 7.0,
    idle_polls: int = 3,
    poll: float = 5.0,
    quantum: float = 0.0,
) -> int:
    """Let the dialer work, looking every `poll` seconds of clock time; whenever nothing is in
    flight for a few looks, jump the clock to the next moment something becomes due (or the
    next window). Returns the jumps made."""
    from schedules.windows import CallingHours

    clock = drive.clock
    hours = CallingHours()
    started = time.monotonic()
    give_up = clock.now() + timedelta(days=within_days)
    quiet = 0
    jumps = 0
    while not await done():
        if clock.now() > give_up:
            raise AssertionError(f"the simulated days did not finish within {within_days} days")
        n_in_flight = await in_flight(sessions)
        if os.environ.get("DIALER_SIM_PROGRESS"):
            print(
                f"{time.monotonic() - started:6.1f}s {clock.now():%a %H:%M:%S} in flight {n_in_flight}",
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
            target = target if hours.is_open(target) else hours.next_open(target)
            if target > now:
                clock.set(target)  # the sleepers due before it wake in order in run_for
                jumps += 1
            quiet = 0
        await drive.run_for(poll, quantum=quantum)
    return jumps
