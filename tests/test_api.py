"""The seat and supervisor API through the fully wired service: HTTP → services → dialer →
AMI over TCP → the PBX simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.service import Service
from crm_sync.auth import issue_token
from crm_sync.models import Lead, Specialist
from dialer.models import CallAttempt
from schedules.clock import VirtualClock
from tests.test_dialer_support import (
    MONDAY_0930,
    seed,
    start_simulator,
    wire_desk,
)
from tests.virtual_time import Driver


@dataclass
class Desk:
    client: TestClient
    service: Service
    drive: Driver
    specialists: list[int]
    leads: list[int]
    tokens: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
async def desk(
    db_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[Desk]:
    clock = VirtualClock(MONDAY_0930)
    async with sessions() as s:
        specs, leads = await seed(
            s, specialists=2, leads=[("renewal", "0", 0), ("renewal", "7", 1)]
        )
        boss = Specialist(name="主管", seat="PJSIP/8999", role="supervisor")
        s.add(boss)
        await s.flush()
        tokens = {
            "a": await issue_token(s, specs[0]),
            "b": await issue_token(s, specs[1]),
            "boss": await issue_token(s, boss.id),
        }
        await s.commit()
    sim = await start_simulator(clock)
    service, app = wire_desk(db_url, engine, sessions, tmp_path, clock, sim)
    async with TestClient(TestServer(app)) as client:
        await service.engine.wait_connected()
        yield Desk(client, service, Driver(clock, sessions), specs, leads, tokens)
    await sim.stop()


async def test_specialist_signs_in_gets_a_screen_pop_and_logs_the_result(desk: Desk) -> None:
    c, a = desk.client, desk.as_("a")
    resp = await c.post("/api/campaigns/renewal/start", headers=desk.as_("boss"))
    assert resp.status == 200, await resp.text()
    resp = await c.post("/api/seat/sign-in", json={"ready": True}, headers=a)
    assert resp.status == 200
    assert (await resp.json())["state"] in ("ready", "ringing", "on_call")

    async def answered_and_over() -> bool:
        r = await c.get("/api/seat", headers=a)
        return (await r.json())["state"] == "wrap_up"

    await desk.drive.until(answered_and_over)
    pop = await (await c.get("/api/seat/call", headers=a)).json()
    assert pop["lead"]["id"] == desk.leads[0]
    assert pop["attempt"]["outcome"] == "answered"
    assert pop["policy"]["policy_number"] and pop["customer"]["name"]

    # Another specialist may not touch this lead; the owner may.
    other = await c.post(
        f"/api/leads/{desk.leads[0]}/disposition", json={"result": "renewed"}, headers=desk.as_("b")
    )
    assert other.status == 404
    assert (await other.json())["error"] == f"no lead {desk.leads[0]}"
    mine = await c.post(
        f"/api/leads/{desk.leads[0]}/disposition", json={"result": "renewed"}, headers=a
    )
    assert mine.status == 200, await mine.text()
    async with desk.service.container.sessions() as s:
        lead = (await s.scalars(select(Lead).where(Lead.id == desk.leads[0]))).one()
    assert lead.contact_result == "renewed" and lead.status == "closed"


async def test_specialist_sees_only_their_own_leads(desk: Desk) -> None:
    mine = await (await desk.client.get("/api/leads", headers=desk.as_("a"))).json()
    assert [x["id"] for x in mine["items"]] == [desk.leads[0]]
    theirs = await desk.client.get(f"/api/leads/{desk.leads[1]}", headers=desk.as_("a"))
    assert theirs.status == 404
    everything = await (await desk.client.get("/api/leads", headers=desk.as_("boss"))).json()
    assert everything["total"] == 2


async def test_supervisor_views_are_refused_to_specialists(desk: Desk) -> None:
    for path in ("/api/calls", "/api/seats", "/api/campaigns"):
        refused = await desk.client.get(path, headers=desk.as_("a"))
        assert refused.status == 403, path
        assert "supervisor" in (await refused.json())["error"]
        allowed = await desk.client.get(path, headers=desk.as_("boss"))
        assert allowed.status == 200, path


async def test_bad_requests_get_a_reason(desk: Desk) -> None:
    a = desk.as_("a")
    no_reason = await desk.client.post("/api/seat/pause", json={}, headers=a)
    assert no_reason.status == 400 and "reason" in (await no_reason.json())["error"]
    naive = await desk.client.post(
        f"/api/leads/{desk.leads[0]}/disposition",
        json={"result": "callback", "callback_at": "2026-01-05T10:00"},
        headers=a,
    )
    assert naive.status == 400 and "zone" in (await naive.json())["error"]
    not_json = await desk.client.post("/api/seat/sign-in", data=b"{", headers=a)
    assert not_json.status == 400
    unknown = await desk.client.post(
        f"/api/leads/{desk.leads[0]}/disposition", json={"result": "teleported"}, headers=a
    )
    assert unknown.status == 400


async def test_every_route_is_in_the_openapi_document_and_needs_a_token(desk: Desk) -> None:
    doc = await (await desk.client.get("/api/openapi.json", headers=desk.as_("boss"))).json()
    for path in (
        "/api/seat/sign-in",
        "/api/leads/{lead_id}/disposition",
        "/api/calls",
        "/api/recordings",
    ):
        assert path in doc["paths"], path
    public = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if op["security"] == []:
                public.add(path)
                continue
            url = path.replace("{", "").replace("}", "")
            resp = await desk.client.request(method.upper(), url)
            assert resp.status == 401, (method, path)
    # Only the about page and the API's own description are open to anyone; `/` (a redirect
    # to the seat page) and the web pages are not part of the document.
    assert public == {"/about", "/api/openapi.json", "/api/docs", "/api/docs/{asset}"}
    assert "/" not in doc["paths"] and "/seat" not in doc["paths"]
    for path in ("/api/users", "/api/users/{who}/password", "/api/users/{who}/disable"):
        assert path in doc["paths"], path
    assert not [p for p in doc["paths"] if p.startswith(("/api/seat/pop", "/api/seat/events"))]


async def test_a_specialist_cannot_sign_in_at_another_device(desk: Desk) -> None:
    a = desk.as_("a")
    resp = await desk.client.post("/api/seat/sign-in", json={"seat": "PJSIP/8101"}, headers=a)
    assert resp.status == 403, await resp.text()
    assert "own seat" in (await resp.json())["error"]
    # A number through the trunk is not a seat at all: refused before anyone looks it up.
    for device in ("PJSIP/13800000000@carrier", "PJSIP/8100&PJSIP/8101", "SIP/8100"):
        resp = await desk.client.post("/api/seat/sign-in", json={"seat": device}, headers=a)
        assert resp.status == 400, device
        assert (await resp.json())["errors"][0]["field"] == "seat"
    assert (await desk.client.get("/api/seat", headers=a)).status == 409  # not signed in
    own = await desk.client.post("/api/seat/sign-in", json={"seat": "PJSIP/8100"}, headers=a)
    assert own.status == 200 and (await own.json())["seat"] == "PJSIP/8100"


async def test_a_supervisor_hangs_up_a_live_call_and_a_specialist_cannot(desk: Desk) -> None:
    c, a, boss = desk.client, desk.as_("a"), desk.as_("boss")
    await c.post("/api/campaigns/renewal/start", headers=boss)
    await c.post("/api/seat/sign-in", json={"ready": True}, headers=desk.as_("b"))  # a ~57 s call

    async def live() -> bool:
        calls = await (await c.get("/api/calls", headers=boss)).json()
        return any(x["state"] in ("answered", "bridged") for x in calls)

    await desk.drive.until(live)
    (call,) = await (await c.get("/api/calls", headers=boss)).json()
    url = f"/api/calls/{call['attempt_id']}/hangup"
    refused = await c.post(url, headers=a)
    assert refused.status == 403
    done = await c.post(url, headers=boss)
    assert done.status == 200, await done.text()

    async def over() -> bool:
        return await (await c.get("/api/calls", headers=boss)).json() == []

    await desk.drive.until(over)
    again = await c.post(url, headers=boss)
    assert again.status == 409 and "nothing was hung up" in (await again.json())["error"]
    async with desk.service.container.sessions() as s:
        attempt = await s.scalar(
            select(CallAttempt).where(CallAttempt.attempt_id == call["attempt_id"])
        )
    assert attempt is not None and attempt.outcome == "hung_up_by_action"
