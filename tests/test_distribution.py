from __future__ import annotations

import argparse
import asyncio
import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.commands.distribute import distribute
from callcenter.settings import Settings
from crm_sync.models import Lead
from schedules import deal_writer
from schedules.clock import VirtualClock
from schedules.config import DeskCalendar
from schedules.distribution_run import run_distribution
from schedules.models import DistributionRun
from tests import schedules_rows as rows

SH = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 11)  # Wednesday
NOW = datetime(2026, 3, 11, 8, 30, tzinfo=SH)


async def _due(session: AsyncSession, n: int) -> list[int]:
    out = []
    for _ in range(n):
        _, lead = await rows.policy_with_lead(
            session, DAY + timedelta(days=25), status="due", due_on=DAY
        )
        assert lead is not None
        out.append(lead.id)
    return out


async def _owners(session: AsyncSession) -> dict[int, int]:
    got = await session.execute(
        select(Lead.owner_id, Lead.id)
        .where(Lead.distributed_on == DAY)
        .execution_options(populate_existing=True)
    )
    counts: dict[int, int] = {}
    for owner, _ in got.all():
        counts[owner] = counts.get(owner, 0) + 1
    return counts


async def test_due_leads_are_dealt_evenly_and_the_deal_is_recorded(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    specs = await rows.specialists(session, 3)
    ids = await _due(session, 10)
    await session.commit()

    report = await run_distribution(sessions, day=DAY, now=NOW, desk=DeskCalendar(), seed=5)

    assert report.due == 10 and report.dealt == 10 and report.spread == 1
    assert sorted(s.new for s in report.specialists) == [3, 3, 4]
    leads = (
        await session.scalars(
            select(Lead).where(Lead.id.in_(ids)).execution_options(populate_existing=True)
        )
    ).all()
    assert {(lead.status, lead.distributed_on) for lead in leads} == {("assigned", DAY)}
    assert {lead.owner_id for lead in leads} == {s.id for s in specs}
    run = await session.get(DistributionRun, report.run_id)
    assert run is not None and run.seed == 5 and run.day == DAY and run.dealt_count == 10
    recorded = {int(k): v for k, v in run.allocation.items()}
    assert {lead.id: lead.owner_id for lead in leads} == {
        lead: owner for owner, ls in recorded.items() for lead in ls
    }


async def test_a_deal_written_in_several_chunks_is_written_whole(
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(deal_writer, "PG_CHUNK", 4)  # PostgreSQL writes the deal in id chunks
    await rows.specialists(session, 3)
    ids: list[int] = []
    for _ in range(5):
        ids += await _due(session, 2)
        await rows.policy_with_lead(session, DAY + timedelta(days=60))  # not due, in between
    await session.commit()

    report = await run_distribution(sessions, day=DAY, now=NOW, desk=DeskCalendar(), seed=9)

    assert report.dealt == 10 and report.spread <= 1
    got = await session.execute(
        select(Lead.id, Lead.owner_id)
        .where(Lead.distributed_on == DAY)
        .execution_options(populate_existing=True)
    )
    run = await session.get(DistributionRun, report.run_id)
    assert run is not None
    assert dict(got.all()) == {
        lead: int(owner) for owner, leads in run.allocation.items() for lead in leads
    }
    assert sorted(lead for leads in run.allocation.values() for lead in leads) == ids


async def test_second_run_same_day_deals_nothing_twice_and_new_leads_on_top(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await rows.specialists(session, 3)
    await _due(session, 7)
    await session.commit()
    desk = DeskCalendar()
    first = await run_distribution(sessions, day=DAY, now=NOW, desk=desk, seed=1)
    again = await run_distribution(sessions, day=DAY, now=NOW, desk=desk, seed=2)
    assert first.dealt == 7 and again.dealt == 0 and again.due == 0

    await _due(session, 5)
    await session.commit()
    third = await run_distribution(sessions, day=DAY, now=NOW, desk=desk, seed=3)
    assert third.dealt == 5
    assert third.spread <= 1 and sum(s.total for s in third.specialists) == 12
    assert sorted((await _owners(session)).values()) == [4, 4, 4]


async def test_specialists_on_leave_inactive_or_behind_get_nothing_and_are_explained(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ok, behind, fresh = await rows.specialists(session, 3)
    (away,) = await rows.specialists(session, 1, on_leave=True)
    (gone,) = await rows.specialists(session, 1, active=False)
    # Handed out Monday, deadline Tuesday 17:00, still no result on Wednesday: blocks.
    _, late = await rows.policy_with_lead(
        session,
        DAY + timedelta(days=20),
        status="assigned",
        owner_id=behind.id,
        distributed_on=date(2026, 3, 9),
    )
    # Handed out Tuesday: deadline today 17:00, not yet passed: does not block.
    await rows.policy_with_lead(
        session,
        DAY + timedelta(days=20),
        status="assigned",
        owner_id=fresh.id,
        distributed_on=date(2026, 3, 10),
    )
    # Monday's lead with a result: fine.
    await rows.policy_with_lead(
        session,
        DAY + timedelta(days=20),
        status="assigned",
        owner_id=ok.id,
        distributed_on=date(2026, 3, 9),
        contact_result="no_answer",
    )
    await _due(session, 6)
    await session.commit()

    report = await run_distribution(sessions, day=DAY, now=NOW, desk=DeskCalendar(), seed=9)

    assert {s.id: s.new for s in report.specialists} == {ok.id: 3, fresh.id: 3}
    why = {k.id: k for k in report.skipped}
    assert why[away.id].reason == "on leave"
    assert why[gone.id].reason == "inactive"
    assert why[behind.id].reason.startswith("not up to date")
    assert late is not None and why[behind.id].blocking_leads == [late.id]
    text = "\n".join(report.lines())
    assert f"blocking leads: {late.id}" in text and "on leave" in text


async def test_a_late_result_makes_the_specialist_eligible_again(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    (s,) = await rows.specialists(session, 1)
    _, late = await rows.policy_with_lead(
        session,
        DAY + timedelta(days=20),
        status="assigned",
        owner_id=s.id,
        distributed_on=date(2026, 3, 9),
    )
    await _due(session, 2)
    await session.commit()
    desk = DeskCalendar()
    assert (await run_distribution(sessions, day=DAY, now=NOW, desk=desk, seed=1)).dealt == 0
    assert late is not None
    late.contact_result = "declined"
    await session.commit()
    assert (await run_distribution(sessions, day=DAY, now=NOW, desk=desk, seed=1)).dealt == 2


async def test_dry_run_writes_nothing(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await rows.specialists(session, 2)
    await _due(session, 4)
    await session.commit()
    report = await run_distribution(
        sessions, day=DAY, now=NOW, desk=DeskCalendar(), seed=1, dry_run=True
    )
    assert report.dealt == 4 and report.run_id is None
    assert await _owners(session) == {}
    assert (await session.scalars(select(DistributionRun))).all() == []


async def test_concurrent_instances_never_deal_a_lead_twice(
    engine: AsyncEngine, session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs a single instance")
    await rows.specialists(session, 4)
    await _due(session, 40)
    await session.commit()
    desk = DeskCalendar()
    reports = await asyncio.gather(
        *(run_distribution(sessions, day=DAY, now=NOW, desk=desk, seed=i) for i in range(4))
    )
    assert sorted(r.dealt for r in reports) == [0, 0, 0, 40]
    assert sorted((await _owners(session)).values()) == [10, 10, 10, 10]


async def test_cli_prints_who_got_how_many_as_json(
    db_url: str, session: AsyncSession, capsys: pytest.CaptureFixture[str]
) -> None:
    await rows.specialists(session, 2)
    await _due(session, 3)
    await session.commit()
    args = argparse.Namespace(dry_run=False, json=True, seed=11, no_timeline=False, force=False)
    code = await distribute(
        args, Settings(database_url=db_url), DeskCalendar(), DAY, VirtualClock(NOW)
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["distribution"]["dealt"] == 3 and out["distribution"]["seed"] == 11
    assert sorted(s["new"] for s in out["distribution"]["specialists"]) == [1, 2]
    assert "timeline" in out


async def test_cli_dry_run_shows_what_the_timeline_would_make_due_and_writes_nothing(
    db_url: str, session: AsyncSession, capsys: pytest.CaptureFixture[str]
) -> None:
    await rows.specialists(session, 2)
    _, lead = await rows.policy_with_lead(session, DAY + timedelta(days=25))  # NEW, due today
    await session.commit()
    args = argparse.Namespace(dry_run=True, json=False, seed=11, no_timeline=False, force=False)
    settings = Settings(database_url=db_url)
    assert await distribute(args, settings, DeskCalendar(), DAY, VirtualClock(NOW)) == 0
    text = capsys.readouterr().out
    assert "DRY RUN" in text and "1 of 1 due leads dealt" in text
    assert "(would be) timeline" in text
    assert lead is not None
    got = await session.get(Lead, lead.id, populate_existing=True)
    assert got is not None and got.status == "new" and got.owner_id is None
