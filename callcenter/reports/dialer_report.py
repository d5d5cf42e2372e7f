"""The dialer's own report (supervisors), read from the hourly and daily rollups, and the
inaccurate numbers per branch (read live).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from callcenter.reports.models import Grain, ReportDaily, ReportHourly
from callcenter.reports.performance import ratio
from callcenter.reports.rollup import Period
from crm_sync.models import Branch, Phone, Policy
from dialer.models import Campaign
from dialer.outcomes import ABANDONED, ANSWERED_OUTCOMES


async def dialer_report(
    session: AsyncSession, period: Period, tz: ZoneInfo
) -> dict[str, list[dict[str, Any]]]:
    """The dialer's own report (supervisors): attempts by outcome and hour, answer rate by
    hour and weekday, abandon rate per campaign, first-call delay and late leads by day,
    inaccurate numbers by branch with how many came back corrected."""
    in_period = and_(ReportHourly.day >= period.start, ReportHourly.day <= period.end)
    return {
        "attempts_by_hour": await _attempts_by_hour(session, in_period),
        "answer_rate_by_hour": await _answer_rate(session, in_period, "hour", ReportHourly.hour),
        "answer_rate_by_weekday": await _answer_rate(
            session, in_period, "weekday", ReportHourly.weekday
        ),
        "campaigns": await _campaigns(session, in_period),
        "distribution": await _distribution(session, period),
        "inaccurate_by_branch": await inaccurate_by_branch(session, period, tz),
    }


async def _attempts_by_hour(session: AsyncSession, in_period: Any) -> list[dict[str, Any]]:
    return [
        {"hour": h, "outcome": o, "attempts": int(n)}
        for h, o, n in await session.execute(
            select(ReportHourly.hour, ReportHourly.outcome, func.sum(ReportHourly.n))
            .where(in_period)
            .group_by(ReportHourly.hour, ReportHourly.outcome)
            .order_by(ReportHourly.hour, ReportHourly.outcome)
        )
    ]


async def _answer_rate(
    session: AsyncSession, in_period: Any, name: str, col: Any
) -> list[dict[str, Any]]:
    return [
        {name: v, "attempts": int(n), "reached": int(r), "answer_rate": ratio(r, n)}
        for v, n, r in await session.execute(
            select(col, func.sum(ReportHourly.n), func.sum(ReportHourly.reached))
            .where(in_period)
            .group_by(col)
            .order_by(col)
        )
    ]


async def _campaigns(session: AsyncSession, in_period: Any) -> list[dict[str, Any]]:
    """Attempts, answered and abandoned calls per campaign, and the abandon rate."""
    answered = sorted(str(o) for o in ANSWERED_OUTCOMES)
    return [
        {
            "campaign": name or kind,
            "kind": kind,
            "attempts": int(n),
            "answered": int(a or 0),
            "abandoned": int(ab or 0),
            "abandon_rate": ratio(ab or 0, (a or 0) + (ab or 0)),
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


async def _distribution(session: AsyncSession, period: Period) -> list[dict[str, Any]]:
    """Per day with leads handed out: first calls, their average delay, late leads."""
    return [
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
            "corrected_rate": ratio(c or 0, n),
        }
        for name, b, n, c in rows
    ]
