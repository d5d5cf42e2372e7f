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
from dataclasses import dataclass
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
from crm_sync.outbox import lead_message as outbox
from crm_sync.outbox import status_message as status_outbox
from dialer.exceptions import NotYourLead, UnknownLead, UnknownResult
from dialer.models import AttemptState, CallAttempt, DialMode
from schedules.retry import Attempt as RetryAttempt
from schedules.retry import Outcome as RetryOutcome
from schedules.retry import RetryConfig, appointment_time, inaccurate_cause, next_attempt
from schedules.windows import DEFAULT_TZ, CallingHours, zone

log = logging.getLogger(__name__)

# Outcomes the engine adds to the tracker's classification.
NOT_SENT = "not_sent"  # the window closed between claim and send: nothing was dialled
ABANDONED = "abandoned"  # customer first: answered, but no seat took the call in time
SKIPPED = "skipped"  # preview: the specialist skipped the lead
# The PBX itself ended the call (Asterisk shutting down, dialer.shutdown): no customer
# outcome, never counted by the retry rules (not toward the three calls of a callback number).
ENDED_BY_PBX = "ended_by_pbx"
UNKNOWN = "unknown"
ANSWERED_OUTCOMES = frozenset({"answered", "answered_hung_up_early"})


@dataclass(frozen=True, slots=True)
class Finished:
    """A finished attempt as the engine knows it (from the CallTracker, or reconciliation)."""

    attempt_id: str
    outcome: str
    answered: bool = False
    bridged: bool = False
    cause: int | None = None
    tech_cause: int | None = None
    dial_status: str | None = None
    ring_seconds: float | None = None
    talk_seconds: float | None = None
    key_pressed: str | None = None
    recording: str | None = None
    unknown: bool = False
    reason: str | None = None
    # An automatic call handed to a seat mid-call (callback key 2, dialer.transfer): the
    # specialist and seat device the dialer connected the customer to.
    specialist_id: int | None = None
    seat: str | None = None
    # Not sent: when the lead is due again (None: at once, or at the window's next opening).
    retry_at: datetime | None = None


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


def retry_outcome(fin: Finished) -> RetryOutcome:
    o = fin.outcome
    if o in ANSWERED_OUTCOMES or (o == "hung_up_by_action" and fin.answered):
        return RetryOutcome.ANSWERED
    if o in ("hung_up_by_action", NOT_SENT, ABANDONED, SKIPPED, ENDED_BY_PBX):
        return RetryOutcome.FAILED if o == "hung_up_by_action" else RetryOutcome.UNKNOWN
    try:
        return RetryOutcome.parse(o)
    except ValueError:
        return RetryOutcome.UNKNOWN


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
                CallAttempt.outcome.not_in([NOT_SENT, SKIPPED]),
            )
            .order_by(CallAttempt.created_at, CallAttempt.id)
        )
    ).all()
    out = []
    for at, outcome, number, key, mode in rows:
        fin = Finished("", outcome or UNKNOWN, answered=outcome in ANSWERED_OUTCOMES)
        ro = retry_outcome(fin)
        if mode == DialMode.AUTOMATIC.value and ro is RetryOutcome.ANSWERED and not key:
            ro = RetryOutcome.NO_ANSWER  # answered by a machine / nobody pressed: not reached
        out.append(RetryAttempt(at, ro, number))
    return out


async def _time_zone(session: AsyncSession, lead: Lead) -> str:
    tz = await session.scalar(
        select(Customer.time_zone)
        .join(Policy, Policy.policyholder_id == Customer.id)
        .where(Policy.id == lead.policy_id)
    )
    return tz or DEFAULT_TZ


def _local_day(now: datetime, tz: str) -> date:
    return now.astimezone(zone(tz)).date()


