"""Service processes killed (docs/reliability.md): two real `callcenter` processes on
PostgreSQL share a callback campaign's leads, each owning one PBX simulator (served over TCP
by this test); one is killed with SIGKILL in the middle of its calls and started again, then
both are killed and started again. Real time by nature (real processes): every wait polls a
condition under a generous bound; the figures are real seconds."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import ScaledClock
from dialer.engine import DialerEngine
from dialer.models import CallAttempt, Campaign
from dialer.simulator import PbxSimulator
from tests.fault_support import check_whole, figure, poll
from tests.test_dialer_support import MONDAY_0930, make_engine, seed, spy_originates

pytestmark = [
    pytest.mark.faults,
    pytest.mark.timeout(1200),
]  # real processes, a minute or two each: `make faults`
ROOT = Path(__file__).resolve().parents[1]
LEADS = 150


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Desk:
    """Two service processes, `a` on pbx1 and `b` on pbx2, started and killed at will."""

    def __init__(self, db_url: str, sims: dict[str, PbxSimulator], t0: float, tmp: Path) -> None:
        self.db_url, self.sims, self.t0, self.tmp = db_url, sims, t0, tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, server: str) -> None:
        sim = self.sims[server]
        ami = [{"name": server, "host": sim.host, "port": sim.port, "secret": "secret"}]
        env = {
            **os.environ,
            "CALLCENTER_DATABASE_URL": self.db_url,
            "CALLCENTER_SIMULATOR": "false",
            "CALLCENTER_AMI": json.dumps(ami),
            "CALLCENTER_DATA_DIR": str(self.tmp / name),
            "FAULT_T0": repr(self.t0),
        }
        log = (self.tmp / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "tests.fault_service", str(_free_port())],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name)


@pytest.fixture
async def sims() -> AsyncIterator[dict[str, PbxSimulator]]:
    clock = ScaledClock(MONDAY_0930, speed=1.0)
    out = {}
    for name in ("pbx1", "pbx2"):
        sim = PbxSimulator(clock=clock, users={"dialer": "secret"}, seed=1)
        await sim.start("127.0.0.1", 0)
        out[name] = sim
    try:
        yield out
    finally:
        for sim in out.values():
            await sim.stop()


async def _prepare(sessions: async_sessionmaker[AsyncSession], clock: ScaledClock) -> None:
    async with sessions() as s:
        await seed(s, specialists=0, leads=[("callback", "8", None)] * LEADS)
    # The campaigns' rows, as a running service makes them; then the callback one started.
    engine: DialerEngine = make_engine(sessions, clock, [("pbx0", PbxSimulator())])
    await engine.ensure_default_campaigns()
    async with sessions() as s:
        await s.execute(
            update(Campaign)
            .where(Campaign.kind == "callback")
            .values(running=True, concurrency=15, trunk_max_calls=15, trunk_max_cps=5.0)
        )
        await s.commit()


async def _count(sessions: async_sessionmaker[AsyncSession], *where: object) -> int:
    async with sessions() as s:
        q = select(func.count()).select_from(CallAttempt).where(*where)  # type: ignore[arg-type]
        return int(await s.scalar(q) or 0)


async def _all_called(sessions: async_sessionmaker[AsyncSession]) -> bool:
    async with sessions() as s:
        called = await s.scalar(select(func.count(func.distinct(CallAttempt.lead_id))))
    return called == LEADS and await _count(sessions, CallAttempt.ended_at.is_(None)) == 0


def _on(server: str) -> object:
    return CallAttempt.ami_server == server


def _more(sessions: async_sessionmaker[AsyncSession], server: str, n: int):  # type: ignore[no-untyped-def]
    async def cond() -> bool:
        return await _count(sessions, _on(server)) >= n

    return cond


@pytest.mark.parametrize("both", [False, True], ids=["one-of-two", "both"])
async def test_killed_service_processes_lose_and_repeat_nothing(
    _postgres_url: str,
    sessions: async_sessionmaker[AsyncSession],
    sims: dict[str, PbxSimulator],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    both: bool,
) -> None:
    if sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("two service processes share one database on PostgreSQL only")
    clock = sims["pbx1"].pbx.clock
    t0 = time.time()
    await _prepare(sessions, clock)  # type: ignore[arg-type]
    desk = Desk(_postgres_url, sims, t0, tmp_path)
    with spy_originates(monkeypatch, clock) as spy:
        try:
            desk.start("a", "pbx1")
            desk.start("b", "pbx2")
            await poll(_more(sessions, "pbx1", 20), timeout=180, what="a dials")
            await poll(_more(sessions, "pbx2", 5), timeout=180, what="b dials")
            killed = ["a", "b"] if both else ["a"]
            for name in killed:
                desk.kill(name)
            killed_at = time.monotonic()
            async with sessions() as s:
                caught = set(
                    (
                        await s.scalars(
                            select(CallAttempt.id).where(CallAttempt.ended_at.is_(None))
                        )
                    ).all()
                )
            left = {
                s: await _count(sessions, _on(s), CallAttempt.ended_at.is_(None))
                for s in ("pbx1", "pbx2")
            }
            if not both:  # the survivor dials on alone while a is dead
                b_now = await _count(sessions, _on("pbx2"))
                await poll(_more(sessions, "pbx2", b_now + 5), timeout=120, what="b dials on")
            down = time.monotonic() - killed_at
            for name, server in (("a", "pbx1"), ("b", "pbx2")):
                if name in killed:
                    desk.start(name, server)
            restarted_at = time.monotonic()

            async def settled_all() -> bool:
                return (
                    await _count(
                        sessions, CallAttempt.id.in_(caught), CallAttempt.ended_at.is_(None)
                    )
                    == 0
                )

            settled = await poll(settled_all, timeout=180, what="the calls left settled")
            await poll(lambda: _all_called(sessions), timeout=600, what="every lead called")
            whole = time.monotonic() - restarted_at
        finally:
            desk.stop_all()
    verdict = await check_whole(sessions, spy.times)
    verdict.assert_whole()
    figure(
        f"service processes killed ({'both' if both else 'one of two'})",
        calls=LEADS,
        in_flight_at_kill=left,
        down_s=round(down, 1),
        settled_after_restart_s=round(settled, 1),
        all_called_after_restart_s=round(whole, 1),
        unknown=verdict.unknown,
        outcomes=dict(verdict.outcomes),
    )
