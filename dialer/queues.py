"""Which lead to dial next, and claiming it (database side of the dialer).

A specialist's own queue: leads they own (所属人员), of a kind whose campaign is running,
whose next attempt is due, whose phone may be called, with no attempt in flight for the lead
or the number. Order: due appointments first (预约回拨 whose time has come, earliest first),
then by policy expiry date, then lead id.

On PostgreSQL a specialist's leads are found through `owner_queue` (migration
`0010_owner_queue`), not an index of `leads` on the owner: `leads` keeps no index on
`owner_id` or `status` so that the daily deal's million-row update is HOT. `owned_by` compiles
to the owner test plus "id in the specialist's queue rows" there, and to the owner test alone
on SQLite (which keeps `ix_leads_owner_status`). The queue is a superset; the owner and status
tests beside it are what decide.

Every queue takes only numbers under the daily cap: the calls a number got since the start
of the desk's day (`day_start`), in every campaign, reminders included, attempts that are not
calls (`dialer.outcomes.counts_as_call`) excepted, must be fewer than `daily_cap`. This is the
one place that decides whether a number may be called again today; the retry timing's own
per-lead cap (`schedules.retry`) only picks a sensible next time.

Claiming is one transaction: select candidates (PostgreSQL: `FOR UPDATE OF leads SKIP
LOCKED`, so two dialer processes never pick the same row), drop those whose calling window
is closed in the customer's time zone or whose number is on the do-not-call list, insert the
attempt row, commit. The partial unique indexes of `call_attempts` are the last guard: a
concurrent insert for the same lead or number fails and the claim moves on. SQLite runs one
instance and the engine serialises claims with a process-level lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, partial
from typing import Any

from sqlalchemy import Boolean, Date, and_, bindparam, case, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal, _TraverseInternalsType

from crm_sync.models import Customer, Lead, LeadStatus, Phone, Policy
from crm_sync.phones import usable_phone_sql
from dialer.models import CallAttempt, CampaignKind, DoNotCall
from dialer.outcomes import counts_as_call_sql
from schedules.timeline import TimelineRules, latest_expiry_reminded
from schedules.windows import DEFAULT_TZ

SPECIALIST_STATUSES = (LeadStatus.ASSIGNED.value, LeadStatus.SCHEDULED.value)
AUTOMATIC_STATUSES = (LeadStatus.DUE.value, LeadStatus.ASSIGNED.value, LeadStatus.SCHEDULED.value)

WindowCheck = Callable[[str, str, datetime], bool]  # (campaign kind, tz, now) -> open?
# A prepared queue with its values bound: (session, limit=...) -> the candidates.
Fetch = Callable[..., Awaitable[list["Candidate"]]]


def new_attempt_id() -> str:
    return f"att-{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class Candidate:
    lead_id: int
    kind: str
    phone_id: int
    number: str  # E.164
    tz: str
    owner_id: int | None
    appointment: bool


class _OwnedBy(ColumnElement[bool]):
    """`leads.owner_id = s`, and on PostgreSQL "… and the lead is in s's `owner_queue`"."""

    type = Boolean()
    inherit_cache = True
    _traverse_internals: _TraverseInternalsType = [  # noqa: RUF012 (SQLAlchemy's own form)
        ("specialist", InternalTraversal.dp_clauseelement)
    ]

    def __init__(self, specialist: Any) -> None:
        self.specialist = specialist


@compiles(_OwnedBy)
def _owned_by_default(element: _OwnedBy, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(Lead.owner_id == element.specialist, **kw)


@compiles(_OwnedBy, "postgresql")
def _owned_by_pg(element: _OwnedBy, compiler: SQLCompiler, **kw: Any) -> str:
    owner = compiler.process(Lead.owner_id == element.specialist, **kw)
    queued = compiler.process(element.specialist, **kw)
    # The queue rows name the candidates (a few arrays); the owner test drops stale ids. As
    # one array (`= ANY`) the plan is a look-up of those ids in pk_leads whatever the
    # statistics; an IN (subquery) semi-join cost ~0.7 ms more per claim on a small table.
    return (
        f"({owner} AND leads.id = ANY (ARRAY(SELECT unnest(owner_queue.lead_ids) "
        f"FROM owner_queue WHERE owner_queue.specialist_id = {queued})))"
    )


def owned_by(specialist: Any) -> Any:
    """Leads whose owner is `specialist` (an id or a bound parameter), found on PostgreSQL
    through `owner_queue`: use it with a specialist status (`SPECIALIST_STATUSES`), the leads
    the queue is guaranteed to hold."""
    value = specialist if isinstance(specialist, ColumnElement) else literal(specialist)
    return _OwnedBy(value)


# The parts of every queue that take no values are built once per process and shared by
# the statements (SQL constructs are immutable): each costs most of a millisecond to build.
@cache
def _in_flight_for_lead() -> Any:
    a = aliased(CallAttempt)
    return exists().where(a.lead_id == Lead.id, a.ended_at.is_(None))


@cache
def _in_flight_for_number() -> Any:
    a = aliased(CallAttempt)
    return exists().where(a.number == Phone.e164, a.ended_at.is_(None))


@cache
def _callable_phone() -> Any:
    dnc = exists().where(DoNotCall.number == Phone.e164)
    return and_(Phone.e164.is_not(None), usable_phone_sql(), ~dnc)


def _under_daily_cap(day_start: Any, daily_cap: int | None) -> Any:
    """Fewer than `daily_cap` calls to the lead's number since `day_start`, every campaign
    together. Attempts in flight are not counted here: `_in_flight_for_number` excludes the
    number anyway, and the attempt counts once it has ended."""
    if daily_cap is None:
        return literal(True)
    a = aliased(CallAttempt)
    today = (
        select(func.count())
        .select_from(a)
        .where(a.number == Phone.e164, a.created_at >= day_start, counts_as_call_sql(a.outcome))
        .scalar_subquery()
    )
    return today < daily_cap


def _callable_leads(day_start: Any = None, daily_cap: int | None = None) -> Any:
    """The columns of a `Candidate`: leads with a callable phone, nothing in flight, and a
    number under the daily cap (`daily_cap` None: no cap)."""
    return (
        select(
            Lead.id,
            Lead.kind,
            Phone.id,
            Phone.e164,
            Customer.time_zone,
            Lead.owner_id,
            Lead.callback_at,
        )
        .join(Phone, Phone.id == Lead.phone_id)
        .join(Policy, Policy.id == Lead.policy_id)
        .join(Customer, Customer.id == Policy.policyholder_id)
        .where(
            _callable_phone(),
            ~_in_flight_for_lead(),
            ~_in_flight_for_number(),
            _under_daily_cap(day_start, daily_cap),
        )
    )


def _base(now: Any, day_start: Any = None, daily_cap: int | None = None) -> Any:
    return _callable_leads(day_start, daily_cap).where(
        or_(Lead.next_attempt_at.is_(None), Lead.next_attempt_at <= now)
    )


def specialist_queue(
    specialist_id: int,
    kinds: Sequence[str],
    now: datetime,
    *,
    day_start: datetime | None = None,
    daily_cap: int | None = None,
) -> Any:
    """The specialist's own queue, in dialling order.

    `kinds` are the kinds whose campaign runs in a specialist mode. A post-underwriting
    callback booked to this specialist (the customer pressed 2) is taken whatever its own
    campaign's mode, once its appointment is due: nobody else would ever dial it."""
    return _specialist_queue(specialist_id, list(kinds), now, day_start, daily_cap)


