"""The daily timeline in the database: turn the stored leads into the day's work.

A thin shell around the pure rules of `schedules.timeline`: a handful of set-based UPDATE /
INSERT … SELECT statements in one transaction, under the timeline's advisory lock
(`schedules.jobdb`). In order: close the leads of renewed and lapsed policies, open the lapsed
leads, make leads due on their day, mark the lapsed leads handled centrally, and open the
post-underwriting callbacks. `schedules.services.run_day` runs it before the distribution.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, and_, exists, false, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import ColumnElement

from crm_sync.models import ContactResult, Lead, LeadStatus, Policy, UtcDateTime
from crm_sync.phones import lead_phone_sql
from schedules.config import DeskCalendar
from schedules.jobdb import LOCK_TIMELINE, advisory_lock, rowcount
from schedules.timeline import central_cutoff, latest_expiry_due

log = logging.getLogger(__name__)

CLOSINGS_LISTED = 20  # lead ids listed per closing reason (the counts are always complete)


@dataclass
class Closing:
    """Leads the timeline closed (or, in a dry run, would close) for one reason."""

    reason: str
    count: int = 0
    taken_back: int = 0  # of them, held by a specialist until now
    leads: list[int] = field(default_factory=list)  # the first few, held ones first

    def line(self) -> str:
        held = (
            f", {self.taken_back} of them taken back from their specialist"
            if self.taken_back
            else ""
        )
        more = self.count - len(self.leads)
        shown = ", ".join(str(i) for i in self.leads) + (f" and {more} more" if more > 0 else "")
        return f"  {self.count} {self.reason}{held}: leads {shown}"


@dataclass
class TimelineReport:
    day: date
    closed_renewed: int = 0  # open leads of policies already renewed, closed
    closed_expired: int = 0  # renewal/trial leads whose policy lapsed before distribution
    made_due: dict[str, int] = field(default_factory=dict)  # kind -> NEW -> DUE
    lapsed_created: int = 0
    renewal_closed_for_lapse: int = 0
    central_marked: int = 0
    callbacks_created: int = 0
    closings: list[Closing] = field(default_factory=list)

    @property
    def closed(self) -> int:
        return sum(c.count for c in self.closings)

    @property
    def taken_back(self) -> int:
        return sum(c.taken_back for c in self.closings)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["day"] = self.day.isoformat()
        d["closed"] = self.closed
        d["taken_back"] = self.taken_back
        return d

    def line(self) -> str:
        return (
            f"timeline {self.day}: due {self.made_due}, lapsed +{self.lapsed_created}, "
            f"central +{self.central_marked}, callbacks +{self.callbacks_created}, "
            f"closed (renewed) {self.closed_renewed}"
        )

    def closing_lines(self, dry_run: bool) -> list[str]:
        """What the run closes (or would), by reason, with the leads taken back."""
        verb = "would close" if dry_run else "closed"
        if not self.closed:
            return [f"{verb} no leads"]
        back = f" ({self.taken_back} taken back from specialists)" if self.taken_back else ""
        return [f"{verb} {self.closed} leads{back}:"] + [c.line() for c in self.closings if c.count]


async def _final_results(session: AsyncSession) -> list[str]:
    return list(
        (await session.scalars(select(ContactResult.code).where(ContactResult.final))).all()
    )


async def run_timeline(
    sessions: async_sessionmaker[AsyncSession], *, day: date, now: datetime, desk: DeskCalendar
) -> TimelineReport:
    """Turn the database into the day's work (idempotent; run before the distribution)."""
    async with sessions() as session, session.begin():
        return await timeline_in(session, day=day, now=now, desk=desk)


