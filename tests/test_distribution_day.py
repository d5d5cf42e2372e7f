"""A distribution runs for today or a near day unless forced, and says what it would close
(leads taken back from specialists included) before it does: the service, the command line
and the supervisors' API, on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.commands.distribute import distribute
from callcenter.settings import Settings
from callcenter.web import create_app
from crm_sync.auth import issue_token
from crm_sync.models import Lead, Specialist
from schedules import http as schedules_http
from schedules.clock import VirtualClock
from schedules.config import DeskCalendar
from schedules.distribution import far_day_reason
from schedules.exceptions import DistributionDayRefused
from schedules.models import DistributionRun
from schedules.services import DeskService
from tests import schedules_rows as rows

SH = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 3, 11)  # Wednesday
NOW = datetime(2026, 3, 11, 8, 30, tzinfo=SH)
FAR = date(2026, 4, 30)  # 50 days on: the policies below would all have lapsed by then


@dataclass
class Desk:
    held: int  # a renewal lead a specialist works on; a far run would take it back
    waiting: int  # a new renewal lead; a far run would close it as lapsed
    owner: int


@pytest.fixture
async def desk(sessions: async_sessionmaker[AsyncSession]) -> Desk:
    async with sessions() as s:
        a, _ = await rows.specialists(s, 2)
        _, held = await rows.policy_with_lead(
            s,
            date(2026, 3, 20),
            status="assigned",
            owner_id=a.id,
            distributed_on=TODAY,
            due_on=TODAY,
        )
        _, waiting = await rows.policy_with_lead(s, date(2026, 4, 10))
        await s.commit()
        assert held is not None and waiting is not None
        return Desk(held.id, waiting.id, a.id)


async def _state(
    sessions: async_sessionmaker[AsyncSession], lead_id: int
) -> tuple[str, int | None]:
    async with sessions() as s:
        lead = await s.get(Lead, lead_id)
        assert lead is not None
        return lead.status, lead.owner_id


async def _written(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with sessions() as s:
        lapsed = await s.scalar(select(func.count()).where(Lead.kind == "lapsed")) or 0
        run_rows = await s.scalar(select(func.count()).select_from(DistributionRun)) or 0
    return lapsed, run_rows


def test_today_and_days_within_three_are_near_and_others_need_force() -> None:
    for away in (-3, -1, 0, 1, 3):
        assert far_day_reason(TODAY + timedelta(days=away), TODAY) is None
    later = far_day_reason(TODAY + timedelta(days=4), TODAY)
    assert later is not None and "4 days after today (2026-03-11)" in later
    earlier = far_day_reason(TODAY - timedelta(days=40), TODAY)
    assert earlier is not None and "40 days before today" in earlier and "--force" in earlier


async def test_a_far_day_is_refused_with_what_it_would_close_and_nothing_is_written(
    sessions: async_sessionmaker[AsyncSession], desk: Desk
) -> None:
    service = DeskService(sessions, DeskCalendar(), VirtualClock(NOW))
    with pytest.raises(DistributionDayRefused) as refused:
        await service.distribute(FAR)
    assert "50 days after today (2026-03-11)" in refused.value.reason
    preview = refused.value.preview.timeline
    assert preview is not None
    assert (preview.closed, preview.taken_back) == (2, 1)
    by_reason = {c.reason: c for c in preview.closings if c.count}
    took = by_reason["policy lapsed: continued as a lapsed lead"]
    assert took.leads == [desk.held] and took.taken_back == 1
    assert by_reason["policy lapsed before distribution (a lapsed lead follows)"].leads == [
        desk.waiting
    ]
    lines = "\n".join(preview.closing_lines(dry_run=True))
    assert "would close 2 leads (1 taken back from specialists)" in lines

    assert await _state(sessions, desk.held) == ("assigned", desk.owner)
    assert await _state(sessions, desk.waiting) == ("new", None)
    assert await _written(sessions) == (0, 0)


async def test_a_dry_run_of_a_far_day_shows_it_and_says_a_real_run_needs_force(
    sessions: async_sessionmaker[AsyncSession], desk: Desk
) -> None:
    service = DeskService(sessions, DeskCalendar(), VirtualClock(NOW))
    work = await service.distribute(FAR, dry_run=True)
    assert work.timeline is not None and work.timeline.taken_back == 1
    assert any(n.startswith("a real run needs force: ") for n in work.notes)
    assert await _state(sessions, desk.held) == ("assigned", desk.owner)
    assert await _written(sessions) == (0, 0)


async def test_a_forced_far_day_runs_and_reports_what_it_closed(
    sessions: async_sessionmaker[AsyncSession], desk: Desk
) -> None:
    service = DeskService(sessions, DeskCalendar(), VirtualClock(NOW))
    work = await service.distribute(FAR, force=True)
    assert work.timeline is not None and (work.timeline.closed, work.timeline.taken_back) == (2, 1)
    assert any(n.startswith("forced: ") for n in work.notes)
    assert (await _state(sessions, desk.held))[0] == "closed"
    assert (await _state(sessions, desk.waiting))[0] == "closed"
    assert await _written(sessions) == (2, 1)


async def test_a_near_day_needs_no_force(
    sessions: async_sessionmaker[AsyncSession], desk: Desk
) -> None:
    service = DeskService(sessions, DeskCalendar(), VirtualClock(NOW))
    work = await service.distribute(TODAY + timedelta(days=2))
    assert work.timeline is not None and work.timeline.closed == 0
    assert not any("force" in n for n in work.notes)
    assert (await _written(sessions))[1] == 1


# ------------------------------------------------------------------------- the command line


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = dict(
        dry_run=False, json=False, seed=3, no_timeline=False, force=False
    )
    base.update(kw)
    return argparse.Namespace(**base)


async def test_cli_refuses_a_far_day_with_the_would_close_report_and_force_runs_it(
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
    desk: Desk,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, cal, clock = Settings(database_url=db_url), DeskCalendar(), VirtualClock(NOW)
    assert await distribute(_args(), settings, cal, FAR, clock) == 2
    out = capsys.readouterr()
    assert "refused: 2026-04-30 is 50 days after today" in out.err and "--force" in out.err
    assert "would close 2 leads (1 taken back from specialists):" in out.out
    assert f"taken back from their specialist: leads {desk.held}" in out.out
    assert await _written(sessions) == (0, 0)

    assert await distribute(_args(dry_run=True), settings, cal, FAR, clock) == 0
    out = capsys.readouterr()
    assert "would close 2 leads" in out.out and "a real run needs force" in out.out
    assert await _written(sessions) == (0, 0)

    assert await distribute(_args(force=True), settings, cal, FAR, clock) == 0
    out = capsys.readouterr()
    assert "closed 2 leads (1 taken back from specialists):" in out.out
    assert await _written(sessions) == (2, 1)


# ------------------------------------------------------------------------- the API


@pytest.fixture
async def client(
    sessions: async_sessionmaker[AsyncSession], desk: Desk
) -> AsyncIterator[tuple[TestClient, dict[str, str]]]:
    async with sessions() as s:
        boss = Specialist(name="主管", seat="PJSIP/8999", role="supervisor")
        s.add(boss)
        await s.flush()
        headers = {"Authorization": f"Bearer {await issue_token(s, boss.id)}"}
        await s.commit()
    clock = VirtualClock(NOW)
    app = create_app(sessions, [schedules_http.routes], clock)
    app[schedules_http.DESK_SERVICE] = DeskService(sessions, DeskCalendar(), clock)
    async with TestClient(TestServer(app)) as c:
        yield c, headers


async def test_api_refuses_a_far_day_with_409_and_what_it_would_close_unless_forced(
    sessions: async_sessionmaker[AsyncSession],
    desk: Desk,
    client: tuple[TestClient, dict[str, str]],
) -> None:
    c, boss = client
    refused = await c.post("/api/distribution", json={"date": FAR.isoformat()}, headers=boss)
    assert refused.status == 409
    body = await refused.json()
    assert "50 days after today" in body["error"] and '"force": true' in body["error"]
    assert body["would"]["timeline"]["taken_back"] == 1
    assert body["would"]["distribution"]["dry_run"] is True
    assert await _written(sessions) == (0, 0)

    forced = await c.post(
        "/api/distribution", json={"date": FAR.isoformat(), "force": True}, headers=boss
    )
    assert forced.status == 200, await forced.text()
    assert (await forced.json())["timeline"]["closed"] == 2
    assert await _written(sessions) == (2, 1)

    bad = await c.post("/api/distribution", json={"force": "yes"}, headers=boss)
    assert bad.status == 400