def _specialist_queue(
    specialist_id: Any, kinds: Any, now: Any, day_start: Any, daily_cap: int | None
) -> Any:
    """`specialist_queue` over values or bound parameters (`SeatQueue`)."""
    due_appointment = and_(Lead.callback_at.is_not(None), Lead.callback_at <= now)
    booked_callback = and_(Lead.kind == CampaignKind.CALLBACK.value, due_appointment)
    return (
        _base(now, day_start, daily_cap)
        .where(
            owned_by(specialist_id),
            Lead.status.in_(SPECIALIST_STATUSES),
            or_(Lead.kind.in_(kinds), booked_callback),
        )
        .order_by(
            case((due_appointment, 0), else_=1),
            Lead.callback_at,
            Policy.expiry_date,
            Lead.id,
        )
    )


def callback_queue(
    now: datetime, *, day_start: datetime | None = None, daily_cap: int | None = None
) -> Any:
    """Post-underwriting callbacks nobody owns: the automatic campaign's work."""
    return _callback_queue(now, day_start, daily_cap)


def _callback_queue(now: Any, day_start: Any, daily_cap: int | None) -> Any:
    """`callback_queue` over values or bound parameters (`AutomaticQueues`)."""
    return (
        _base(now, day_start, daily_cap)
        .where(
            Lead.kind == CampaignKind.CALLBACK.value,
            Lead.owner_id.is_(None),
            Lead.status.in_(AUTOMATIC_STATUSES),
        )
        .order_by(Lead.next_attempt_at, Lead.id)
    )


