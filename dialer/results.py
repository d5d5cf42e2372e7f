"""Results into the CRM: what a finished attempt changes, and the specialist's disposition.

Everything here runs inside the caller's transaction, and every result also becomes an
`OutboxMessage` in that same transaction (topics: `attempt.result`, `lead.contact_result`,
`lead.status`, `phone.accuracy`), so the external CRM adapter sees exactly what was
committed, and nothing that was rolled back.

The dialer sets the telephony contact results itself (no_answer, busy, switched_off,
wrong_number, and for callback numbers unreachable / confirmed) from the classified outcome;
the retry timing of `schedules.retry` decides the next attempt, the three-call rule included.
A specialist sets the conversational results through `dispose`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.mail import InaccurateNumber
from crm_sync.models import (
    Accuracy,
    ContactResult,
    Customer,
    Lead,
    LeadStatus,
    Phone,
    Policy,
    Specialist,
)
from crm_sync.outbox import attempt_recording_message, lead_message, status_message
from dialer.decisions import (
    AttemptFacts,
    Decision,
    Finished,
    Route,
    decide,
    retry_outcome,
    route,
)
from dialer.exceptions import NotYourLead, UnknownLead, UnknownResult
from dialer.models import AttemptState, CallAttempt, Campaign, DialMode, PoolMember
from dialer.outcomes import (
    ABANDONED,
    ANSWERED_OUTCOMES,
    NOT_SENT,
    SKIPPED,
    UNKNOWN,
    automatic_reached,
    counts_as_call_sql,
)
from dialer.pool import record_answer
from schedules.callbacks import book_callback, callback_time, lead_time_zone
from schedules.retry import Attempt as RetryAttempt
from schedules.retry import Outcome as RetryOutcome
from schedules.retry import RetryConfig, inaccurate_cause
from schedules.windows import DEFAULT_TZ, CallingHours, zone

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Effects:
    """What a result did, for the engine (seat state, hooks) and for tests."""

    attempt_id: str
    lead_id: int
    specialist_id: int | None
    outcome: str
    talked: bool  # a specialist talked with the customer: the seat wraps up
    contact_result: str | None
    next_attempt_at: datetime | None
    closed: bool
    inaccurate: bool
    reason: str
    book_specialist: bool = False  # callback key 2: a person should call back


async def _history(session: AsyncSession, attempt: CallAttempt) -> list[RetryAttempt]:
    rows = (
        await session.execute(
            select(
                CallAttempt.created_at,
                CallAttempt.outcome,
                CallAttempt.number,
                CallAttempt.key_pressed,
                CallAttempt.mode,
            )
            .where(
                CallAttempt.lead_id == attempt.lead_id,
                CallAttempt.id != attempt.id,
                CallAttempt.ended_at.is_not(None),
                CallAttempt.campaign_kind != "reminder",
                counts_as_call_sql(CallAttempt.outcome),
            )
            .order_by(CallAttempt.created_at, CallAttempt.id)
        )
    ).all()
    out = []
    for at, outcome, number, key, mode in rows:
        fin = Finished("", outcome or UNKNOWN, answered=outcome in ANSWERED_OUTCOMES)
        ro = retry_outcome(fin)
        if ro is RetryOutcome.ANSWERED and not automatic_reached(mode, key):
            ro = RetryOutcome.NO_ANSWER
        out.append(RetryAttempt(at, ro, number))
    return out


def _local_day(now: datetime, tz: str) -> date:
    return now.astimezone(zone(tz)).date()


async def least_loaded_specialist(session: AsyncSession, pool_of: int | None = None) -> int | None:
    """An active specialist with the fewest scheduled leads (for a booked callback); with
    `pool_of`, a member of that campaign's pool (an abandoned pool call's appointment)."""
    load = (
        select(Lead.owner_id, func.count().label("n"))
        .where(Lead.status == LeadStatus.SCHEDULED.value)
        .group_by(Lead.owner_id)
        .subquery()
    )
    q = (
        select(Specialist.id)
        .outerjoin(load, load.c.owner_id == Specialist.id)
        .where(
            Specialist.active.is_(True),
            Specialist.on_leave.is_(False),
            Specialist.role == "specialist",
        )
        .order_by(func.coalesce(load.c.n, 0), Specialist.id)
        .limit(1)
    )
    if pool_of is not None:
        q = q.join(PoolMember, PoolMember.specialist_id == Specialist.id).where(
            PoolMember.campaign_id == pool_of
        )
    row = (await session.execute(q)).first()
    return None if row is None else int(row[0])


async def _facts(
    session: AsyncSession, attempt: CallAttempt, fin: Finished, lead: Lead
) -> AttemptFacts:
    """Load what `decide` needs; the history and the least-loaded specialist only when the
    rule that applies uses them."""
    facts = AttemptFacts(
        attempt_id=attempt.attempt_id,
        mode=attempt.mode,
        campaign_kind=attempt.campaign_kind,
        number=attempt.number,
        specialist_id=attempt.specialist_id,
        seat=attempt.seat,
        lead_id=lead.id,
        lead_kind=lead.kind,
        lead_status=lead.status,
        owner_id=lead.owner_id,
        callback_at=lead.callback_at,
        next_attempt_at=lead.next_attempt_at,
        phone_id=attempt.phone_id,
        tz=await lead_time_zone(session, lead),
    )
    # A pool call: customer first with no seat reserved at the claim (a pooled campaign's
    # leads in their owners' queues are called like any other).
    camp = await session.get(Campaign, attempt.campaign_id) if attempt.campaign_id else None
    if (
        camp is not None
        and camp.pooled
        and attempt.mode == DialMode.CUSTOMER_FIRST.value
        and attempt.seat is None
    ):
        facts = replace(facts, pooled=True)
    r = route(facts, fin)
    if r is Route.ABANDONED and facts.pooled and lead.owner_id is None:
        assert attempt.campaign_id is not None
        member = await least_loaded_specialist(session, pool_of=attempt.campaign_id)
        return replace(facts, free_specialist=member or await least_loaded_specialist(session))
    if r is Route.RETRY:
        return replace(facts, history=await _history(session, attempt))
    if r is Route.BOOK and lead.owner_id is None:
        return replace(facts, free_specialist=await least_loaded_specialist(session))
    return facts


def _write(
    session: AsyncSession,
    attempt: CallAttempt,
    lead: Lead,
    phone: Phone | None,
    d: Decision,
    fin: Finished,
    now: datetime,
) -> None:
    attempt.reason = d.reason
    attempt.contact_result = d.contact_result
    attempt.specialist_id, attempt.seat = d.specialist_id, d.seat
    if d.accuracy is not None and phone is not None:
        phone.accuracy = d.accuracy
        phone.accuracy_reason = d.reason
        phone.accuracy_set_at = now
    if attempt.campaign_kind != "reminder":
        if d.distributed_on is not None:  # schedules.ownership.owner_change, audited
            lead.owner_id, lead.distributed_on = d.owner_id, d.distributed_on
        session.add_all(d.audit)
        if d.status is not None:
            lead.status = d.status
        if d.set_callback_at:
            lead.callback_at = d.callback_at
        lead.attempt_count += 1 if d.counts_as_call else 0
        if d.closed:
            lead.closed_reason = d.reason
            lead.next_attempt_at = None
        else:
            # `callback_at` stays until the customer is reached and the specialist sets a
            # result (dispose clears it): an unanswered appointment keeps the callback rules
            # (next calling day, three calls) and, for a booked post-underwriting callback,
            # stays in its specialist's queue.
            lead.next_attempt_at = d.next_at
        if d.contact_result is not None:
            lead.contact_result = d.contact_result
            lead.contact_result_at = now
        lead.updated_at = now
    for topic, payload in d.messages:
        lead_message(session, topic, lead.id, payload, now)


async def record_result(
    session: AsyncSession,
    attempt: CallAttempt,
    fin: Finished,
    *,
    now: datetime,
    hours_for: Callable[[str], CallingHours],
    retry: RetryConfig,
) -> Effects:
    """Apply a finished attempt to the attempt row, the lead, the phone and the outbox: load
    the facts, `decide` (pure, `dialer.decisions`), write."""
    attempt.state = AttemptState.ENDED.value
    attempt.ended_at = now
    attempt.outcome = fin.outcome
    attempt.hangup_cause = fin.cause
    attempt.tech_cause = fin.tech_cause
    attempt.dial_status = fin.dial_status
    attempt.ring_seconds = fin.ring_seconds
    attempt.talk_seconds = fin.talk_seconds
    attempt.key_pressed = fin.key_pressed or None
    attempt.recording_file = fin.recording
    attempt.unknown = fin.unknown
    if fin.answered and attempt.answered_at is None:
        attempt.answered_at = now - timedelta(seconds=fin.talk_seconds or 0.0)
    lead = await session.get(Lead, attempt.lead_id)
    assert lead is not None  # FK
    phone = await session.get(Phone, attempt.phone_id) if attempt.phone_id else None
    facts = await _facts(session, attempt, fin, lead)
    d = decide(facts, fin, now=now, hours=hours_for(attempt.campaign_kind), retry=retry)
    _write(session, attempt, lead, phone, d, fin, now)
    if facts.pooled and fin.answered and not fin.unknown and attempt.campaign_id is not None:
        # A live answer of a pooled campaign, and whether it was abandoned: the rolling
        # 30-day abandon rate's record, in the result's own transaction.
        day = hours_for(attempt.campaign_kind).local_date(now)
        await record_answer(session, attempt.campaign_id, day, abandoned=fin.outcome == ABANDONED)
    if fin.recording and fin.outcome not in (NOT_SENT, SKIPPED):
        attempt_recording_message(
            session,
            {
                "attempt_id": attempt.attempt_id,
                "lead_id": lead.id,
                "specialist_id": attempt.specialist_id,
                "outcome": fin.outcome,
                "ended_at": now.isoformat(),
                "talk_seconds": fin.talk_seconds,
                "recording": fin.recording,
            },
            now,
        )
    return Effects(
        attempt.attempt_id,
        lead.id,
        attempt.specialist_id,
        fin.outcome,
        d.talked,
        d.contact_result,
        None if d.closed else d.next_at,
        d.closed,
        d.inaccurate,
        d.reason,
        d.book_specialist,
    )


async def dispose(
    session: AsyncSession,
    lead_id: int,
    specialist_id: int,
    result_code: str,
    *,
    callback_at: datetime | None,
    note: str | None,
    now: datetime,
    hours_for: Callable[[str], CallingHours],
) -> Lead:
    """A specialist's contact result for one of their own leads (caller commits)."""
    lead = await session.get(Lead, lead_id, with_for_update=True)
    if lead is None:
        raise UnknownLead(f"no lead {lead_id}")
    if lead.owner_id != specialist_id:
        log.info(
            "specialist %s tried to set a result on lead %s of another", specialist_id, lead_id
        )
        raise NotYourLead(f"no lead {lead_id}")
    result = await session.get(ContactResult, result_code)
    if result is None:
        raise UnknownResult(f"unknown contact result {result_code!r}")
    if result.telephony:
        raise UnknownResult(f"contact result {result_code!r} is set by the dialer itself")
    tz = await lead_time_zone(session, lead)
    hours = hours_for(lead.kind)
    old_status = lead.status
    if callback_at is not None and callback_at.tzinfo is None:
        raise UnknownResult("callback_at must carry a time zone")
    reason: str
    if result_code == "callback":
        when, reason = callback_time(callback_at, now=now, hours=hours, tz=tz)
        book_callback(lead, when)
    elif result.final:
        lead.status = LeadStatus.CLOSED.value
        lead.closed_reason = result_code
        lead.next_attempt_at = None
        lead.callback_at = None
        reason = f"closed by the specialist: {result_code}"
    else:
        when = hours.clamp(callback_at, tz) if callback_at else hours.next_day_start(now, tz)
        lead.callback_at = None
        lead.next_attempt_at = when
        lead.status = LeadStatus.ASSIGNED.value
        reason = f"{result_code}: next call {when.isoformat()}"
    lead.contact_result = result_code
    lead.contact_result_at = now
    lead.updated_at = now
    last = (
        await session.scalars(
            select(CallAttempt)
            .where(
                CallAttempt.lead_id == lead_id,
                CallAttempt.specialist_id == specialist_id,
                CallAttempt.ended_at.is_not(None),
            )
            .order_by(CallAttempt.created_at.desc(), CallAttempt.id.desc())
            .limit(1)
        )
    ).first()
    if last is not None and last.outcome in ANSWERED_OUTCOMES and last.contact_result is None:
        last.contact_result = result_code
    lead_message(
        session,
        "lead.contact_result",
        lead.id,
        {
            "lead_id": lead.id,
            "contact_result": result_code,
            "by": "specialist",
            "specialist_id": specialist_id,
            "note": note,
            "reason": reason,
            "callback_at": lead.callback_at.isoformat() if lead.callback_at else None,
            "attempt_id": last.attempt_id if last is not None else None,
        },
        now,
    )
    status_message(session, lead, old_status, reason, now)
    return lead


