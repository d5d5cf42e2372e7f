"""Schema-driven fuzzing: schemathesis reads the service's own OpenAPI document and throws
generated requests (valid and invalid) at every operation of the fully wired service, as a
supervisor and as a specialist, on SQLite and PostgreSQL. It passes only with no server
error (5xx), no undeclared status code and every response matching its declared schema.

The service listens on a loopback port in this test's event loop; schemathesis runs as a
separate process (its client is synchronous). The clock stands still on a Sunday evening, so
starting a campaign dials nobody: no route starts a side effect that outlives a request.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.bootstrap import Container, build_app
from callcenter.service import wire
from callcenter.settings import AmiServer, Settings
from crm_sync.auth import issue_token
from crm_sync.models import Specialist
from recordings.store import LocalStore
from schedules.clock import VirtualClock
from tests.test_dialer_support import seed, start_simulator
from tests.test_recordings_helpers import add_recording

# Sunday 2026-01-11, 20:00 in Asia/Shanghai: outside every calling window.
SUNDAY_EVENING = datetime(2026, 1, 11, 12, 0, tzinfo=UTC)
# Per operation; ~30 operations x 2 tokens. Raise locally (FUZZ_EXAMPLES=200) to dig deeper.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,negative_data_rejection"
)


@dataclass
class Target:
    url: str
    tokens: dict[str, str]


@pytest.fixture
async def target(
    db_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[Target]:
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
        await s.commit()
    sim = await start_simulator(clock)
    settings = Settings(
        data_dir=tmp_path,
        database_url=db_url,
        ami=[AmiServer(name="pbx1", host=sim.host, port=sim.port, secret=SecretStr("secret"))],
    )
    container = Container(settings=settings, clock=clock, engine=engine, sessions=sessions)
    service = wire(container, daily_jobs=False)
    # Recordings with small ids, so generated ids reach past the 404s.
    store = service.recordings.service.store
    assert isinstance(store, LocalStore)
    for i, (lead, owner) in enumerate(((leads[0], specs[0]), (leads[1], specs[1]))):
        await add_recording(
            sessions,
            store,
            f"att-fuzz-{i}",
            ended_at=SUNDAY_EVENING - timedelta(days=1, minutes=i),
            data=bytes(range(256)) * 8,
            lead_id=lead,
            specialist_id=owner,
        )
    server = TestServer(build_app(container, owns_engine=False), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        await service.engine.wait_connected()
        yield Target(str(server.make_url("")).rstrip("/"), tokens)
    finally:
        await server.close()
        await sim.stop()


async def _schemathesis(target: Target, who: str, tmp_path: Path) -> tuple[int, str]:
    st = Path(sys.executable).with_name("st")
    proc = await asyncio.create_subprocess_exec(
        str(st),
        "run",
        f"{target.url}/api/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        "20261206",
        "--workers",
        "1",
        "--phases",
        "examples,coverage,fuzzing",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "30",
        "--header",
        f"Authorization: Bearer {target.tokens[who]}",
        "--output-truncate",
        "true",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"},
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode("utf-8", "replace")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("who", ["supervisor", "specialist"])
async def test_fuzzing_the_api_finds_no_server_error_and_no_schema_violation(
    target: Target, who: str, tmp_path: Path
) -> None:
    code, out = await _schemathesis(target, who, tmp_path)
    print(out)
    assert code == 0, out[-12000:]
    assert "No issues found" in out or "0 failures" in out or "passed" in out, out[-4000:]