def pool_queue(
    kind: str, now: datetime, *, day_start: datetime | None = None, daily_cap: int | None = None
) -> Any:
    """A pooled campaign's work: due leads of its kind that nobody owns (lapsed policies,
    trial members, leads a supervisor released to the pool). A lead whose pool call was
    answered or abandoned has an owner from then on (dialer.pool), so it leaves this queue:
    an abandoned one waits in its new owner's queue for its appointment on a later day."""
    return _pool_queue(kind, now, day_start, daily_cap)


def _pool_queue(kind: Any, now: Any, day_start: Any, daily_cap: int | None) -> Any:
    """`pool_queue` over values or bound parameters (`AutomaticQueues`)."""
    return (
        _base(now, day_start, daily_cap)
        .where(
            Lead.kind == kind,
            Lead.owner_id.is_(None),
            Lead.status.in_(AUTOMATIC_STATUSES),
        )
        .order_by(Lead.next_attempt_at, Policy.expiry_date, Lead.id)
    )


def reminder_queue(
    now: datetime,
    today: date,
    rules: TimelineRules,
    *,
    day_start: datetime | None = None,
    daily_cap: int | None = None,
) -> Any:
    """Renewal leads whose reminder is owed (`schedules.timeline.reminder_day`: T−30 by the
    desk's timeline rules, up to the expiry) and that never had a reminder call.

    A reminder attempt that was not a call (`dialer.outcomes.counts_as_call`: never dialled,
    or ended by the PBX itself) does not count: the customer was not called. One whose
    fate is unknown does count, since it may have rung (never twice)."""
    return _reminder_queue(today, latest_expiry_reminded(today, rules), day_start, daily_cap)


def _reminder_queue(today: Any, latest: Any, day_start: Any, daily_cap: int | None) -> Any:
    """`reminder_queue` over values or bound parameters (`AutomaticQueues`): `latest` is the
    last expiry date whose reminder is owed `today`."""
    a = aliased(CallAttempt)
    reminded = exists().where(
        a.lead_id == Lead.id,
        a.campaign_kind == CampaignKind.REMINDER.value,
        counts_as_call_sql(a.outcome),
    )
    return (
        _callable_leads(day_start, daily_cap)
        .where(
            Lead.kind == CampaignKind.RENEWAL.value,
            Lead.status != LeadStatus.CLOSED.value,
            Policy.renewed.is_(False),
            Policy.expiry_date <= latest,
            Policy.expiry_date >= today,
            ~reminded,
        )
        .order_by(Policy.expiry_date, Lead.id)
    )


async def customer_owners(session: AsyncSession, cands: Sequence[Candidate]) -> dict[int, int]:
    """Lead id -> the specialist who owns the customer: the lead's own owner, else the owner
    of another lead of the same policy (the renewal a specialist handled before the policy
    reached the callback desk). The key-2 hand-over offers that specialist's seat first."""
    owners = {c.lead_id: c.owner_id for c in cands if c.owner_id is not None}
    missing = [c.lead_id for c in cands if c.owner_id is None]
    if missing:
        other = aliased(Lead)
        rows = await session.execute(
            select(Lead.id, other.owner_id)
            .join(other, and_(other.policy_id == Lead.policy_id, other.id != Lead.id))
            .where(Lead.id.in_(missing), other.owner_id.is_not(None))
            .order_by(Lead.id, other.id)
        )
        for lead_id, owner_id in rows.all():
            if owner_id is not None:
                owners.setdefault(lead_id, owner_id)
    return owners