_CN_DIGITS = "一二三四五六七八九"


def branch_reason(accuracy_reason: str | None) -> str:
    """What happened to a number, in the words of the branch e-mail (Chinese / English)."""
    cause, n = inaccurate_cause(accuracy_reason)
    if cause == "not_in_service":
        return "空号/号码错误 number not in service"
    if cause == "unanswered" and n is not None:
        times = _CN_DIGITS[n - 1] if n <= len(_CN_DIGITS) else str(n)
        return f"{times}次未接通 not reached in {n} calls"
    return accuracy_reason or "标记不准确 marked inaccurate"


async def inaccurate_numbers_by_branch(
    session: AsyncSession, day: date, tz: str = DEFAULT_TZ
) -> dict[int, list[InaccurateNumber]]:
    """Numbers marked inaccurate on `day` (local), grouped by the branch that underwrote the
    policy; for the daily branch e-mail (crm_sync.mail.send_inaccurate_numbers)."""
    z = zone(tz)
    start = datetime.combine(day, time(0), tzinfo=z).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=z).astimezone(UTC)
    # Calls placed to this number for this lead (dialer.outcomes.counts_as_call), reminder
    # messages aside.
    calls = (
        select(CallAttempt.lead_id, CallAttempt.phone_id, func.count().label("n"))
        .where(
            CallAttempt.campaign_kind != "reminder",
            counts_as_call_sql(CallAttempt.outcome),
        )
        .group_by(CallAttempt.lead_id, CallAttempt.phone_id)
        .subquery()
    )
    rows = (
        await session.execute(
            select(
                Policy.branch_id,
                Policy.policy_number,
                Customer.name,
                Phone.e164,
                Phone.raw,
                Phone.accuracy_reason,
                func.coalesce(calls.c.n, 0),
            )
            .select_from(Lead)
            .join(Phone, Phone.id == Lead.phone_id)
            .join(Policy, Policy.id == Lead.policy_id)
            .join(Customer, Customer.id == Phone.customer_id)
            .outerjoin(calls, (calls.c.lead_id == Lead.id) & (calls.c.phone_id == Phone.id))
            .where(
                Phone.accuracy == Accuracy.INACCURATE.value,
                Phone.accuracy_set_at >= start,
                Phone.accuracy_set_at < end,
                Policy.branch_id.is_not(None),
            )
            .order_by(Policy.branch_id, Policy.policy_number)
        )
    ).all()
    out: dict[int, list[InaccurateNumber]] = {}
    seen: set[tuple[int, str]] = set()
    for branch_id, policy_number, name, e164, raw, reason, n in rows:
        key = (branch_id, e164 or raw)
        if key in seen:
            continue
        seen.add(key)
        out.setdefault(branch_id, []).append(
            InaccurateNumber(policy_number, name, e164 or raw, branch_reason(reason), int(n))
        )
    return out


__all__ = [
    "Effects",
    "Finished",
    "dispose",
    "inaccurate_numbers_by_branch",
    "least_loaded_specialist",
    "record_result",
    "retry_outcome",
]
