"""Rolling a day up into the reports' tables (`callcenter.reports.models`).

A day is rolled up (`refresh_day`) from that day's attempts (by `ended_at`, indexed), the
leads handed out that day, the contact results set that day and the day's sales. The daily
job rolls up the last week again; a report first rolls up any day of its period that is
missing, still open and rolled up more than a minute ago (rolled up before node 3's deadline
of its leads had passed: today, and yesterday until 17:00), or whose sales changed since it
was rolled up (`stale_days`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.reports.models import Grain, ReportDaily, ReportDay, ReportHourly, ReportResult
from crm_sync.models import Lead, Policy, SalesRecord
from dialer.models import CallAttempt
from dialer.outcomes import ANSWERED_OUTCOMES, automatic_reached, counts_as_call
from schedules.models import DistributionRun

ROLLUP_LOCK = 7016  # advisory lock class of the rollup (the day's ordinal is the key)
TODAY_FRESH = timedelta(seconds=60)  # an open day's rollup is rolled up again when older


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


Deadline = Callable[[date], datetime]
"""Node 3's deadline of the leads handed out on a day (`schedules.distribution.result_deadline`
over the desk's calendar: 17:00 of the next working day)."""


# -- rolling a day up ------------------------------------------------------------------------

Key = tuple[int | None, int | None, str]  # specialist, branch, kind of lead


def _daily_row() -> dict[str, Any]:
    return {
        "handed_out": 0,
        "called": 0,
        "reached": 0,
        "attempts": 0,
        "talk_seconds": 0.0,
        "renewals": 0,
        "premium": Decimal(0),
        "points": 0,
        "renewal_attempts": 0,
        "late": 0,
        "first_called": 0,
        "first_call_seconds": 0.0,
    }