async def least_loaded_specialist(session: AsyncSession) -> int | None:
    """An active specialist with the fewest scheduled leads (for a booked callback)."""
    load = (
        select(Lead.owner_id, func.count().label("n"))
        .where(Lead.status == LeadStatus.SCHEDULED.value)
        .group_by(Lead.owner_id)
        .subquery()
    )
    row = (
        await session.execute(
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
    ).first()
    return None if row is None else int(row[0])


async def record_result(
    session: AsyncSession,
    attempt: CallAttempt,
    fin: Finished,
    *,
    now: datetime,
    hours_for: Callable[[str], CallingHours],
    retry: RetryConfig,
) -> Effects:
    """Apply a finished attempt to the attempt row, the lead, the phone and the outbox."""
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
    tz = await _time_zone(session, lead)
    kind = attempt.campaign_kind
    hours = hours_for(kind)
    talked = fin.outcome in ANSWERED_OUTCOMES or (fin.answered and fin.bridged)
    contact: str | None = None
    closed = False
    inaccurate = False
    book = False
    connected = False  # an automatic call handed to a specialist (callback key 2)
    next_at: datetime | None = lead.next_attempt_at
    old_status = lead.status

    if kind == "reminder":
        reason = f"reminder call: {fin.outcome}"
    elif fin.outcome == NOT_SENT:
        next_at = fin.retry_at or hours.next_open(now, tz)
        reason = fin.reason or "calling window closed at send time: not dialled"
    elif fin.outcome == SKIPPED:
        next_at = hours.next_window_start(now, tz)
        reason = fin.reason or "skipped in preview"
    elif fin.outcome == ENDED_BY_PBX:
        # Due again at once: the engine dials nothing on that PBX until its link is back.
        next_at = hours.next_open(now, tz)
        reason = fin.reason or "ended by the PBX: not a customer outcome"
    elif attempt.mode == DialMode.AUTOMATIC.value and talked and fin.key_pressed in ("1", "2"):
        if fin.key_pressed == "1":
            contact, closed = "confirmed", True
            next_at = None
            reason = "callback: customer pressed 1 (documents received, details correct)"
            if phone is not None:
                phone.accuracy = Accuracy.ACCURATE.value
                phone.accuracy_reason = reason
                phone.accuracy_set_at = now
                outbox(
                    session,
                    "phone.accuracy",
                    lead.id,
                    {"phone_id": phone.id, "accuracy": "accurate", "reason": reason},
                    now,
                )
        elif fin.bridged and fin.specialist_id is not None:
            # Connected to a free specialist during the call: their lead now, and their
            # contact result to set (dispose), like any call a specialist answered.
            connected = True
            attempt.specialist_id = fin.specialist_id
            attempt.seat = fin.seat or attempt.seat
            if lead.owner_id != fin.specialist_id:
                lead.owner_id = fin.specialist_id
                lead.distributed_on = _local_day(now, tz)
            lead.status = LeadStatus.ASSIGNED.value
            next_at = hours.next_day_start(now, tz)
            # Until the specialist sets the contact result, the lead stays in their queue
            # as a booked callback (a callback lead is otherwise only dialled automatically).
            lead.callback_at = next_at
            reason = (
                f"callback: customer pressed 2 and was connected to {fin.seat or 'a seat'}: "
                "answered: waiting for the specialist's contact result"
            )
        else:
            book = True
            contact = "callback"
            slot = hours.next_slots(now, 1, tz)[0].start
            when, why = appointment_time(slot, hours, tz)
            owner = lead.owner_id or await least_loaded_specialist(session)
            if owner is not None and lead.owner_id is None:
                lead.owner_id = owner
                lead.distributed_on = _local_day(now, tz)
            lead.callback_at = when
            lead.status = LeadStatus.SCHEDULED.value if owner is not None else lead.status
            next_at = when
            reason = f"callback: customer pressed 2 (talk to a person): {why}"
    elif attempt.mode != DialMode.AUTOMATIC.value and talked:
        # The specialist logs the result; until then the lead rests until the next day.
        next_at = hours.next_day_start(now, tz)
        reason = "answered: waiting for the specialist's contact result"
    elif fin.outcome == ABANDONED:
        next_at = hours.next_window_start(now, tz)
        reason = fin.reason or "abandoned: no seat answered in time"
    else:
        ro = retry_outcome(fin)
        if attempt.mode == DialMode.AUTOMATIC.value and ro is RetryOutcome.ANSWERED:
            ro = RetryOutcome.NO_ANSWER  # nobody pressed a key: not reached
        policy_ = retry.for_lead(lead.kind, appointment=lead.callback_at is not None)
        decision = next_attempt(
            ro,
            at=now,
            history=await _history(session, attempt),
            policy=policy_,
            hours=hours,
            tz=tz,
            phone=attempt.number,
        )
        reason = decision.reason
        contact = decision.contact_result
        next_at = decision.next_at
        if decision.mark_inaccurate and phone is not None:
            inaccurate = True
            phone.accuracy = Accuracy.INACCURATE.value
            phone.accuracy_reason = decision.reason
            phone.accuracy_set_at = now
            outbox(
                session,
                "phone.accuracy",
                lead.id,
                {"phone_id": phone.id, "accuracy": "inaccurate", "reason": decision.reason},
                now,
            )
        if decision.close_lead:
            closed = True
            contact = contact or "unreachable"

    if fin.unknown:
        reason = (
            fin.reason
            or "fate unknown after a reconnect or restart: not redialled before the next window"
        )
        next_at = hours.next_window_start(now, tz)
        contact = None

    attempt.reason = reason
    attempt.contact_result = contact
    if kind != "reminder":
        lead.attempt_count += 0 if fin.outcome in (NOT_SENT, SKIPPED) else 1
        if closed:
            lead.status = LeadStatus.CLOSED.value
            lead.closed_reason = reason
            lead.next_attempt_at = None
            lead.callback_at = None if contact != "callback" else lead.callback_at
        else:
            # `callback_at` stays until the customer is reached and the specialist sets a
            # result (dispose clears it): an unanswered appointment keeps the callback rules
            # (next calling day, three calls) and, for a booked post-underwriting callback,
            # stays in its specialist's queue.
            lead.next_attempt_at = next_at
        if contact is not None:
            lead.contact_result = contact
            lead.contact_result_at = now
        lead.updated_at = now

    payload = {
        "attempt_id": attempt.attempt_id,
        "lead_id": lead.id,
        "specialist_id": attempt.specialist_id,
        "number": attempt.number,
        "mode": attempt.mode,
        "campaign_kind": kind,
        "outcome": fin.outcome,
        "cause": fin.cause,
        "tech_cause": fin.tech_cause,
        "dial_status": fin.dial_status,
        "ring_seconds": fin.ring_seconds,
        "talk_seconds": fin.talk_seconds,
        "key_pressed": fin.key_pressed,
        "recording": fin.recording,
        "unknown": fin.unknown,
        "contact_result": contact,
        "next_attempt_at": next_at.isoformat() if next_at and not closed else None,
        "reason": reason,
        "ended_at": now.isoformat(),
    }
    outbox(session, "attempt.result", lead.id, payload, now)
    if contact is not None and kind != "reminder":
        outbox(
            session,
            "lead.contact_result",
            lead.id,
            {
                "lead_id": lead.id,
                "contact_result": contact,
                "by": "dialer",
                "attempt_id": attempt.attempt_id,
                "reason": reason,
            },
            now,
        )
    status_outbox(session, lead, old_status, reason, now)
    return Effects(
        attempt.attempt_id,
        lead.id,
        attempt.specialist_id,
        fin.outcome,
        connected if attempt.mode == DialMode.AUTOMATIC.value else talked,
        contact,
        None if closed else next_at,
        closed,
        inaccurate,
        reason,
        book,
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
    policy = await session.get(Policy, lead.policy_id)
    customer = await session.get(Customer, policy.policyholder_id) if policy else None
    tz = (customer.time_zone if customer is not None else None) or DEFAULT_TZ
    hours = hours_for(lead.kind)
    old_status = lead.status
    if callback_at is not None and callback_at.tzinfo is None:
        raise UnknownResult("callback_at must carry a time zone")
    reason: str
    if result_code == "callback":
        chosen = callback_at or hours.next_slots(now, 1, tz)[0].start
        if chosen <= now:
            chosen = hours.next_slots(now, 1, tz)[0].start
        when, reason = appointment_time(chosen, hours, tz)
        lead.callback_at = when
        lead.next_attempt_at = when
        lead.status = LeadStatus.SCHEDULED.value
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
    outbox(
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
    status_outbox(session, lead, old_status, reason, now)
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
    # Calls actually placed to this number for this lead: not the ones the window closed
    # before sending, nor skipped previews, nor reminder messages.
    calls = (
        select(CallAttempt.lead_id, CallAttempt.phone_id, func.count().label("n"))
        .where(
            CallAttempt.campaign_kind != "reminder",
            CallAttempt.outcome.not_in((NOT_SENT, SKIPPED)),
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
    "ABANDONED",
    "ANSWERED_OUTCOMES",
    "ENDED_BY_PBX",
    "NOT_SENT",
    "SKIPPED",
    "UNKNOWN",
    "Effects",
    "Finished",
    "dispose",
    "inaccurate_numbers_by_branch",
    "least_loaded_specialist",
    "outbox",
    "record_result",
    "retry_outcome",
    "status_outbox",
]
