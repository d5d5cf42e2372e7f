"""Helpers for the seat page's tests (no tests here): the wired service on a VirtualClock with
the PBX simulator over TCP, specialists with web logins, a lead with a full customer record,
and headless Chromium from Debian driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.bootstrap import Container, build_app
from callcenter.pages.accounts import Accounts
from callcenter.service import Service, wire
from callcenter.settings import AmiServer, Settings
from crm_sync.auth import issue_token
from crm_sync.models import Customer, Lead, Phone, Policy, Specialist
from dialer.engine import DialerConfig
from schedules.clock import VirtualClock
from tests.chromium_support import SharedChromium
from tests.test_dialer_support import MONDAY_0930, seed, start_simulator

PASSWORDS = {"wangfang": "wang-fang-2026", "lina": "li-na-2026!", "boss": "boss-password-1"}
WRAP_UP_SECONDS = 30.0


@dataclass
class Site:
    client: TestClient
    service: Service
    clock: VirtualClock
    specialists: list[int]  # [王芳, 李娜]
    leads: list[int]  # [王芳's lead (answers, talks 56 s), 李娜's lead]
    boss_token: str
    url: str
    sim: Any = None  # the PbxSimulator

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.boss_token}"}


async def _seed(
    sessions: async_sessionmaker[AsyncSession], clock: VirtualClock
) -> tuple[list[int], list[int], str]:
    async with sessions() as s:
        specs, leads = await seed(
            s,
            specialists=2,
            leads=[("renewal", "7", 0), ("renewal", "0", 1)],
            today=date(2026, 1, 5),
        )
        first, second = await s.get(Specialist, specs[0]), await s.get(Specialist, specs[1])
        assert first is not None and second is not None
        first.name, second.name = "王芳", "李娜"
        lead = (await s.scalars(select(Lead).where(Lead.id == leads[0]))).one()
        policy = await s.get(Policy, lead.policy_id)
        assert policy is not None
        policy.plate_number = "沪A·12345"
        policy.make_model = "大众帕萨特 1.8T"
        policy.use_type = "家庭自用"
        policy.previous_policy_number = "PDAA2025310000123"
        customer = await s.get(Customer, policy.policyholder_id)
        assert customer is not None
        customer.name = "张伟明"
        s.add(
            Phone(
                customer_id=customer.id,
                raw="021-64001234",
                e164="+862164001234",
                kind="landline",
                accuracy="inaccurate",
            )
        )
        boss = Specialist(name="主管", seat="PJSIP/8999", role="supervisor")
        s.add(boss)
        await s.flush()
        token = await issue_token(s, boss.id)
        await s.commit()
    accounts = Accounts(sessions, clock)
    await accounts.add(specs[0], "wangfang", PASSWORDS["wangfang"])
    await accounts.add(specs[1], "lina", PASSWORDS["lina"])
    await accounts.add(boss.id, "boss", PASSWORDS["boss"])
    return specs, leads, token


@pytest.fixture(name="site")
async def site_fixture(
    db_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[Site]:
    clock = VirtualClock(MONDAY_0930)
    specs, leads, token = await _seed(sessions, clock)
    sim = await start_simulator(clock)
    settings = Settings(
        data_dir=tmp_path,
        database_url=db_url,
        ami=[AmiServer(name="pbx1", host=sim.host, port=sim.port, secret=SecretStr("secret"))],
    )
    container = Container(settings=settings, clock=clock, engine=engine, sessions=sessions)
    service = wire(
        container, daily_jobs=False, dialer_config=DialerConfig(wrap_up_seconds=WRAP_UP_SECONDS)
    )
    app = build_app(container, owns_engine=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await drive_until(clock, lambda: _connected(service))
        await service.dialer.start_campaign("renewal")
        url = str(client.make_url("")).rstrip("/")
        yield Site(client, service, clock, specs, leads, token, url, sim)
    await sim.stop()


async def _connected(service: Service) -> bool:
    return all(link["connected"] for link in service.engine.health())


async def drive_until(
    clock: VirtualClock,
    check: Callable[[], Awaitable[bool]],
    *,
    step: float = 0.25,
    limit_real: float = 30.0,
) -> None:
    """Move the virtual clock in small steps until `check` holds: the server side (ringing,
    talk time, wrap-up) moves only when the test says so. `check` is a real round trip (to the
    browser or the database), so the loop's network work runs in between."""
    deadline = time.monotonic() + limit_real
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached by virtual {clock.now().isoformat()}")
        await clock.advance(step)


async def sign_in(client: TestClient, username: str, password: str | None = None) -> str:
    """Sign in through the form as a browser does; returns the session's CSRF token."""
    page = await client.get("/login")
    html = await page.text()
    token = html.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    resp = await client.post(
        "/login",
        data={
            "username": username,
            "password": password or PASSWORDS[username],
            "csrf_token": token,
        },
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    seat = await client.get("/seat")
    body = await seat.text()
    return body.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


async def sign_in_browser(page: Any, username: str, path: str) -> None:
    """Sign in through the form from `/login?next=path` and wait for `path` itself.

    A glob such as "**/seat" also matches "/login?next=/seat", so waiting on it returns
    before the sign-in navigates; the URL's path is compared instead."""
    await page.goto(f"/login?next={path}")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORDS[username])
    await page.keyboard.press("Enter")
    await page.wait_for_url(lambda url: urlsplit(url).path == path)
    await page.wait_for_load_state("load")


@pytest.fixture(name="browser")
async def browser_fixture(chromium: SharedChromium) -> AsyncIterator[Any]:
    """The process's shared Chromium (tests/chromium_support.py), connected for this test:
    the contexts the test opens are its own, and close when it disconnects."""
    from playwright.async_api import async_playwright

    try:
        endpoint = chromium.endpoint()
    except RuntimeError as e:
        pytest.fail(str(e))
    async with async_playwright() as pw:
        b = await pw.chromium.connect_over_cdp(endpoint)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture(scope="session", name="artifacts")
def artifacts_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots of the main states, kept with the run's temporary files (or in
    $SEAT_PAGE_ARTIFACTS) for a person to look at."""
    where = os.environ.get("SEAT_PAGE_ARTIFACTS")
    path = Path(where) if where else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path
