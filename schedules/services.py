"""The calendar's database jobs: the daily timeline and the daily distribution.

Thin shells around the pure rules in `timeline`, `distribution` and `retry`. Each job is one
transaction, idempotent, and on PostgreSQL serialised across service instances by a
transaction-scoped advisory lock (SQLite runs a single instance).

Bulk work is set-based: the timeline is a handful of UPDATE / INSERT … SELECT statements; the
distribution fetches lead ids only, deals them in Python and writes them back with
`UPDATE … FROM unnest(ids, owners)` over id-ordered chunks on PostgreSQL (a temporary table
and one `UPDATE … FROM` on SQLite). On PostgreSQL that update is HOT (migration
`0010_owner_queue`: no index of `leads` uses the columns it writes); the owner trigger adds
the dealt leads to `owner_queue`, which the distribution compacts first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from sqlalchemy import (
    Date,
    and_,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import ColumnElement, bindparam

from common.clock import Clock
from crm_sync.mail import LapsedPolicy
from crm_sync.models import (
    CampaignKind,
    ContactResult,
    Customer,
    Lead,
    LeadStatus,
    Phone,
    Policy,
    Specialist,
    UtcDateTime,
)
from crm_sync.phones import lead_phone_sql
from schedules.config import DeskCalendar
from schedules.distribution import (
    Allocation,
    allocate,
    far_day_reason,
    new_seed,
    overdue_cutoff,
    result_deadline,
)
from schedules.exceptions import DistributionDayRefused
from schedules.models import DistributionRun
from schedules.ownership import instance as _instance
from schedules.timeline import central_cutoff, distribution_at, latest_expiry_due
from schedules.windows import fmt_local, zone

log = logging.getLogger(__name__)

# pg_advisory_xact_lock keys (int64), one per daily job.
LOCK_DISTRIBUTION = 0x43_43_44_49_53_54_31  # "CCDIST1"
LOCK_TIMELINE = 0x43_43_54_49_4D_45_31  # "CCTIME1"
BLOCKING_LISTED = 20  # blocking leads listed per specialist (the count is always complete)
PG_CHUNK = 20_000  # leads per UPDATE of the deal on PostgreSQL
SQLITE_CHUNK = 50_000
SQLITE_WRITE_CACHE_KIB = -65536  # negative: KiB, i.e. 64 MiB


async def _is_postgres(session: AsyncSession) -> bool:
    return (await session.connection()).dialect.name == "postgresql"


async def _advisory_lock(session: AsyncSession, key: int) -> None:
    """Serialise a daily job across instances until the transaction ends (PostgreSQL)."""
    if await _is_postgres(session):
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


# ---------------------------------------------------------------------------------------------
# The timeline
# ---------------------------------------------------------------------------------------------


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
    rules = desk.rules
    report = TimelineReport(day)
    ts = literal(now, UtcDateTime())
    await _advisory_lock(session, LOCK_TIMELINE)
    final = await _final_results(session)
    renewed = select(Policy.id).where(Policy.renewed)
    open_status = [LeadStatus.NEW.value, LeadStatus.DUE.value]

    report.closed_renewed = await _close(
        session,
        report,
        now,
        "policy already renewed",
        Lead.status.in_(open_status),
        Lead.policy_id.in_(renewed),
    )

    report.closed_expired = await _close(
        session,
        report,
        now,
        "policy lapsed before distribution (a lapsed lead follows)",
        Lead.kind.in_(["renewal", "trial"]),
        Lead.status.in_(open_status),
        Lead.owner_id.is_(None),
        Lead.policy_id.in_(select(Policy.id).where(Policy.expiry_date < day)),
    )

    # Lapsed: a policy the desk worked (it has a renewal lead not closed with a final
    # result), past its expiry, not renewed, without a lapsed lead yet.
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
    cols = [
        "policy_id",
        "kind",
        "status",
        "phone_id",
        "due_on",
        "attempt_count",
        "central",
        "created_at",
        "updated_at",
    ]
    res = await session.execute(insert(Lead).from_select(cols, lapsed_src))
    report.lapsed_created = _rowcount(res)
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

    # NEW -> DUE on the lead's due date (set by the import, or from the policy's expiry).
    for kind in desk.distributed_kinds:
        latest = latest_expiry_due(kind, day, rules)
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
        report.made_due[kind] = _rowcount(res)

    # Imported post-underwriting callback lists are the automatic campaign's work from the
    # day of their import: the importer makes them due (crm_sync.importer.initial_status);
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
    report.made_due["callback"] = _rowcount(res)

    res = await session.execute(
        update(Lead)
        .where(
            Lead.kind == "lapsed",
            ~Lead.central,
            Lead.status != LeadStatus.CLOSED.value,
            Lead.policy_id.in_(
                select(Policy.id).where(
                    Policy.expiry_date <= central_cutoff(now, desk.tz, rules), ~Policy.renewed
                )
            ),
        )
        .values(central=True, updated_at=now)
    )
    report.central_marked = _rowcount(res)

    # Post-underwriting callback (承保回访): dialled from the next window, automatically.
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
    cols = [
        "policy_id",
        "kind",
        "status",
        "phone_id",
        "due_on",
        "next_attempt_at",
        "attempt_count",
        "central",
        "created_at",
        "updated_at",
    ]
    res = await session.execute(insert(Lead).from_select(cols, callback_src))
    report.callbacks_created = _rowcount(res)
    log.info("timeline %s: %s", day, report)
    return report


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


def _rowcount(result: Any) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


@dataclass(frozen=True)
class CentralLapsed:
    branch_id: int | None
    lead_id: int
    policy_number: str
    expiry_date: date
    owner_id: int | None


async def central_lapsed(
    session: AsyncSession, branch_id: int | None = None
) -> list[CentralLapsed]:
    """Lapsed leads handled centrally (lapsed > 48 h), still open: the list for each branch."""
    stmt = (
        select(Policy.branch_id, Lead.id, Policy.policy_number, Policy.expiry_date, Lead.owner_id)
        .join(Policy, Policy.id == Lead.policy_id)
        .where(Lead.kind == "lapsed", Lead.central, Lead.status != LeadStatus.CLOSED.value)
        .order_by(Policy.branch_id, Policy.expiry_date, Lead.id)
    )
    if branch_id is not None:
        stmt = stmt.where(Policy.branch_id == branch_id)
    return [CentralLapsed(*row) for row in (await session.execute(stmt)).all()]


async def lapsed_by_branch(session: AsyncSession, day: date) -> dict[int, list[LapsedPolicy]]:
    """Each branch's open lapsed policies (脱保: expired, not renewed, lead not closed), those
    lapsed more than 48 h marked as handled centrally; the daily branch e-mail. `day` is the
    report's day only: the list is the state when it is sent."""
    stmt = (
        select(
            Policy.branch_id,
            Policy.policy_number,
            Customer.name,
            func.coalesce(Phone.e164, Phone.raw, ""),
            Policy.expiry_date,
            Lead.central,
            func.coalesce(Specialist.name, ""),
        )
        .select_from(Lead)
        .join(Policy, Policy.id == Lead.policy_id)
        .join(Customer, Customer.id == Policy.policyholder_id)
        .outerjoin(Phone, Phone.id == Lead.phone_id)
        .outerjoin(Specialist, Specialist.id == Lead.owner_id)
        .where(
            Lead.kind == "lapsed",
            Lead.status != LeadStatus.CLOSED.value,
            ~Policy.renewed,
            Policy.branch_id.is_not(None),
        )
        .order_by(Policy.branch_id, Lead.central.desc(), Policy.expiry_date, Policy.policy_number)
    )
    out: dict[int, list[LapsedPolicy]] = {}
    for branch_id, number, customer, phone, expiry, central, owner in (
        await session.execute(stmt)
    ).all():
        assert branch_id is not None  # filtered above
        out.setdefault(branch_id, []).append(
            LapsedPolicy(number, customer, phone, expiry, central, owner)
        )
    return out


