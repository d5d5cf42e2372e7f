"""The desk's performance figures (node 7), read from the daily rollup (`ReportDaily`,
`ReportResult`): per day, week, month, specialist, branch or kind of lead, and the contact
results. Which figures and how they are counted: `callcenter.reports.services`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.reports.models import Grain, ReportDaily, ReportResult
from callcenter.reports.rollup import Period
from common.errors import BadInput
from common.principal import Principal
from crm_sync.models import Branch, ContactResult, Specialist

GROUPS = ("day", "week", "month", "specialist", "branch", "kind")


def bucket(day: date, group: str) -> str:
    if group == "week":
        monday = day - timedelta(days=day.weekday())
        return monday.isoformat()
    if group == "month":
        return day.strftime("%Y-%m")
    return day.isoformat()


def ratio(a: float, b: float) -> float | None:
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
    row["renewal_rate"] = ratio(row["renewals"], row["handed_out"])
    row["attempts_per_renewal"] = ratio(row.pop("renewal_attempts"), row["renewals"])
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
