"""Helpers for the dialling-rules tests (no tests here): the engine wired to the PBX simulator
over real TCP on a `VirtualClock`, and a record of every Originate the simulator received
(with its headers and the clock time). Time is driven by the one driver of the tests,
`tests.virtual_time.Driver`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.engine import DialerConfig, DialerEngine
from dialer.models import CallAttempt
from dialer.services import DialerService
from dialer.simulator import PbxSimulator
from dialer.simulator import server as sim_server
from schedules.clock import VirtualClock
from tests.test_dialer_support import make_engine
from tests.virtual_time import Driver


def shanghai(hour: int, minute: int, second: float = 0.0, day: int = 5) -> datetime:
    """A time on Monday 2026-01-05 (a calling day) in Asia/Shanghai, as UTC."""
    whole = int(second)
    micro = round((second - whole) * 1e6)
    local = datetime(2026, 1, day, hour, minute, whole, micro, tzinfo=ZoneInfo("Asia/Shanghai"))
    return local.astimezone(UTC)


@dataclass(frozen=True)
class Sent:
    at: datetime
    action_id: str
    channel: str
    exten: str
    timeout: float  # seconds, from the Timeout header
    variables: dict[str, str]


@dataclass
class Originates:
    """Every Originate the simulator received, in order."""

    sent: list[Sent] = field(default_factory=list)

    def for_lead(self, lead_id: int) -> list[Sent]:
        return [s for s in self.sent if s.variables.get("LEAD_ID") == str(lead_id)]


@contextmanager
def record_originates(monkeypatch: pytest.MonkeyPatch, clock: VirtualClock) -> Iterator[Originates]:
    seen = Originates()
    real = sim_server.start_originate

    def recording(pbx: Any, o: Any, respond: Any) -> None:
        sent = Sent(clock.now(), o.action_id, o.channel, o.exten, o.timeout, dict(o.variables))
        seen.sent.append(sent)
        real(pbx, o, respond)

    monkeypatch.setattr(sim_server, "start_originate", recording)
    yield seen


async def attempts(sessions: async_sessionmaker[AsyncSession]) -> list[CallAttempt]:
    async with sessions() as s:
        return list((await s.scalars(select(CallAttempt).order_by(CallAttempt.created_at))).all())


async def ended(sessions: async_sessionmaker[AsyncSession], n: int) -> bool:
    rows = await attempts(sessions)
    return len(rows) >= n and all(a.ended_at is not None for a in rows)


@asynccontextmanager
async def running(
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
    *,
    config: DialerConfig | None = None,
    sim: PbxSimulator | None = None,
) -> AsyncIterator[tuple[DialerEngine, DialerService, PbxSimulator]]:
    """The simulator on a loopback port and an engine connected to it, both on `clock`."""
    sim = sim or PbxSimulator(clock=clock, users={"dialer": "secret"}, seed=1)
    await sim.start("127.0.0.1", 0)
    engine = make_engine(sessions, clock, [("pbx1", sim)], config=config)
    service = DialerService(engine)
    await engine.start()
    try:
        await Driver(clock, sessions).until(lambda: _connected(engine))
        yield engine, service, sim
    finally:
        await engine.stop(grace=0)
        await sim.stop()


async def _connected(engine: DialerEngine) -> bool:
    return all(s.link is not None and s.link.connected for s in engine._servers.values())
