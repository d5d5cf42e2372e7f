"""The calendar's API: calling windows for anyone signed in, the distribution for supervisors,
on SQLite and PostgreSQL, with the time driven by a virtual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.web import create_app
from crm_sync.auth import issue_token
from crm_sync.models import Specialist
from schedules import http as schedules_http
from schedules.clock import VirtualClock
from schedules.config import DeskCalendar
from schedules.services import DeskService
from tests import schedules_rows as rows

SH = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 11)  # Wednesday


@dataclass
class Api:
    client: TestClient
    clock: VirtualClock
    tokens: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
async def api(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Api]:
    clock = VirtualClock(datetime(2026, 3, 11, 8, 30, tzinfo=SH))
    async with sessions() as s:
        a, _ = await rows.specialists(s, 2)
        boss = Specialist(name="主管", seat="PJSIP/8999", role="supervisor")
        s.add(boss)
        await s.flush()
        tokens = {"a": await issue_token(s, a.id), "boss": await issue_token(s, boss.id)}
        for _ in range(5):
            await rows.policy_with_lead(s, DAY + timedelta(days=25), status="due", due_on=DAY)
        await s.commit()
    app = create_app(sessions, [schedules_http.routes])
    app[schedules_http.DESK_SERVICE] = DeskService(sessions, DeskCalendar(), clock)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, clock, tokens)


async def test_window_open_until_10_59_59_then_next_opening_at_15_30(api: Api) -> None:
    api.clock.set(datetime(2026, 3, 11, 10, 59, 59, tzinfo=SH))
    resp = await api.client.get("/api/calendar?slots=3", headers=api.as_("a"))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["open"] is True and body["closes_in_seconds"] == 1
    assert [s["local"] for s in body["slots"]] == [
        "Wed 2026-03-11 10:59–11:00",
        "Wed 2026-03-11 15:30–17:00",
        "Thu 2026-03-12 09:30–11:00",
    ]

    api.clock.set(datetime(2026, 3, 11, 11, 0, tzinfo=SH))
    body = await (await api.client.get("/api/calendar", headers=api.as_("a"))).json()
    assert body["open"] is False and body["closes_in_seconds"] is None
    assert datetime.fromisoformat(body["next_open"]) == datetime(2026, 3, 11, 15, 30, tzinfo=SH)
    assert len(body["slots"]) == 5


async def test_window_in_the_customers_zone(api: Api) -> None:
    api.clock.set(datetime(2026, 3, 11, 10, 0, tzinfo=SH))  # 03:00 in Berlin
    resp = await api.client.get("/api/calendar?tz=Europe/Berlin", headers=api.as_("a"))
    body = await resp.json()
    assert body["tz"] == "Europe/Berlin" and body["open"] is False
    when = datetime.fromisoformat(body["next_open"]).astimezone(ZoneInfo("Europe/Berlin"))
    assert (when.date(), when.hour, when.minute) == (DAY, 9, 30)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("kind=robocall", "invalid query: kind: Input should be 'renewal'"),
        ("tz=Mars/Olympus", "invalid query: tz: unknown time zone: an IANA name"),
        ("slots=0", "invalid query: slots: Input should be greater than or equal to 1"),
        ("slots=many", "invalid query: slots: Input should be a valid integer"),
    ],
)
async def test_calendar_refuses_bad_questions_with_a_reason(
    api: Api, query: str, reason: str
) -> None:
    resp = await api.client.get(f"/api/calendar?{query}", headers=api.as_("a"))
    assert resp.status == 400
    assert (await resp.json())["error"].startswith(reason)


async def test_calendar_needs_a_token(api: Api) -> None:
    assert (await api.client.get("/api/calendar")).status == 401


async def test_a_specialist_cannot_run_or_read_the_distribution(api: Api) -> None:
    assert (await api.client.post("/api/distribution", headers=api.as_("a"))).status == 403
    resp = await api.client.get(f"/api/distribution/{DAY}", headers=api.as_("a"))
    assert resp.status == 403


async def test_supervisor_runs_the_distribution_once_and_reads_the_recorded_run(api: Api) -> None:
    boss = api.as_("boss")
    dry = await (
        await api.client.post("/api/distribution", json={"dry_run": True}, headers=boss)
    ).json()
    assert dry["distribution"]["dry_run"] is True and dry["distribution"]["dealt"] == 5
    assert (await (await api.client.get(f"/api/distribution/{DAY}", headers=boss)).json())[
        "runs"
    ] == []

    resp = await api.client.post("/api/distribution", json={"seed": 7}, headers=boss)
    assert resp.status == 200, await resp.text()
    first = await resp.json()
    assert first["distribution"]["dealt"] == 5 and first["distribution"]["spread"] <= 1
    assert "timeline" in first
    again = await (await api.client.post("/api/distribution", headers=boss)).json()
    assert again["distribution"]["dealt"] == 0

    runs = (await (await api.client.get(f"/api/distribution/{DAY}", headers=boss)).json())["runs"]
    assert runs[0]["seed"] == 7 and runs[0]["dealt"] == 5
    assert sum(c["new"] for c in runs[0]["counts"].values()) == 5


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"date": "11/03/2026"}, "invalid body: date: Input should be a valid date"),
        ({"dry_run": "yes"}, "invalid body: dry_run: Input should be a valid boolean"),
        ({"force": "yes"}, "invalid body: force: Input should be a valid boolean"),
        ({"seed": "7"}, "invalid body: seed: Input should be a valid integer"),
        ([1, 2], "invalid body: Input should be an object"),
    ],
)
async def test_distribution_refuses_a_bad_request_and_writes_nothing(
    api: Api, body: object, reason: str
) -> None:
    boss = api.as_("boss")
    resp = await api.client.post("/api/distribution", json=body, headers=boss)
    assert resp.status == 400
    assert (await resp.json())["error"].startswith(reason)
    runs = (await (await api.client.get(f"/api/distribution/{DAY}", headers=boss)).json())["runs"]
    assert runs == []