async def fetch_candidates(
    session: AsyncSession,
    query: Any,
    *,
    limit: int,
    now: datetime,
    lock: bool,
) -> list[Candidate]:
    q = query.limit(limit)
    if lock:
        q = q.with_for_update(skip_locked=True, of=Lead)
    return _candidates((await session.execute(q)).all(), now)


def _candidates(rows: Sequence[Any], now: datetime) -> list[Candidate]:
    return [
        Candidate(
            lead_id,
            kind,
            phone_id,
            e164,
            tz or DEFAULT_TZ,
            owner_id,
            callback_at is not None and callback_at <= now,
        )
        for lead_id, kind, phone_id, e164, tz, owner_id, callback_at in rows
    ]


class PreparedQueue:
    """A queue as one statement, built once per engine and run with values.

    Building the query (aliases, column proxies, its cache key) costs more CPU than running
    it (a few milliseconds a queue), and leaves over a thousand objects in reference cycles
    each time; the garbage collector's pauses for them stall the event loop that sends every
    seat's Originate. A claim only binds its values (the time, the limit, and what the queue
    names). The statement is built at the first claim: an engine that never claims from
    this queue (most campaigns are not running at any time) never pays for it."""

    def __init__(self, build: Callable[[], Any], *, lock: bool, daily_cap: int | None) -> None:
        self.daily_cap = daily_cap
        self._build = build
        self._lock = lock
        self._stmt: Any = None

    def statement(self) -> Any:
        if self._stmt is None:
            q = self._build().limit(bindparam("limit"))
            self._stmt = q.with_for_update(skip_locked=True, of=Lead) if self._lock else q
        return self._stmt

    async def fetch(
        self,
        session: AsyncSession,
        *,
        now: datetime,
        limit: int,
        day_start: datetime | None = None,
        **values: Any,
    ) -> list[Candidate]:
        """The first `limit` leads of the queue (locked, SKIP LOCKED, if built with `lock`);
        with a daily cap, `day_start` is where today's calls are counted from."""
        if self.daily_cap is not None and day_start is None:
            raise ValueError("a queue with a daily cap needs day_start")
        values.update(now=now, limit=limit)
        if self.daily_cap is not None:
            values["day_start"] = day_start
        return _candidates((await session.execute(self.statement(), values)).all(), now)


class SeatQueue(PreparedQueue):
    """A specialist's queue (`specialist_queue`), prepared: a claim binds the specialist,
    the kinds, the time and the limit."""

    def __init__(self, *, lock: bool, daily_cap: int | None = None) -> None:
        def build() -> Any:
            return _specialist_queue(
                bindparam("specialist_id"),
                bindparam("kinds", expanding=True),
                bindparam("now"),
                bindparam("day_start"),
                daily_cap,
            )

        super().__init__(build, lock=lock, daily_cap=daily_cap)

    async def candidates(
        self,
        session: AsyncSession,
        specialist_id: int,
        kinds: Sequence[str],
        *,
        now: datetime,
        limit: int,
        day_start: datetime | None = None,
    ) -> list[Candidate]:
        return await self.fetch(
            session,
            now=now,
            limit=limit,
            day_start=day_start,
            specialist_id=specialist_id,
            kinds=list(kinds),
        )


