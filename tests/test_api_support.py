"""The fully wired service on a loopback port for API tests: a supervisor's and a
specialist's token, leads and stored recordings with small ids, the PBX simulator, and a
clock that stands still on a Sunday evening (outside every calling window, so starting a
campaign dials nobody and no request leaves work running behind it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.bootstrap import Container, build_app
from callcenter.service import wire
from callcenter.settings import AmiServer, Settings
from crm_sync.auth import TOKEN_PREFIX_LEN, ApiToken, issue_token
from crm_sync.models import Specialist
from recordings.store import LocalStore
from schedules.clock import VirtualClock
from tests.test_dialer_support import seed, start_simulator
from tests.test_recordings_helpers import add_recording

# Sunday 2026-01-11, 20:00 in Asia/Shanghai.
SUNDAY_EVENING = datetime(2026, 1, 11, 12, 0, tzinfo=UTC)
AUDIO = bytes(range(256)) * 8
# A supervisor's fuzzer revokes the token ids it tries (1, the ids' example, first); its own
# tokens sit at ids it does not try, so a revoke does not lock it out halfway through a run.
TOKEN_IDS = {"supervisor": 1_000_001, "specialist": 1_000_002}


@dataclass
class WiredApi:
    url: str
    tokens: dict[str, str]
    leads: list[int]  # the specialist's own first, then another's
    recordings: list[int]  # the specialist's, then another's

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@asynccontextmanager
async def wired_api(
    db_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[WiredApi]:
    clock = VirtualClock(SUNDAY_EVENING)
    async with sessions() as s:
        specs, leads = await seed(
            s, specialists=2, leads=[("renewal", "0", 0), ("renewal", "7", 1), ("lapsed", "3", 0)]
        )
        boss = Specialist(name="主管", seat="PJSIP/8999", role="supervisor")
        s.add(boss)
        await s.flush()
        tokens = {
            "supervisor": await issue_token(s, boss.id),
            "specialist": await issue_token(s, specs[0]),
        }
        for who, secret in tokens.items():
            await s.execute(
                update(ApiToken)
                .where(ApiToken.prefix == secret[:TOKEN_PREFIX_LEN])
                .values(id=TOKEN_IDS[who])
            )
        await s.commit()
    sim = await start_simulator(clock)
    settings = Settings(
        data_dir=tmp_path,
        database_url=db_url,
        ami=[AmiServer(name="pbx1", host=sim.host, port=sim.port, secret=SecretStr("secret"))],
    )
    container = Container(settings=settings, clock=clock, engine=engine, sessions=sessions)
    service = wire(container, daily_jobs=False)
    store = service.recordings.service.store
    assert isinstance(store, LocalStore)
    recordings = [
        await add_recording(
            sessions,
            store,
            f"att-api-{i}",
            ended_at=SUNDAY_EVENING - timedelta(days=1, minutes=i),
            data=AUDIO,
            lead_id=leads[i],
            specialist_id=specs[i],
        )
        for i in (0, 1)
    ]
    server = TestServer(build_app(container, owns_engine=False), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        await service.engine.wait_connected()
        yield WiredApi(str(server.make_url("")).rstrip("/"), tokens, leads, recordings)
    finally:
        await server.close()
        await sim.stop()