async def refresh_day(
    session: AsyncSession,
    day: date,
    tz: ZoneInfo,
    deadline: Deadline,
    now: datetime,
) -> None:
    """Write `day`'s rollup rows again (the caller commits)."""
    if session.get_bind().dialect.name == "postgresql":
        # Two reports rolling the same day up at once: the second waits, then replaces the
        # first's rows (without the lock both would insert and the day would count twice).
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:k, :d)"), {"k": ROLLUP_LOCK, "d": day.toordinal()}
        )
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    daily: dict[Key, dict[str, Any]] = defaultdict(_daily_row)
    hourly: dict[tuple[int, int | None, str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    await _attempts(session, start, end, tz, daily, hourly)
    await _handed_out(session, day, start, deadline(day), daily)
    await _sales(session, day, daily)
    results = await _results(session, start, end)
    await _replace_rows(session, day, daily, results, hourly)
    await session.execute(delete(ReportDay).where(ReportDay.day == day))
    session.add(ReportDay(day=day, refreshed_at=now))
    await session.flush()


async def _replace_rows(
    session: AsyncSession,
    day: date,
    daily: dict[Key, dict[str, Any]],
    results: dict[tuple[int | None, int | None, str, str], int],
    hourly: dict[tuple[int, int | None, str, str], list[float]],
) -> None:
    """The day's rows in the three rollup tables, in place of what was there."""
    for table in (ReportDaily, ReportResult, ReportHourly):
        await session.execute(delete(table).where(table.day == day))
    if daily:
        await session.execute(
            insert(ReportDaily),
            [
                {
                    "day": day,
                    "grain": grain,
                    "specialist_id": k[0],
                    "branch_id": k[1],
                    "lead_kind": k[2],
                    **v,
                }
                for grain, rows in _grains(daily).items()
                for k, v in rows.items()
            ],
        )
    if results:
        await session.execute(
            insert(ReportResult),
            [
                {
                    "day": day,
                    "specialist_id": s,
                    "branch_id": b,
                    "lead_kind": k,
                    "result": r,
                    "n": n,
                }
                for (s, b, k, r), n in results.items()
            ],
        )
    if hourly:
        await session.execute(
            insert(ReportHourly),
            [
                {
                    "day": day,
                    "hour": h,
                    "weekday": day.weekday(),
                    "campaign_id": c,
                    "campaign_kind": ck,
                    "outcome": o,
                    "n": int(v[0]),
                    "reached": int(v[1]),
                    "talk_seconds": v[2],
                }
                for (h, c, ck, o), v in hourly.items()
            ],
        )


def _grains(daily: dict[Key, dict[str, Any]]) -> dict[str, dict[Key, dict[str, Any]]]:
    """The day's full rows, and the same summed per specialist and per branch and kind."""
    spec: dict[Key, dict[str, Any]] = defaultdict(_daily_row)
    branch_kind: dict[Key, dict[str, Any]] = defaultdict(_daily_row)
    for (s, b, k), row in daily.items():
        for target in (spec[(s, None, "*")], branch_kind[(None, b, k)]):
            for name, value in row.items():
                target[name] += value
    return {Grain.FULL: daily, Grain.SPECIALIST: spec, Grain.BRANCH_KIND: branch_kind}


async def _attempts(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    daily: dict[Key, dict[str, Any]],
    hourly: dict[tuple[int, int | None, str, str], list[float]],
) -> None:
    rows = await session.execute(
        select(
            CallAttempt.lead_id,
            CallAttempt.specialist_id,
            CallAttempt.campaign_id,
            CallAttempt.campaign_kind,
            CallAttempt.outcome,
            CallAttempt.mode,
            CallAttempt.key_pressed,
            CallAttempt.created_at,
            CallAttempt.talk_seconds,
            Lead.kind,
            Policy.branch_id,
        )
        .join(Lead, Lead.id == CallAttempt.lead_id)
        .join(Policy, Policy.id == Lead.policy_id)
        .where(CallAttempt.ended_at >= start, CallAttempt.ended_at < end)
    )
    called: dict[Key, set[int]] = defaultdict(set)
    reached: dict[Key, set[int]] = defaultdict(set)
    for lead_id, spec, camp, ckind, outcome, mode, key, created, talk, kind, branch in rows:
        outcome = outcome or "unknown"
        if not counts_as_call(outcome):
            continue
        ok = outcome in ANSWERED_OUTCOMES and automatic_reached(mode, key)
        bucket = hourly[(created.astimezone(tz).hour, camp, ckind, outcome)]
        bucket[0] += 1
        bucket[1] += 1 if ok else 0
        bucket[2] += talk or 0.0
        k: Key = (spec, branch, kind)
        row = daily[k]
        row["attempts"] += 1
        row["talk_seconds"] += talk or 0.0
        called[k].add(lead_id)
        if ok:
            reached[k].add(lead_id)
    for k, leads in called.items():
        daily[k]["called"] += len(leads)
    for k, leads in reached.items():
        daily[k]["reached"] += len(leads)


async def _handed_out(
    session: AsyncSession,
    day: date,
    day_start: datetime,
    deadline: datetime,
    daily: dict[Key, dict[str, Any]],
) -> None:
    dealt = await session.scalar(
        select(func.min(DistributionRun.started_at)).where(DistributionRun.day == day)
    )
    dealt_at = dealt or day_start
    first = (
        select(
            CallAttempt.lead_id.label("lead_id"),
            func.min(CallAttempt.created_at).label("first_call"),
            func.min(CallAttempt.ended_at)
            .filter(CallAttempt.contact_result.is_not(None))
            .label("first_result"),
        )
        .join(Lead, Lead.id == CallAttempt.lead_id)
        .where(Lead.distributed_on == day)
        .group_by(CallAttempt.lead_id)
        .subquery()
    )
    rows = await session.execute(
        select(
            Lead.owner_id,
            Policy.branch_id,
            Lead.kind,
            Lead.contact_result_at,
            first.c.first_call,
            first.c.first_result,
        )
        .join(Policy, Policy.id == Lead.policy_id)
        .outerjoin(first, first.c.lead_id == Lead.id)
        .where(Lead.distributed_on == day)
    )
    for owner, branch, kind, result_at, first_call, first_result in rows:
        row = daily[(owner, branch, kind)]
        row["handed_out"] += 1
        # A result the lead got by the deadline, on an attempt or on the lead itself (the
        # lead keeps only its latest result time, the attempts keep the earlier ones).
        on_time = (first_result is not None and _aware(first_result) <= deadline) or (
            result_at is not None and result_at <= deadline
        )
        if not on_time:
            row["late"] += 1
        if first_call is not None:
            row["first_called"] += 1
            row["first_call_seconds"] += max(0.0, (_aware(first_call) - dealt_at).total_seconds())


def _aware(value: datetime) -> datetime:
    # An aggregate (min) comes back without the column's type on SQLite: naive UTC text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def _sales(session: AsyncSession, day: date, daily: dict[Key, dict[str, Any]]) -> None:
    rows = await session.execute(
        select(
            SalesRecord.specialist_id,
            Policy.branch_id,
            Lead.kind,
            SalesRecord.premium,
            SalesRecord.points,
            SalesRecord.attempts,
        )
        .join(Lead, Lead.id == SalesRecord.lead_id)
        .join(Policy, Policy.id == Lead.policy_id)
        .where(SalesRecord.sold_on == day)
    )
    for spec, branch, kind, premium, points, attempts in rows:
        row = daily[(spec, branch, kind)]
        row["renewals"] += 1
        row["premium"] += premium
        row["points"] += points
        row["renewal_attempts"] += attempts


async def _results(
    session: AsyncSession, start: datetime, end: datetime
) -> dict[tuple[int | None, int | None, str, str], int]:
    rows = await session.execute(
        select(Lead.owner_id, Policy.branch_id, Lead.kind, Lead.contact_result, func.count())
        .join(Policy, Policy.id == Lead.policy_id)
        .where(
            Lead.contact_result_at >= start,
            Lead.contact_result_at < end,
            Lead.contact_result.is_not(None),
        )
        .group_by(Lead.owner_id, Policy.branch_id, Lead.kind, Lead.contact_result)
    )
    return {(s, b, k, r or ""): int(n) for s, b, k, r, n in rows}


async def stale_days(
    session: AsyncSession,
    period: Period,
    now: datetime,
    tz: ZoneInfo,
    deadline: Deadline,
) -> list[date]:
    """The days of the period to roll up before reading: missing, rolled up before their
    deadline had passed (and more than a minute ago), or with a sale changed since."""
    today = now.astimezone(tz).date()
    last = min(period.end, today)
    if last < period.start:
        return []
    done = dict(
        (
            await session.execute(
                select(ReportDay.day, ReportDay.refreshed_at).where(
                    ReportDay.day >= period.start, ReportDay.day <= last
                )
            )
        ).all()
    )
    changed = set(
        (
            await session.scalars(
                select(SalesRecord.sold_on)
                .join(ReportDay, ReportDay.day == SalesRecord.sold_on)
                .where(
                    SalesRecord.sold_on >= period.start,
                    SalesRecord.sold_on <= last,
                    SalesRecord.updated_at > ReportDay.refreshed_at,
                )
                .distinct()
            )
        ).all()
    )
    stale = []
    for day in Period(period.start, last).days():
        at = done.get(day)
        if (
            at is None
            or day in changed
            # still open (its leads' deadline had not passed): at most a minute old
            or (at < deadline(day) and now - at > TODAY_FRESH)
        ):
            stale.append(day)
    return stale


__all__ = ["Deadline", "Period", "refresh_day", "stale_days"]
