"""The desk's numbers (node 7's daily premium and performance, and the dialer's own report).

Reports read the rollup tables (`callcenter.reports.models`, written by
`callcenter.reports.rollup`), one row per day and group, after rolling up the stale days of
their period: a year of reports sums a few hundred thousand small rows instead of two
million attempts, and today is always current.

The queries: `performance.py` (the figures below, and the contact results) and
`dialer_report.py` (the dialer's own report, the inaccurate numbers per branch).

Figures, per day and group:
* handed out: leads distributed that day (发放日期) to the specialist;
* called / reached: leads with a call / an answered call (an automatic call only with a menu
  key, `dialer.outcomes.automatic_reached`) that day; attempts: calls (`counts_as_call`);
* renewals, premium, points: the day's sales (`sales_records.sold_on`), as confirmed by the
  maintainer or else as recorded; renewal rate = renewals / handed out;
* talk time: seconds talked; attempts per renewal: the calls its lead took, averaged;
* late: leads handed out that day still without a contact result at node 3's deadline
  (17:00 of the next working day); first call: seconds from the day's distribution run to a
  lead's first call, averaged.
"""

from __future__ import annotations

import logging
import sys
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.reports.dialer_report import dialer_report
from callcenter.reports.exceptions import SupervisorsOnly
from callcenter.reports.performance import contact_results, performance
from callcenter.reports.rollup import Deadline, Period, refresh_day, stale_days
from common.clock import Clock
from common.errors import BadInput
from common.principal import Principal

log = logging.getLogger(__name__)

MAX_DAYS = 400


def check_period(start: date, end: date) -> Period:
    if end < start:
        raise BadInput("the period ends before it starts: swap start and end")
    if (end - start).days >= MAX_DAYS:
        raise BadInput(f"a report covers at most {MAX_DAYS} days; ask for a shorter period")
    return Period(start, end)


class ReportsService:
    """The reports over the database; every call rolls up the stale days of its period."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        tz: str,
        deadline: Deadline,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.tz = ZoneInfo(tz)
        self.deadline = deadline

    def today(self) -> date:
        return self.clock.now().astimezone(self.tz).date()

    async def refresh(self, period: Period, force: bool = False, progress: bool = False) -> int:
        """Roll up the period's stale days (every day with `force`); how many were. Each
        day is committed on its own, so a long refresh keeps what it has done."""
        now = self.clock.now()
        async with self.sessions() as s:
            days = (
                period.days() if force else await stale_days(s, period, now, self.tz, self.deadline)
            )
        for i, day in enumerate(days, start=1):
            async with self.sessions() as s:
                await refresh_day(s, day, self.tz, self.deadline, now)
                await s.commit()
            if progress:
                print(f"\rrolled up {i}/{len(days)}: {day}", end="", file=sys.stderr, flush=True)
        if progress and days:
            print(file=sys.stderr)
        if days:
            log.info("reports rolled up %d day(s) from %s", len(days), days[0])
        return len(days)

    async def daily_job(self, day: date) -> int:
        """The daily job: the last week rolled up again (late results and sales confirmed
        after the day change the figures of the days before)."""
        return await self.refresh(Period(day - timedelta(days=7), day), force=True)

    async def performance(
        self, who: Principal, period: Period, group: str, **filters: Any
    ) -> dict[str, Any]:
        await self.refresh(period)
        async with self.sessions() as s:
            rows = await performance(s, who, period, group, **filters)
            results = await contact_results(s, who, period, filters.get("specialist"))
        return {
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "group": group,
            "rows": rows,
            "contact_results": results,
        }

    async def dialer(self, who: Principal, period: Period) -> dict[str, Any]:
        if not who.is_supervisor:
            raise SupervisorsOnly("the dialer's report is for supervisors and the maintainer")
        await self.refresh(period)
        async with self.sessions() as s:
            data = await dialer_report(s, period, self.tz)
        return {"start": period.start.isoformat(), "end": period.end.isoformat(), **data}

    async def page(self, who: Principal, period: Period, group: str) -> dict[str, Any]:
        """Everything the reports page shows, rolled up once and read in one session: the
        chosen rows, the contact results, the rows by day and by specialist for the charts,
        and the dialer's report for supervisors."""
        await self.refresh(period)
        async with self.sessions() as s:
            rows = await performance(s, who, period, group)
            by_day = rows if group == "day" else await performance(s, who, period, "day")
            ranking = (
                rows if group == "specialist" else await performance(s, who, period, "specialist")
            )
            out = {
                "report": {
                    "start": period.start.isoformat(),
                    "end": period.end.isoformat(),
                    "group": group,
                    "rows": rows,
                    "contact_results": await contact_results(s, who, period),
                },
                "by_day": by_day,
                "ranking": ranking,
                "dialer": await dialer_report(s, period, self.tz) if who.is_supervisor else None,
            }
        return out


__all__ = [
    "Deadline",
    "Period",
    "ReportsService",
    "check_period",
    "refresh_day",
    "stale_days",
]