# ---------------------------------------------------------------------------------------------
# The daily distribution
# ---------------------------------------------------------------------------------------------


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


async def _fetch_due_ids(session: AsyncSession, day: date, kinds: Sequence[str]) -> list[int]:
    where = and_(
        Lead.status == LeadStatus.DUE.value,
        Lead.owner_id.is_(None),
        Lead.kind.in_(list(kinds)),
        or_(Lead.due_on.is_(None), Lead.due_on <= day),
    )
    # One value instead of a million rows: far less memory and time.
    if await _is_postgres(session):
        ids = await session.scalar(select(func.array_agg(Lead.id)).where(where))
        return list(ids or [])
    joined = await session.scalar(select(func.group_concat(Lead.id)).where(where))
    return [int(i) for i in joined.split(",")] if joined else []


# One chunk of the deal on PostgreSQL. The id range lets the planner join only the chunk's
# slice of the primary key, in id order, so the rewrite walks the heap and the indexes forward
# (one UPDATE of a million rows hash-joined in batches, with the stock 4 MB work_mem, visiting
# the rows in hash order and thrashing shared_buffers). Chunks also keep the owner trigger's
# transition table (migration 0009) small, and show progress.
_PG_DEAL_CHUNK = text(
    "UPDATE leads SET owner_id = v.owner, distributed_on = :day, status = 'assigned', "
    "updated_at = :now "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:owners AS integer[])) AS v(id, owner) "
    "WHERE leads.id = v.id AND leads.id BETWEEN :first AND :last "
    "AND leads.owner_id IS NULL AND leads.status = 'due'"
).bindparams(bindparam("day", type_=Date()), bindparam("now", type_=UtcDateTime()))