async def timeline_in(
    session: AsyncSession, *, day: date, now: datetime, desk: DeskCalendar
) -> TimelineReport:
    """`run_timeline` inside the caller's transaction."""
    report = TimelineReport(day)
    await advisory_lock(session, LOCK_TIMELINE)
    await _close_settled(session, report, day, now)
    await _open_lapsed(session, report, day, now, desk)
    await _make_due(session, report, day, now, desk)
    await _mark_central(session, report, now, desk)
    await _open_callbacks(session, report, day, now, desk)
    log.info("timeline %s: %s", day, report)
    return report


_OPEN_STATUS = [LeadStatus.NEW.value, LeadStatus.DUE.value]
# The columns of the leads the timeline opens (INSERT … SELECT), in the SELECTs' order.
_NEW_LEAD_KEYS = ("policy_id", "kind", "status", "phone_id", "due_on")
_NEW_LEAD_COUNTS = ("attempt_count", "central", "created_at", "updated_at")


async def _close_settled(
    session: AsyncSession, report: TimelineReport, day: date, now: datetime
) -> None:
    """Close the open leads of renewed policies, and the undistributed renewal and trial
    leads of policies that lapsed before they were handed out."""
    renewed = select(Policy.id).where(Policy.renewed)
    report.closed_renewed = await _close(
        session,
        report,
        now,
        "policy already renewed",
        Lead.status.in_(_OPEN_STATUS),
        Lead.policy_id.in_(renewed),
    )

    report.closed_expired = await _close(
        session,
        report,
        now,
        "policy lapsed before distribution (a lapsed lead follows)",
        Lead.kind.in_(["renewal", "trial"]),
        Lead.status.in_(_OPEN_STATUS),
        Lead.owner_id.is_(None),
        Lead.policy_id.in_(select(Policy.id).where(Policy.expiry_date < day)),
    )


async def _open_lapsed(
    session: AsyncSession, report: TimelineReport, day: date, now: datetime, desk: DeskCalendar
) -> None:
    """Lapsed: a policy the desk worked (it has a renewal lead not closed with a final
    result), past its expiry, not renewed, without a lapsed lead yet. Its renewal lead closes."""
    rules = desk.rules
    ts = literal(now, UtcDateTime())
    final = await _final_results(session)
    renewal = Lead.__table__.alias("renewal")
    lapsed_src = (
        select(
            Policy.id,
            literal("lapsed"),
            literal(LeadStatus.DUE.value),
            renewal.c.phone_id,
            literal(day, Date()),
            literal(0),
            false(),
            ts,
            ts,
        )
        .join(renewal, and_(renewal.c.policy_id == Policy.id, renewal.c.kind == "renewal"))
        .where(
            Policy.expiry_date <= latest_expiry_due("lapsed", day, rules),
            Policy.expiry_date >= day - timedelta(days=rules.lapsed_lookback_days),
            ~Policy.renewed,
            or_(renewal.c.contact_result.is_(None), renewal.c.contact_result.not_in(final)),
            ~exists().where(Lead.policy_id == Policy.id, Lead.kind == "lapsed"),
        )
    )
    cols = [*_NEW_LEAD_KEYS, *_NEW_LEAD_COUNTS]
    res = await session.execute(insert(Lead).from_select(cols, lapsed_src))
    report.lapsed_created = rowcount(res)
    lapsed_policies = select(Lead.policy_id).where(Lead.kind == "lapsed")
    report.renewal_closed_for_lapse = await _close(
        session,
        report,
        now,
        "policy lapsed: continued as a lapsed lead",
        Lead.kind == "renewal",
        Lead.status != LeadStatus.CLOSED.value,
        Lead.policy_id.in_(lapsed_policies),
        Lead.policy_id.in_(select(Policy.id).where(Policy.expiry_date < day)),
    )


