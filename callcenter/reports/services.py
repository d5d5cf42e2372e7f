"""The desk's numbers (node 7's daily premium and performance, and the dialer's own report).

Reports read the rollup tables (`callcenter.reports.models`, written by
`callcenter.reports.rollup`), one row per day and group, after rolling up the stale days of
their period: a year of reports sums a few hundred thousand small rows instead of two
million attempts, and today is always current.

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
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from callcenter.reports.exceptions import SupervisorsOnly
from callcenter.reports.models import Grain, ReportDaily, ReportHourly, ReportResult
from callcenter.reports.rollup import Deadline, Period, refresh_day, stale_days
from common.clock import Clock
from common.errors import BadInput
from common.principal import Principal
from crm_sync.models import (
    Branch,
    ContactResult,
    Phone,
    Policy,
    Specialist,
)
from dialer.models import Campaign
from dialer.outcomes import ABANDONED, ANSWERED_OUTCOMES

log = logging.getLogger(__name__)

GROUPS = ("day", "week", "month", "specialist", "branch", "kind")
MAX_DAYS = 400


def check_period(start: date, end: date) -> Period:
    if end < start:
        raise BadInput("the period ends before it starts: swap start and end")
    if (end - start).days >= MAX_DAYS:
        raise BadInput(f"a report covers at most {MAX_DAYS} days; ask for a shorter period")
    return Period(start, end)


# -- reading ----------------------------------------------------------------------------------


def bucket(day: date, group: str) -> str:
    if group == "week":
        monday = day - timedelta(days=day.weekday())
        return monday.isoformat()
    if group == "month":
        return day.strftime("%Y-%m")
    return day.isoformat()


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


PERFORMANCE_SUMS = (
    "handed_out",
    "called",
    "reached",
    "attempts",
    "talk_seconds",
    "renewals",
    "premium",
    "points",
    "renewal_attempts",
)


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    row["premium"] = str(Decimal(row["premium"]).quantize(Decimal("0.01")))
    row["talk_seconds"] = round(float(row["talk_seconds"]), 1)
    row["renewal_rate"] = _ratio(row["renewals"], row["handed_out"])
    row["attempts_per_renewal"] = _ratio(row.pop("renewal_attempts"), row["renewals"])
    return row


def _own(query: Any, column: Any, who: Principal, specialist: int | None) -> Any:
    """Specialists see only their own figures; a supervisor may pick one specialist."""
    if not who.is_supervisor:
        return query.where(column == who.user_id)
    if specialist is not None:
        return query.where(column == specialist)
    return query


def grain_for(
    who: Principal, group: str, specialist: int | None, branch: int | None, kind: str | None
) -> str:
    """The coarsest rollup rows that answer the question."""
    by_specialist = not who.is_supervisor or specialist is not None or group == "specialist"
    by_branch_kind = branch is not None or kind is not None or group in ("branch", "kind")
    if by_specialist and by_branch_kind:
        return Grain.FULL
    return Grain.SPECIALIST if by_specialist else Grain.BRANCH_KIND


async def performance(
    session: AsyncSession,
    who: Principal,
    period: Period,
    group: str,
    specialist: int | None = None,
    branch: int | None = None,
    kind: str | None = None,
) -> list[dict[str, Any]]:
    """Per-specialist performance and the premium, grouped by one of GROUPS."""
    if group not in GROUPS:
        raise BadInput(f"group by one of {', '.join(GROUPS)}")
    dim = {
        "specialist": ReportDaily.specialist_id,
        "branch": ReportDaily.branch_id,
        "kind": ReportDaily.lead_kind,
    }.get(group, ReportDaily.day)
    q = (
        select(dim, *(func.sum(getattr(ReportDaily, c)) for c in PERFORMANCE_SUMS))
        .where(
            ReportDaily.grain == grain_for(who, group, specialist, branch, kind),
            ReportDaily.day >= period.start,
            ReportDaily.day <= period.end,
        )
        .group_by(dim)
    )
    q = _own(q, ReportDaily.specialist_id, who, specialist)
    if branch is not None:
        q = q.where(ReportDaily.branch_id == branch)
    if kind is not None:
        q = q.where(ReportDaily.lead_kind == kind)
    out: dict[Any, dict[str, Any]] = {}
    for key, *sums in await session.execute(q):
        name = bucket(key, group) if group in ("day", "week", "month") else key
        row = out.setdefault(name, {"key": name, **{c: 0 for c in PERFORMANCE_SUMS}})
        for c, v in zip(PERFORMANCE_SUMS, sums, strict=True):
            row[c] += v or 0
    rows = [_finish(r) for r in out.values()]
    names = await _names(session, group, [r["key"] for r in rows])
    for r in rows:
        r["label"] = names.get(r["key"], str(r["key"]) if r["key"] is not None else "—")
    rows.sort(key=lambda r: (r["key"] is None, str(r["key"])))
    if group == "specialist":
        rows.sort(key=lambda r: Decimal(r["premium"]), reverse=True)
    return rows


async def _names(session: AsyncSession, group: str, keys: Iterable[Any]) -> dict[Any, str]:
    ids = [k for k in keys if k is not None]
    if group == "specialist" and ids:
        rows = await session.execute(
            select(Specialist.id, Specialist.name).where(Specialist.id.in_(ids))
        )
        return {i: n for i, n in rows}
    if group == "branch" and ids:
        rows = await session.execute(select(Branch.id, Branch.name).where(Branch.id.in_(ids)))
        return {i: n for i, n in rows}
    return {}


async def contact_results(
    session: AsyncSession,
    who: Principal,
    period: Period,
    specialist: int | None = None,
) -> list[dict[str, Any]]:
    """Contact results set in the period, by kind of lead and result (标准联系结果)."""
    q = (
        select(ReportResult.lead_kind, ReportResult.result, func.sum(ReportResult.n))
        .where(ReportResult.day >= period.start, ReportResult.day <= period.end)
        .group_by(ReportResult.lead_kind, ReportResult.result)
    )
    q = _own(q, ReportResult.specialist_id, who, specialist)
    labels = dict((await session.execute(select(ContactResult.code, ContactResult.label_zh))).all())
    rows = [
        {"kind": k, "result": r, "label": labels.get(r, r), "count": int(n or 0)}
        for k, r, n in await session.execute(q)
    ]
    rows.sort(key=lambda r: (r["kind"], -r["count"], r["result"]))
    return rows


async def dialer_report(
    session: AsyncSession, period: Period, tz: ZoneInfo
) -> dict[str, list[dict[str, Any]]]:
    """The dialer's own report (supervisors): attempts by outcome and hour, answer rate by
    hour and weekday, abandon rate per campaign, first-call delay and late leads by day,
    inaccurate numbers by branch with how many came back corrected."""
    in_period = and_(ReportHourly.day >= period.start, ReportHourly.day <= period.end)
    by_hour_outcome = [
        {"hour": h, "outcome": o, "attempts": int(n)}
        for h, o, n in await session.execute(
            select(ReportHourly.hour, ReportHourly.outcome, func.sum(ReportHourly.n))
            .where(in_period)
            .group_by(ReportHourly.hour, ReportHourly.outcome)
            .order_by(ReportHourly.hour, ReportHourly.outcome)
        )
    ]
    answer_by: dict[str, list[dict[str, Any]]] = {}
    for name, col in (("hour", ReportHourly.hour), ("weekday", ReportHourly.weekday)):
        answer_by[name] = [
            {name: v, "attempts": int(n), "reached": int(r), "answer_rate": _ratio(r, n)}
            for v, n, r in await session.execute(
                select(col, func.sum(ReportHourly.n), func.sum(ReportHourly.reached))
                .where(in_period)
                .group_by(col)
                .order_by(col)
            )
        ]
    answered = sorted(str(o) for o in ANSWERED_OUTCOMES)
    campaigns = [
        {
            "campaign": name or kind,
            "kind": kind,
            "attempts": int(n),
            "answered": int(a or 0),
            "abandoned": int(ab or 0),
            "abandon_rate": _ratio(ab or 0, (a or 0) + (ab or 0)),
        }
        for name, kind, n, a, ab in await session.execute(
            select(
                Campaign.name,
                ReportHourly.campaign_kind,
                func.sum(ReportHourly.n),
                func.sum(ReportHourly.n).filter(ReportHourly.outcome.in_(answered)),
                func.sum(ReportHourly.n).filter(ReportHourly.outcome == str(ABANDONED)),
            )
            .outerjoin(Campaign, Campaign.id == ReportHourly.campaign_id)
            .where(in_period)
            .group_by(Campaign.name, ReportHourly.campaign_kind)
            .order_by(ReportHourly.campaign_kind, Campaign.name)
        )
    ]
    distribution = [
        {
            "day": d.isoformat(),
            "handed_out": int(h),
            "first_called": int(fc),
            "avg_first_call_minutes": round(s / fc / 60, 1) if fc else None,
            "late": int(late),
        }
        for d, h, fc, s, late in await session.execute(
            select(
                ReportDaily.day,
                func.sum(ReportDaily.handed_out),
                func.sum(ReportDaily.first_called),
                func.sum(ReportDaily.first_call_seconds),
                func.sum(ReportDaily.late),
            )
            .where(
                ReportDaily.grain == Grain.BRANCH_KIND,
                ReportDaily.day >= period.start,
                ReportDaily.day <= period.end,
            )
            .group_by(ReportDaily.day)
            .having(func.sum(ReportDaily.handed_out) > 0)
            .order_by(ReportDaily.day)
        )
    ]
    return {
        "attempts_by_hour": by_hour_outcome,
        "answer_rate_by_hour": answer_by["hour"],
        "answer_rate_by_weekday": answer_by["weekday"],
        "campaigns": campaigns,
        "distribution": distribution,
        "inaccurate_by_branch": await inaccurate_by_branch(session, period, tz),
    }


async def inaccurate_by_branch(
    session: AsyncSession, period: Period, tz: ZoneInfo
) -> list[dict[str, Any]]:
    """Numbers marked inaccurate (不准确) in the period, per branch of the policy, and how
    many of their customers have since had a corrected number sent back (node 8). Read live:
    a correction can come weeks later, and there are few such numbers."""
    start = datetime.combine(period.start, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(period.end + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    fixed = aliased(Phone)
    corrected = (
        select(fixed.id)
        .where(fixed.customer_id == Phone.customer_id, fixed.role == "corrected")
        .exists()
    )
    # A join, not a subquery per number: policies has no index on the policyholder, and a
    # hash join reads it once. A number counts once per branch of its customer's policies.
    rows = await session.execute(
        select(
            Branch.name,
            Policy.branch_id,
            func.count(Phone.id.distinct()),
            func.count(case((corrected, Phone.id)).distinct()),
        )
        .select_from(Phone)
        .outerjoin(Policy, Policy.policyholder_id == Phone.customer_id)
        .outerjoin(Branch, Branch.id == Policy.branch_id)
        .where(
            Phone.accuracy == "inaccurate",
            Phone.accuracy_set_at >= start,
            Phone.accuracy_set_at < end,
        )
        .group_by(Branch.name, Policy.branch_id)
        .order_by(Branch.name)
    )
    return [
        {
            "branch_id": b,
            "branch": name or "—",
            "inaccurate": int(n),
            "corrected": int(c or 0),
            "corrected_rate": _ratio(c or 0, n),
        }
        for name, b, n, c in rows
    ]


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
    "GROUPS",
    "Deadline",
    "Period",
    "ReportsService",
    "check_period",
    "contact_results",
    "dialer_report",
    "inaccurate_by_branch",
    "performance",
    "refresh_day",
    "stale_days",
]
