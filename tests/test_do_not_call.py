"""The do-not-call list through the API: a number blocked in any written form is stored in
the E.164 form the dialler compares, so it is never dialled (a real call attempt over the PBX
simulator proves it); what is not a phone number is refused with a reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.service import Service
from crm_sync.auth import issue_token
from crm_sync.models import Lead, Phone, Policy, Specialist
from dialer.models import CallAttempt, DoNotCall
from dialer.queues import not_callable_reason
from schedules.clock import VirtualClock
from tests.test_dialer_support import (
    MONDAY_0930,
    number_for,
    seed,
    spy_originates,
    start_simulator,
    wire_desk,
)
from tests.virtual_time import Driver

# Leads 0-2 are blocked, each written another way; lead 3 expires last, so the queue would
# reach every blocked lead before it.
WRITTEN = [
    "+86 139-0000-0000",  # number_for(0, "0") = +8613900000000
    "139 0000 0010",  # national, with spaces
    "＋８６１３９００００００２０",  # full-width, as an IME types it
]


@dataclass
class Desk:
    client: TestClient
    service: Service
    clock: VirtualClock
    specialist: int
    leads: list[int]
    boss: dict[str, str]
    agent: dict[str, str]


@pytest.fixture
async def desk(
    db_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[Desk]:
    clock = VirtualClock(MONDAY_0930 + timedelta(minutes=30))
    async with sessions() as s:
        specs, leads = await seed(s, specialists=1, leads=[("renewal", "0", 0)] * 4)
        last = await s.get(Lead, leads[3])
        assert last is not None
        policy = await s.get(Policy, last.policy_id)
        assert policy is not None
        policy.expiry_date += timedelta(days=5)
        boss = Specialist(name="主管", seat="PJSIP/8999", role="supervisor")
        s.add(boss)
        await s.flush()
        tokens = {"boss": await issue_token(s, boss.id), "a": await issue_token(s, specs[0])}
        await s.commit()
    sim = await start_simulator(clock)
    service, app = wire_desk(db_url, engine, sessions, tmp_path, clock, sim)
    async with TestClient(TestServer(app)) as client:
        await service.engine.wait_connected()
        yield Desk(
            client,
            service,
            clock,
            specs[0],
            leads,
            {"Authorization": f"Bearer {tokens['boss']}"},
            {"Authorization": f"Bearer {tokens['a']}"},
        )
    await sim.stop()


async def test_a_number_blocked_in_any_written_form_is_never_dialled(
    desk: Desk, sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    c = desk.client
    for written in WRITTEN:
        resp = await c.post("/api/do-not-call", json={"number": written}, headers=desk.boss)
        assert resp.status == 201, await resp.text()
    async with sessions() as s:
        stored = set((await s.scalars(select(DoNotCall.number))).all())
    assert stored == {number_for(i, "0") for i in range(3)}

    with spy_originates(monkeypatch, desk.clock) as spy:
        assert (await c.post("/api/campaigns/renewal/start", headers=desk.boss)).status == 200
        resp = await c.post("/api/seat/sign-in", json={"ready": True}, headers=desk.agent)
        assert resp.status == 200, await resp.text()
        await Driver(desk.clock, sessions).until(lambda: bool(spy.per_lead))
    assert set(spy.per_lead) == {desk.leads[3]}
    async with sessions() as s:
        attempts = (await s.scalars(select(CallAttempt))).all()
    assert [a.lead_id for a in attempts] == [desk.leads[3]]
    assert attempts[0].number == number_for(3, "0")


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("+abc", "not a phone number"),
        ("+86 138 0013 800", "no such number range"),
        ("+" + "1" * 10_000, "longer than"),
        ("+8613800138000/+8613900139000", "one number"),
        ("   ", "empty"),
    ],
)
async def test_what_is_not_a_phone_number_is_refused_and_nothing_is_stored(
    desk: Desk, sessions: async_sessionmaker[AsyncSession], written: str, why: str
) -> None:
    resp = await desk.client.post("/api/do-not-call", json={"number": written}, headers=desk.boss)
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    error = body["error"]
    assert why in error and "e.g. +8613800138000" in error
    # The service's refusal has the API's common shape: the field is named.
    assert [(p["where"], p["field"]) for p in body["errors"]] == [("body", "number")]
    async with sessions() as s:
        assert (await s.scalars(select(DoNotCall))).all() == []


async def test_a_number_is_unblocked_in_any_written_form(
    desk: Desk, sessions: async_sessionmaker[AsyncSession]
) -> None:
    c = desk.client
    resp = await c.post("/api/do-not-call", json={"number": "138 0013 8000"}, headers=desk.boss)
    assert (await resp.json())["number"] == "+8613800138000"
    resp = await c.delete("/api/do-not-call/+86%20138-0013-8000", headers=desk.boss)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["number"] == "+8613800138000"
    async with sessions() as s:
        assert (await s.scalars(select(DoNotCall))).all() == []


async def test_a_claimed_call_is_stopped_if_its_number_was_barred_or_its_lead_closed_since(
    session: AsyncSession,
) -> None:
    """The last look before the Originate (`dialer.queues.not_callable_reason`, one round
    trip): a closed lead is named first, then a number put on do-not-call."""
    _, [lead_id] = await seed(session, specialists=1, leads=[("renewal", "0", 0)])
    number = number_for(0, "0")
    assert await not_callable_reason(session, lead_id, number) is None
    phone = await session.scalar(select(Phone).where(Phone.e164 == number))
    assert phone is not None
    phone.do_not_call = True
    await session.commit()
    assert "do-not-call" in (await not_callable_reason(session, lead_id, number) or "")
    assert await not_callable_reason(session, lead_id, number_for(1, "0")) is None
    lead = await session.get(Lead, lead_id)
    assert lead is not None
    lead.status = "closed"
    await session.commit()
    assert "lead closed" in (await not_callable_reason(session, lead_id, number) or "")