class AutomaticQueues:
    """The queues of the campaigns no specialist dials (`callback_queue`, `reminder_queue`,
    `pool_queue`), prepared once per engine like `SeatQueue`: a round claims again every
    tick while it finds work."""

    def __init__(self, *, lock: bool, daily_cap: int | None) -> None:
        self.daily_cap = daily_cap
        self.reset(lock=lock)

    def reset(self, *, lock: bool) -> None:
        """Again when the engine starts and knows its database (`FOR UPDATE` on PostgreSQL)."""
        daily_cap = self.daily_cap
        now: Any = bindparam("now")
        day_start: Any = bindparam("day_start")

        def prepared(build: Callable[[], Any]) -> PreparedQueue:
            return PreparedQueue(build, lock=lock, daily_cap=daily_cap)

        self._callback = prepared(lambda: _callback_queue(now, day_start, daily_cap))
        self._pool = prepared(lambda: _pool_queue(bindparam("kind"), now, day_start, daily_cap))
        # The reminder queue does not depend on the time of day, only on the day.
        latest = bindparam("latest", type_=Date)
        today = bindparam("today", type_=Date)
        self._reminder = prepared(lambda: _reminder_queue(today, latest, day_start, daily_cap))

    def callback(self, now: datetime, day_start: datetime) -> Fetch:
        return partial(self._callback.fetch, now=now, day_start=day_start)

    def pool(self, kind: str, now: datetime, day_start: datetime) -> Fetch:
        return partial(self._pool.fetch, now=now, day_start=day_start, kind=kind)

    def reminder(
        self, now: datetime, today: date, rules: TimelineRules, day_start: datetime
    ) -> Fetch:
        return partial(
            self._reminder.fetch,
            now=now,
            day_start=day_start,
            today=today,
            latest=latest_expiry_reminded(today, rules),
        )


async def blocked_numbers(session: AsyncSession, numbers: Sequence[str]) -> set[str]:
    if not numbers:
        return set()
    rows = await session.scalars(select(DoNotCall.number).where(DoNotCall.number.in_(numbers)))
    return set(rows)


async def pick(
    session: AsyncSession,
    fetch: Fetch,
    *,
    now: datetime,
    window_kind: Callable[[Candidate], str],
    is_open: WindowCheck,
    limit: int,
    want: int,
) -> list[Candidate]:
    """Up to `want` of the first `limit` candidates `fetch` finds (a prepared queue with its
    values, `AutomaticQueues`) whose window is open, one per number."""
    cands = await fetch(session, limit=limit)
    return choose(cands, now=now, window_kind=window_kind, is_open=is_open, want=want)


def choose(
    cands: Sequence[Candidate],
    *,
    now: datetime,
    window_kind: Callable[[Candidate], str],
    is_open: WindowCheck,
    want: int,
) -> list[Candidate]:
    """Up to `want` of `cands`, in order, whose window is open, one per number."""
    chosen: list[Candidate] = []
    numbers: set[str] = set()
    for c in cands:  # the do-not-call list is a NOT EXISTS in the query itself
        if c.number in numbers:
            continue
        if not is_open(window_kind(c), c.tz, now):
            continue
        chosen.append(c)
        numbers.add(c.number)
        if len(chosen) >= want:
            break
    return chosen


__all__ = [
    "AUTOMATIC_STATUSES",
    "SPECIALIST_STATUSES",
    "AutomaticQueues",
    "Candidate",
    "Fetch",
    "PreparedQueue",
    "SeatQueue",
    "blocked_numbers",
    "callback_queue",
    "choose",
    "fetch_candidates",
    "new_attempt_id",
    "owned_by",
    "pick",
    "pool_queue",
    "reminder_queue",
    "specialist_queue",
]


async def not_callable_reason(session: AsyncSession, lead_id: int, number: str) -> str | None:
    """Why a claimed call must not be dialled after all, or None: looked at just before the
    Originate, because the CRM's changes (crm_sync.changes) may close the lead (renewed
    elsewhere) or bar the number (do-not-call) between the claim and the send."""
    status, barred = (await session.execute(_stops(), {"lead_id": lead_id, "number": number})).one()
    if status == LeadStatus.CLOSED.value:
        return "lead closed since it was claimed (e.g. renewed elsewhere): not dialled"
    if barred:
        return "number put on do-not-call since it was claimed: not dialled"
    return None


@cache
def _stops() -> Any:
    """Both of `not_callable_reason`'s facts in one round trip, on every call's way to the
    Originate: the statement is built once per process."""
    status = select(Lead.status).where(Lead.id == bindparam("lead_id")).scalar_subquery()
    barred = exists().where(Phone.e164 == bindparam("number"), Phone.do_not_call.is_(True))
    return select(status.label("status"), barred.label("barred"))
