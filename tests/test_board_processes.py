"""Two service processes on one PostgreSQL, each owning its own Asterisk (two bootstrapped
apps with their own database engines and PBX simulators), and one board: the board of
process A shows process B's seat and call (shared through `board_entries` and LISTEN/NOTIFY),
and a supervisor on A listens in on B's call: B carries it out on its own AMI link.

PostgreSQL only: SQLite runs one service process (docs/architecture.md), whose board reads
the same table by polling (tests/test_board_api.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.bootstrap import Container, build_app
from callcenter.database import create_engine, session_factory
from callcenter.service import Service, wire
from callcenter.settings import AmiServer, Settings
from crm_sync.auth import issue_token
from crm_sync.models import Specialist
from dialer.engine import DialerConfig
from schedules.clock import VirtualClock
from tests.seat_page_support import drive_until
from tests.test_dialer_support import MONDAY_0930, seed, start_simulator


@dataclass
class Process:
    client: TestClient
    service: Service
    sim: Any


async def _process(
    url: str, clock: VirtualClock, name: str, data: Path, sim: Any
) -> tuple[Process, TestClient, Container]:
    settings = Settings(
        data_dir=data,
        database_url=url,
        ami=[AmiServer(name=name, host=sim.host, port=sim.port, secret=SecretStr("secret"))],
    )
    engine = create_engine(url)
    container = Container(
        settings=settings, clock=clock, engine=engine, sessions=session_factory(engine)
    )
    service = wire(container, daily_jobs=False, dialer_config=DialerConfig(wrap_up_seconds=30))
    client = TestClient(TestServer(build_app(container), host="127.0.0.1"))
    await client.start_server()
    return Process(client, service, sim), client, container


@pytest.fixture
async def desk(
    db_url: str, tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[tuple[Process, Process, list[int], str]]:
    clock = VirtualClock(MONDAY_0930)
    async with sessions() as s:
        specs, _leads = await seed(
            s, specialists=2, leads=[("renewal", "7", 0), ("renewal", "7", 1)]
        )
        boss = Specialist(name="主管", seat="PJSIP/8999", role="supervisor")
        s.add(boss)
        await s.flush()
        token = await issue_token(s, boss.id)
        await s.commit()
    procs = []
    for name in ("pbx-a", "pbx-b"):
        sim = await start_simulator(clock)
        procs.append(await _process(db_url, clock, name, tmp_path / name, sim))
    a, b = procs[0][0], procs[1][0]
    try:

        async def connected() -> bool:
            return all(link["connected"] for p in (a, b) for link in p.service.engine.health())

        await drive_until(clock, connected)
        await a.service.dialer.start_campaign("renewal")
        yield a, b, specs, token
    finally:
        for _p, client, _c in reversed(procs):
            await client.close()
        for p, _client, _c in procs:
            await p.sim.stop()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_one_board_shows_both_processes_and_listens_in_on_the_other_ones_call(
    desk: tuple[Process, Process, list[int], str],
) -> None:
    a, b, specs, token = desk
    auth = {"Authorization": f"Bearer {token}"}
    clock = a.service.container.clock
    assert isinstance(clock, VirtualClock)
    # Each specialist works on a different process (their seat's Asterisk).
    await a.service.dialer.sign_in(specs[0], ready=True)
    await b.service.dialer.sign_in(specs[1], ready=True)
    board: dict[str, Any] = {}

    async def both_talking() -> bool:
        resp = await a.client.get("/api/board", headers=auth)
        board.update(await resp.json())
        talking = {c["specialist_id"]: c for c in board["call"].values() if c["answered"]}
        return set(talking) == set(specs)

    await drive_until(clock, both_talking)
    assert set(board["link"]) == {"pbx-a", "pbx-b"}, "both processes' AMI links"
    assert {board["seat"][str(s)]["state"] for s in specs} == {"on_call"}
    b_call = next(k for k, c in board["call"].items() if c["specialist_id"] == specs[1])
    assert board["call"][b_call]["server"] == "pbx-b"
    # Listening in from A on B's call: B's simulator gets the ChanSpy Originate.
    seen: list[bytes] = []
    b.sim.pbx.sinks.add(lambda data, _cls: seen.append(data))
    resp = await a.client.post(f"/api/board/calls/{b_call}/listen", headers=auth)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "done"

    async def spying() -> bool:
        return any(b"Event: ChanSpyStart" in d for d in seen)

    await drive_until(clock, spying)
    assert not any(c.app == "ChanSpy" for c in a.sim.pbx.channels.values())
    # B stops: its seat and call leave A's board.
    await b.client.close()

    async def gone() -> bool:
        resp = await a.client.get("/api/board", headers=auth)
        data = await resp.json()
        return "pbx-b" not in data["link"] and b_call not in data["call"]

    await drive_until(clock, gone)