async def _write_allocation_pg(
    session: AsyncSession, ids: list[int], owners: list[int], day: date, now: datetime
) -> int:
    """`ids` ascending, `owners` parallel to them."""
    written = 0
    shown = 0
    for i in range(0, len(ids), PG_CHUNK):
        chunk = ids[i : i + PG_CHUNK]
        res = await session.execute(
            _PG_DEAL_CHUNK,
            {
                "ids": chunk,
                "owners": owners[i : i + PG_CHUNK],
                "first": chunk[0],
                "last": chunk[-1],
                "day": day,
                "now": now,
            },
        )
        written += _rowcount(res)
        done = i + len(chunk)
        if len(ids) > PG_CHUNK and done * 10 // len(ids) > shown:
            shown = done * 10 // len(ids)
            log.info("distribution %s: %d of %d leads written", day, done, len(ids))
    return written


# Rewrites `owner_queue` (PostgreSQL) keeping only the ids still owned by the row's
# specialist with a specialist status: one array per specialist. Rows inserted by concurrent
# transactions are not in this statement's snapshot and stay as they are.
_PG_COMPACT_QUEUE = text(
    "WITH old AS (DELETE FROM owner_queue RETURNING specialist_id, lead_ids) "
    "INSERT INTO owner_queue (specialist_id, lead_ids) "
    "SELECT o.specialist_id, array_agg(DISTINCT l.id ORDER BY l.id) "
    "FROM old AS o CROSS JOIN LATERAL unnest(o.lead_ids) AS u(id) "
    "JOIN leads AS l ON l.id = u.id "
    "WHERE l.owner_id = o.specialist_id AND l.status IN ('assigned', 'scheduled') "
    "GROUP BY o.specialist_id"
)


async def compact_owner_queue(session: AsyncSession) -> int:
    """Drop the stale ids of `owner_queue` (leads re-owned, closed, deleted) and merge each
    specialist's rows into one; returns the rows written. Nothing to do on SQLite."""
    if not await _is_postgres(session):
        return 0
    rows = _rowcount(await session.execute(_PG_COMPACT_QUEUE))
    log.info("owner queue compacted: %d specialist row(s)", rows)
    return rows


