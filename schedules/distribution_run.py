"""The daily distribution in the database (随机等额分配): who may receive leads, the deal, its
audit row.

A thin shell around the pure allocation of `schedules.distribution`: one transaction under the
distribution's advisory lock (`schedules.jobdb`); the bulk reads and writes are
`schedules.deal_writer`'s. `schedules.services.run_day` runs it after the timeline.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Lead, LeadStatus, Specialist
from schedules.config import DeskCalendar
from schedules.deal_writer import compact_owner_queue, fetch_due_ids, write_allocation
from schedules.distribution import (
    Allocation,
    allocate,
    new_seed,
    overdue_cutoff,
    result_deadline,
)
from schedules.jobdb import LOCK_DISTRIBUTION, advisory_lock
from schedules.models import DistributionRun
from schedules.ownership import instance as _instance
from schedules.windows import fmt_local

log = logging.getLogger(__name__)

BLOCKING_LISTED = 20  # blocking leads listed per specialist (the count is always complete)


@dataclass
class SpecialistShare:
    id: int
    name: str
    new: int
    total: int  # today's count, earlier runs included


@dataclass
class SkippedSpecialist:
    id: int
    name: str
    reason: str
    blocking_leads: list[int] = field(default_factory=list)  # the first few
    blocking_count: int = 0


@dataclass
class DistributionReport:
    day: date
    seed: int
    dry_run: bool
    due: int
    dealt: int
    overdue_cutoff: date  # leads handed out on or before this day must carry a result
    specialists: list[SpecialistShare] = field(default_factory=list)
    skipped: list[SkippedSpecialist] = field(default_factory=list)
    run_id: int | None = None

    @property
    def spread(self) -> int:
        totals = [s.total for s in self.specialists]
        return max(totals) - min(totals) if totals else 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["day"] = self.day.isoformat()
        d["overdue_cutoff"] = self.overdue_cutoff.isoformat()
        d["spread"] = self.spread
        return d

    def lines(self) -> list[str]:
        head = "DRY RUN: nothing written. " if self.dry_run else ""
        out = [
            f"{head}distribution {self.day}: {self.dealt} of {self.due} due leads dealt to "
            f"{len(self.specialists)} specialists (seed {self.seed}"
            + (f", run {self.run_id}" if self.run_id is not None else "")
            + f"); today's counts differ by {self.spread}",
        ]
        for s in self.specialists:
            out.append(f"  {s.name} (#{s.id}): +{s.new}, {s.total} today")
        for k in self.skipped:
            line = f"  skipped {k.name} (#{k.id}): {k.reason}"
            if k.blocking_count:
                shown = ", ".join(str(i) for i in k.blocking_leads)
                more = k.blocking_count - len(k.blocking_leads)
                line += f"; blocking leads: {shown}" + (f" and {more} more" if more > 0 else "")
            out.append(line)
        if self.due and not self.specialists:
            out.append("  no eligible specialist: the due leads wait for the next run")
        return out


async def _record_run(
    session: AsyncSession, report: DistributionReport, alloc: Allocation, now: datetime
) -> int:
    """The audit row: seed, counts, who was skipped and why, the whole allocation."""
    run = DistributionRun(
        day=report.day,
        started_at=now,
        finished_at=now,
        seed=report.seed,
        instance=_instance(),
        due_count=report.due,
        dealt_count=report.dealt,
        counts={str(s.id): {"new": s.new, "total": s.total} for s in report.specialists},
        skipped=[asdict(k) for k in report.skipped],
        allocation={str(k): v for k, v in alloc.by_specialist().items()},
    )
    session.add(run)
    await session.flush()
    return run.id


async def run_distribution(
    sessions: async_sessionmaker[AsyncSession],
    *,
    day: date,
    now: datetime,
    desk: DeskCalendar,
    seed: int | None = None,
    dry_run: bool = False,
) -> DistributionReport:
    """Deal the day's due leads to the eligible specialists (随机等额分配).

    Eligible: active, not on leave, and up to date (no lead handed out on a day whose result
    deadline has passed at `now` is still without a contact result). Idempotent: a second run
    on the same day deals only leads that became due since, on top of the earlier counts.
    """
    async with sessions() as session:
        report = await distribute_in(
            session, day=day, now=now, desk=desk, seed=seed, dry_run=dry_run
        )
        if not dry_run:
            await session.commit()
    return report


async def distribute_in(
    session: AsyncSession,
    *,
    day: date,
    now: datetime,
    desk: DeskCalendar,
    seed: int | None = None,
    dry_run: bool = False,
) -> DistributionReport:
    """`run_distribution` inside the caller's transaction (with `dry_run`, the deal is
    computed but not written; the caller rolls back)."""
    seed = new_seed() if seed is None else seed
    cutoff = overdue_cutoff(now, desk.calendar, desk.result_deadline, desk.tz)
    await advisory_lock(session, LOCK_DISTRIBUTION)
    names, candidates, skipped = await _candidates(session)
    blocked = await _not_up_to_date(session, candidates, names, cutoff, desk)
    skipped += blocked
    blocked_ids = {k.id for k in blocked}
    eligible = [s for s in candidates if s not in blocked_ids]
    already = await _dealt_on(session, day, eligible)
    if not dry_run:  # before the deal, so that its ~25,000 fresh rows are not rewritten
        await compact_owner_queue(session)
    due_ids = await fetch_due_ids(session, day, desk.distributed_kinds)
    alloc = allocate(due_ids, eligible, seed, already)
    del due_ids
    report = DistributionReport(
        day=day,
        seed=seed,
        dry_run=dry_run,
        due=len(alloc.lead_ids),
        dealt=len(alloc.owners),
        overdue_cutoff=cutoff,
        specialists=[SpecialistShare(s, names[s], alloc.new[s], alloc.totals[s]) for s in eligible],
        skipped=sorted(skipped, key=lambda k: k.id),
    )
    if dry_run:
        return report
    written = await write_allocation(session, alloc.lead_ids, alloc.owners, day, now)
    if written != len(alloc.owners):  # cannot happen under the lock; refuse a partial deal
        raise RuntimeError(
            f"distribution wrote {written} of {len(alloc.owners)} leads; rolled back"
        )
    report.run_id = await _record_run(session, report, alloc, now)
    log.info(
        "distribution %s: %d leads to %d specialists, %d skipped (seed %d)",
        day,
        report.dealt,
        len(report.specialists),
        len(report.skipped),
        seed,
    )
    return report


async def _candidates(
    session: AsyncSession,
) -> tuple[dict[int, str], list[int], list[SkippedSpecialist]]:
    """Every specialist's name, those active and not on leave, and the others with why."""
    specialists = (
        await session.execute(
            select(Specialist.id, Specialist.name, Specialist.active, Specialist.on_leave)
            .where(Specialist.role == "specialist")
            .order_by(Specialist.id)
        )
    ).all()
    names = {s.id: s.name for s in specialists}
    skipped: list[SkippedSpecialist] = []
    candidates: list[int] = []
    for s in specialists:
        if not s.active:
            skipped.append(SkippedSpecialist(s.id, s.name, "inactive"))
        elif s.on_leave:
            skipped.append(SkippedSpecialist(s.id, s.name, "on leave"))
        else:
            candidates.append(s.id)
    return names, candidates, skipped