async def _make_due(
    session: AsyncSession, report: TimelineReport, day: date, now: datetime, desk: DeskCalendar
) -> None:
    # NEW -> DUE on the lead's due date (set by the import, or from the policy's expiry).
    for kind in desk.distributed_kinds:
        latest = latest_expiry_due(kind, day, desk.rules)
        res = await session.execute(
            update(Lead)
            .where(
                Lead.kind == kind,
                Lead.status == LeadStatus.NEW.value,
                or_(
                    Lead.due_on <= day,
                    and_(
                        Lead.due_on.is_(None),
                        Lead.policy_id.in_(select(Policy.id).where(Policy.expiry_date <= latest)),
                    ),
                ),
            )
            .values(
                status=LeadStatus.DUE.value,
                due_on=func.coalesce(Lead.due_on, literal(day, Date())),
                updated_at=now,
            )
        )
        report.made_due[kind] = rowcount(res)

    # Imported post-underwriting callback lists are the automatic campaign's work from the
    # day of their import: the importer makes them due (crm_sync.import_choices.initial_status);
    # lists imported as `new` before that rule are made due here, or nobody would dial them.
    res = await session.execute(
        update(Lead)
        .where(
            Lead.kind == "callback",
            Lead.status == LeadStatus.NEW.value,
            or_(Lead.due_on.is_(None), Lead.due_on <= day),
        )
        .values(status=LeadStatus.DUE.value, updated_at=now)
    )
    report.made_due["callback"] = rowcount(res)


async def _mark_central(
    session: AsyncSession, report: TimelineReport, now: datetime, desk: DeskCalendar
) -> None:
    """Lapsed leads past the central cut-off (48 h) are handled centrally from now on."""
    res = await session.execute(
        update(Lead)
        .where(
            Lead.kind == "lapsed",
            ~Lead.central,
            Lead.status != LeadStatus.CLOSED.value,
            Lead.policy_id.in_(
                select(Policy.id).where(
                    Policy.expiry_date <= central_cutoff(now, desk.tz, desk.rules), ~Policy.renewed
                )
            ),
        )
        .values(central=True, updated_at=now)
    )
    report.central_marked = rowcount(res)


async def _open_callbacks(
    session: AsyncSession, report: TimelineReport, day: date, now: datetime, desk: DeskCalendar
) -> None:
    # Post-underwriting callback (承保回访): dialled from the next window, automatically.
    rules = desk.rules
    ts = literal(now, UtcDateTime())
    first_call = desk.hours("callback").next_open(now)
    best_phone = lead_phone_sql(Policy.id)
    callback_src = select(
        Policy.id,
        literal("callback"),
        literal(LeadStatus.SCHEDULED.value),
        best_phone,
        literal(day, Date()),
        literal(first_call, UtcDateTime()),
        literal(0),
        false(),
        ts,
        ts,
    ).where(
        Policy.underwritten_at.is_not(None),
        Policy.underwritten_at <= now,
        Policy.underwritten_at >= now - rules.callback_lookback,
        ~Policy.renewed,
        ~exists().where(Lead.policy_id == Policy.id, Lead.kind == "callback"),
    )
    cols = [*_NEW_LEAD_KEYS, "next_attempt_at", *_NEW_LEAD_COUNTS]
    res = await session.execute(insert(Lead).from_select(cols, callback_src))
    report.callbacks_created = rowcount(res)


async def _close(
    session: AsyncSession,
    report: TimelineReport,
    now: datetime,
    reason: str,
    *where: ColumnElement[bool],
) -> int:
    """Close the leads matching `where`; the report records how many, which, and how many a
    specialist held (so that a dry run can say what a run would take back)."""
    rows = (
        await session.execute(
            update(Lead)
            .where(*where)
            .values(status=LeadStatus.CLOSED.value, closed_reason=reason, updated_at=now)
            .returning(Lead.id, Lead.owner_id)
        )
    ).all()
    held = sorted(r.id for r in rows if r.owner_id is not None)
    others = sorted(r.id for r in rows if r.owner_id is None)
    report.closings.append(Closing(reason, len(rows), len(held), (held + others)[:CLOSINGS_LISTED]))
    return len(rows)