async def _write_allocation(
    session: AsyncSession, ids: list[int], owners: list[int], day: date, now: datetime
) -> int:
    if not ids:
        return 0
    if await _is_postgres(session):
        return await _write_allocation_pg(session, ids, owners, day, now)
    # SQLite: the deal goes into a temporary table, then one UPDATE … FROM joins it (about
    # five times faster than a million single-row UPDATEs).
    conn = await session.connection()
    # The default 2 MB page cache thrashes on the leads indexes at this size; 64 MB for the
    # write, then back to what it was.
    cache = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar()
    await conn.exec_driver_sql(f"PRAGMA cache_size = {SQLITE_WRITE_CACHE_KIB}")
    await conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS schedules_deal "
        "(id INTEGER PRIMARY KEY, owner INTEGER NOT NULL)"
    )
    await conn.exec_driver_sql("DELETE FROM schedules_deal")
    for i in range(0, len(ids), SQLITE_CHUNK):
        await conn.exec_driver_sql(
            "INSERT INTO schedules_deal (id, owner) VALUES (?, ?)",
            list(zip(ids[i : i + SQLITE_CHUNK], owners[i : i + SQLITE_CHUNK], strict=True)),
        )
    res = await conn.exec_driver_sql(
        "UPDATE leads SET owner_id = d.owner, distributed_on = ?, status = 'assigned', "
        "updated_at = ? FROM schedules_deal AS d "
        "WHERE leads.id = d.id AND leads.owner_id IS NULL AND leads.status = 'due'",
        (day.isoformat(), now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")),
    )
    await conn.exec_driver_sql("DELETE FROM schedules_deal")
    await conn.exec_driver_sql(f"PRAGMA cache_size = {int(cache or -2000)}")
    return _rowcount(res)


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
    await _advisory_lock(session, LOCK_DISTRIBUTION)
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
    eligible = [s for s in candidates if s not in blocked_counts]

    already: dict[int, int] = {
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
    if not dry_run:  # before the deal, so that its ~25,000 fresh rows are not rewritten
        await compact_owner_queue(session)
    due_ids = await _fetch_due_ids(session, day, desk.distributed_kinds)
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
    written = await _write_allocation(session, alloc.lead_ids, alloc.owners, day, now)
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


async def run_day(
    sessions: async_sessionmaker[AsyncSession],
    *,
    day: date,
    now: datetime,
    desk: DeskCalendar,
    seed: int | None = None,
    dry_run: bool = False,
) -> tuple[TimelineReport, DistributionReport]:
    """The daily job: the timeline, then the distribution, in one transaction (what the
    service's scheduler runs at `distribution_time` on each calling day). With `dry_run` both
    are computed and rolled back: the report shows what the day would deal."""
    async with sessions() as session:
        timeline = await timeline_in(session, day=day, now=now, desk=desk)
        report = await distribute_in(
            session, day=day, now=now, desk=desk, seed=seed, dry_run=dry_run
        )
        if not dry_run:
            await session.commit()
    return timeline, report


# ---------------------------------------------------------------------------------------------
# What the CLI and the API ask of the calendar
# ---------------------------------------------------------------------------------------------

# Calling hours exist per lead kind, and for the reminder campaign (its own window setting).
CAMPAIGN_KINDS = tuple(k.value for k in CampaignKind)
MAX_SLOTS = 50


@dataclass(frozen=True)
class DayWork:
    """One run of the day's work as asked for: the timeline (unless skipped), the deal, and
    notes for the person who asked (another day's deadlines, a closed day)."""

    day: date
    distribution: DistributionReport
    timeline: TimelineReport | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.timeline is not None:
            out["timeline"] = self.timeline.to_dict()
        out["distribution"] = self.distribution.to_dict()
        out["notes"] = list(self.notes)
        return out


class DeskService:
    """The calendar for people: when calls may be made, and the day's distribution on demand
    (the command line and the supervisors' API share it; the service's morning job calls
    `run_day` directly)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], desk: DeskCalendar, clock: Clock
    ) -> None:
        self.sessions = sessions
        self.desk = desk
        self.clock = clock

    def calendar(self, kind: str, tz: str | None = None, slots: int = 5) -> dict[str, Any]:
        """Is `kind`'s window open now in `tz`, how long until it closes, when it next opens,
        and its next `slots` openings (the callback picker's choices)."""
        if kind not in CAMPAIGN_KINDS:
            raise ValueError(f"unknown campaign kind {kind!r}: one of {', '.join(CAMPAIGN_KINDS)}")
        if not 1 <= slots <= MAX_SLOTS:
            raise ValueError(f"slots must be between 1 and {MAX_SLOTS}")
        hours = self.desk.hours(kind)
        zone_name = tz or hours.tz
        try:
            zone(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {zone_name!r} (an IANA name such as Asia/Shanghai)"
            ) from None
        now = self.clock.now()
        closes_in = hours.closes_in(now, zone_name)
        return {
            "kind": kind,
            "tz": zone_name,
            "now": now.astimezone(UTC).isoformat(),
            "calling_day": hours.is_calling_day(hours.local_date(now, zone_name)),
            "open": closes_in is not None,
            "closes_in_seconds": None if closes_in is None else int(closes_in.total_seconds()),
            "next_open": hours.next_open(now, zone_name).isoformat(),
            "slots": [
                {
                    "start": s.start.isoformat(),
                    "end": s.end.isoformat(),
                    "local": fmt_local(s.start, zone_name) + fmt_local(s.end, zone_name, "–%H:%M"),
                }
                for s in hours.next_slots(now, slots, zone_name)
            ],
        }

    async def distribute(
        self,
        day: date | None = None,
        *,
        dry_run: bool = False,
        seed: int | None = None,
        timeline: bool = True,
        force: bool = False,
    ) -> DayWork:
        """The timeline and the distribution for `day` (default: today, local), as the morning
        job runs them. Another day's result deadlines are judged as at that day's distribution
        time, so a rerun for yesterday skips the same specialists it skipped then.

        A day further than `NEAR_DAYS` from today needs `force`; without it a dry run is made
        and `DistributionDayRefused` carries it, so the refusal says what the run would close.
        """
        now = self.clock.now()
        today = self.desk.hours().local_date(now)
        day = day or today
        far = far_day_reason(day, today)
        if far is not None and not force and not dry_run:
            preview = await self._run(day, now, today, dry_run=True, seed=seed, timeline=timeline)
            raise DistributionDayRefused(far, preview)
        work = await self._run(day, now, today, dry_run=dry_run, seed=seed, timeline=timeline)
        if far is not None:
            forced = "forced: " if force else "a real run needs force: "
            work = DayWork(work.day, work.distribution, work.timeline, (*work.notes, forced + far))
        return work

    async def _run(
        self,
        day: date,
        now: datetime,
        today: date,
        *,
        dry_run: bool,
        seed: int | None,
        timeline: bool,
    ) -> DayWork:
        if day != today:
            now = distribution_at(day, self.desk.distribution_time, self.desk.tz)
        notes: list[str] = []
        if not self.desk.is_calling_day(day):
            notes.append(f"note: {day} is not a calling day")
        if not timeline:
            notes.append("timeline not applied")
            report = await run_distribution(
                self.sessions, day=day, now=now, desk=self.desk, seed=seed, dry_run=dry_run
            )
            return DayWork(day, report, None, tuple(notes))
        tl, report = await run_day(
            self.sessions, day=day, now=now, desk=self.desk, seed=seed, dry_run=dry_run
        )
        return DayWork(day, report, tl, tuple(notes))

    async def runs(self, day: date) -> list[dict[str, Any]]:
        """The recorded (non-dry) distribution runs of `day`, for audit: seed, counts, who was
        skipped and why. The whole allocation stays in the database (it can be a million ids)."""
        async with self.sessions() as s:
            rows = (
                await s.scalars(
                    select(DistributionRun)
                    .where(DistributionRun.day == day)
                    .order_by(DistributionRun.id)
                )
            ).all()
        return [
            {
                "id": r.id,
                "day": r.day.isoformat(),
                "seed": r.seed,
                "instance": r.instance,
                "started_at": r.started_at.isoformat(),
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                "due": r.due_count,
                "dealt": r.dealt_count,
                "counts": r.counts,
                "skipped": r.skipped,
            }
            for r in rows
        ]