async def _not_up_to_date(
    session: AsyncSession,
    candidates: list[int],
    names: dict[int, str],
    cutoff: date,
    desk: DeskCalendar,
) -> list[SkippedSpecialist]:
    """The candidates holding a lead handed out on or before `cutoff` without a contact
    result, each with the count and the first few such leads."""
    overdue = and_(
        Lead.owner_id.in_(candidates),
        Lead.distributed_on <= cutoff,
        Lead.contact_result.is_(None),
        Lead.status != LeadStatus.CLOSED.value,
    )
    blocked_counts: dict[int, int] = {
        owner: int(n)
        for owner, n in (
            await session.execute(
                select(Lead.owner_id, func.count()).where(overdue).group_by(Lead.owner_id)
            )
        ).all()
        if owner is not None
    }
    deadline = result_deadline(cutoff, desk.calendar, desk.result_deadline, desk.tz)
    skipped: list[SkippedSpecialist] = []
    for sid in sorted(blocked_counts):
        first = (
            await session.scalars(
                select(Lead.id)
                .where(overdue, Lead.owner_id == sid)
                .order_by(Lead.distributed_on, Lead.id)
                .limit(BLOCKING_LISTED)
            )
        ).all()
        skipped.append(
            SkippedSpecialist(
                sid,
                names[sid],
                f"not up to date: {blocked_counts[sid]} lead(s) handed out on or before "
                f"{cutoff} have no contact result (deadline {fmt_local(deadline, desk.tz)})",
                list(first),
                int(blocked_counts[sid]),
            )
        )
    return skipped


async def _dealt_on(session: AsyncSession, day: date, eligible: list[int]) -> dict[int, int]:
    """How many leads each eligible specialist was dealt on `day` by earlier runs."""
    return {
        owner: int(n)
        for owner, n in (
            await session.execute(
                select(Lead.owner_id, func.count())
                .where(Lead.distributed_on == day, Lead.owner_id.in_(eligible))
                .group_by(Lead.owner_id)
            )
        ).all()
        if owner is not None
    }
