"""Every report against the hand-computed small day of tests/reports_support.py, on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.reports.exceptions import SupervisorsOnly
from callcenter.reports.services import Period, ReportsService
from common.principal import Principal
from crm_sync.models import SalesRecord
from crm_sync.sales import SaleChanges, confirm_sale, record_sale
from schedules.clock import VirtualClock
from schedules.config import DeskCalendar
from schedules.distribution import result_deadline
from tests.reports_support import DAY, PREMIUM, SmallDay, at, make_small_day

ONE_DAY = Period(DAY, DAY)


def _deadline(day: date) -> datetime:
    desk = DeskCalendar()
    return result_deadline(day, desk.calendar, desk.result_deadline, desk.tz)


async def _service(
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[ReportsService, SmallDay, VirtualClock]:
    day = await make_small_day(sessions)
    async with sessions() as s:
        await record_sale(
            s,
            day.leads[0],
            Principal(day.a, "王芳", "specialist"),
            PREMIUM,
            "PDAA2026001",
            at(10, 3),
            "Asia/Shanghai",
        )
        await s.commit()
    clock = VirtualClock(at(18, 0, DAY + timedelta(days=1)))  # Tuesday 18:00: deadline passed
    return ReportsService(sessions, clock, "Asia/Shanghai", _deadline), day, clock


def _boss(day: SmallDay) -> Principal:
    return Principal(day.boss, "于丽", "maintainer")


async def test_performance_per_specialist_of_the_day(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service, day, _ = await _service(sessions)
    report = await service.performance(_boss(day), ONE_DAY, "specialist")
    rows = {r["key"]: r for r in report["rows"]}
    a, b = rows[day.a], rows[day.b]
    assert a["label"] == "王芳"
    assert (a["handed_out"], a["called"], a["reached"], a["attempts"]) == (2, 2, 2, 3)
    assert (a["talk_seconds"], a["renewals"], a["premium"], a["points"]) == (90.0, 1, "3000.00", 20)
    assert (a["renewal_rate"], a["attempts_per_renewal"]) == (0.5, 1.0)
    # the lead not sent (10:20) is not a call; the abandoned call reached nobody
    assert (b["handed_out"], b["called"], b["reached"], b["attempts"]) == (2, 2, 0, 2)
    assert (b["renewals"], b["premium"], b["renewal_rate"], b["attempts_per_renewal"]) == (
        0,
        "0.00",
        0.0,
        None,
    )
    assert [r["key"] for r in report["rows"]] == [day.a, day.b]  # ranked by premium
    assert {(r["kind"], r["result"]): r["count"] for r in report["contact_results"]} == {
        ("renewal", "renewed"): 1,
        ("renewal", "declined"): 1,
    }


@pytest.mark.parametrize(
    ("group", "key"),
    [("day", "2026-01-05"), ("week", "2026-01-05"), ("month", "2026-01"), ("kind", "renewal")],
)
async def test_performance_by_day_week_month_and_kind(
    sessions: async_sessionmaker[AsyncSession], group: str, key: str
) -> None:
    service, day, _ = await _service(sessions)
    rows = (await service.performance(_boss(day), Period(DAY, DAY + timedelta(days=1)), group))[
        "rows"
    ]
    row = next(r for r in rows if r["key"] == key)
    handed = 3 if group == "kind" else 4
    assert (row["handed_out"], row["renewals"], row["premium"]) == (handed, 1, "3000.00")


async def test_performance_by_branch(sessions: async_sessionmaker[AsyncSession]) -> None:
    service, day, _ = await _service(sessions)
    rows = (await service.performance(_boss(day), ONE_DAY, "branch"))["rows"]
    assert [(r["label"], r["handed_out"], r["attempts"], r["premium"]) for r in rows] == [
        ("一分公司", 4, 5, "3000.00")
    ]


async def test_a_specialist_sees_only_their_own_figures(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service, day, _ = await _service(sessions)
    own = await service.performance(
        Principal(day.b, "李娜", "specialist"), ONE_DAY, "specialist", specialist=day.a
    )
    assert [r["key"] for r in own["rows"]] == [day.b]
    assert own["contact_results"] == []
    with pytest.raises(SupervisorsOnly):
        await service.dialer(Principal(day.b, "李娜", "specialist"), ONE_DAY)


async def test_the_dialers_report_of_the_day(sessions: async_sessionmaker[AsyncSession]) -> None:
    service, day, _ = await _service(sessions)
    report = await service.dialer(_boss(day), ONE_DAY)
    assert {(r["hour"], r["outcome"]): r["attempts"] for r in report["attempts_by_hour"]} == {
        (10, "answered"): 1,
        (10, "no_answer"): 1,
        (10, "busy"): 1,
        (15, "answered"): 1,
        (16, "abandoned"): 1,
    }
    assert [
        (r["hour"], r["attempts"], r["reached"], r["answer_rate"])
        for r in report["answer_rate_by_hour"]
    ] == [(10, 3, 1, 0.3333), (15, 1, 1, 1.0), (16, 1, 0, 0.0)]
    assert [(r["weekday"], r["answer_rate"]) for r in report["answer_rate_by_weekday"]] == [
        (0, 0.4)
    ]
    assert [
        (c["campaign"], c["attempts"], c["answered"], c["abandoned"], c["abandon_rate"])
        for c in report["campaigns"]
    ] == [("续保外呼", 5, 2, 1, 0.3333)]
    # first calls 60, 65, 70 and 420 minutes after the 09:00 run; L2 and L3 without a result
    # at Tuesday 17:00
    assert report["distribution"] == [
        {
            "day": "2026-01-05",
            "handed_out": 4,
            "first_called": 4,
            "avg_first_call_minutes": 153.8,
            "late": 2,
        }
    ]
    assert [
        (r["branch"], r["inaccurate"], r["corrected"], r["corrected_rate"])
        for r in report["inaccurate_by_branch"]
    ] == [("一分公司", 2, 1, 0.5)]


async def test_a_confirmed_sale_changes_a_day_already_rolled_up(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service, day, clock = await _service(sessions)
    before = await service.performance(_boss(day), ONE_DAY, "day")
    await clock.advance(3600)
    async with sessions() as s:
        sale = (await s.scalars(select(SalesRecord))).one()
        await confirm_sale(
            s, sale.id, _boss(day), SaleChanges(premium=Decimal("4100"), red_star=True), clock.now()
        )
        await s.commit()
    after = await service.performance(_boss(day), ONE_DAY, "day")
    assert before["rows"][0]["premium"] == "3000.00"
    assert (after["rows"][0]["premium"], after["rows"][0]["points"]) == ("4100.00", 25)


async def test_a_day_rolled_up_before_its_deadline_is_rolled_up_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service, _day, _clock = await _service(sessions)
    assert await service.refresh(ONE_DAY) == 1
    assert await service.refresh(ONE_DAY) == 0  # after the deadline: final
    early = ReportsService(sessions, VirtualClock(at(12, 0)), "Asia/Shanghai", _deadline)
    assert await early.refresh(ONE_DAY, force=True) == 1
    assert await service.refresh(ONE_DAY) == 1  # rolled up at noon, before Tuesday 17:00


async def test_every_grain_of_the_rollup_gives_the_same_figures(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service, day, _ = await _service(sessions)
    boss = _boss(day)
    full = await service.performance(boss, ONE_DAY, "specialist", kind="renewal")  # full rows
    by_spec = await service.performance(boss, ONE_DAY, "specialist")  # per specialist
    by_kind = await service.performance(boss, ONE_DAY, "kind")  # per branch and kind
    assert [(r["key"], r["handed_out"], r["premium"]) for r in full["rows"]] == [
        (day.a, 2, "3000.00"),
        (day.b, 1, "0.00"),
    ]
    assert (
        sum(r["attempts"] for r in by_spec["rows"])
        == sum(r["attempts"] for r in by_kind["rows"])
        == 5
    )
    assert {r["key"]: r["handed_out"] for r in by_kind["rows"]} == {"lapsed": 1, "renewal": 3}
