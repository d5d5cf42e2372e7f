"""What a finished attempt does to the lead, the phone and the retry plan: a pure function.

`decide` takes plain data (the attempt's facts, the lead, the phone, its history, the calling
hours, the retry rules) and returns a `Decision`: the changes to write and the outbox
messages to publish. It reads no database and no clock; `dialer.results.record_result` loads
the facts, calls it and writes the result in the caller's transaction. `route` says which
rule applies, so the loader fetches only what that rule needs (the history for the retry
rules, the least-loaded specialist for a booked callback)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from crm_sync.models import Accuracy, LeadStatus
from dialer.models import DialMode
from schedules.retry import Attempt as RetryAttempt
from schedules.retry import Outcome as RetryOutcome
from schedules.retry import RetryConfig, appointment_time, next_attempt
from schedules.windows import CallingHours, zone

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


class Route(enum.Enum):
    """Which rule a finished attempt falls under."""

    REMINDER = "reminder"
    NOT_SENT = "not_sent"
    SKIPPED = "skipped"
    ENDED_BY_PBX = "ended_by_pbx"
    CONFIRMED = "confirmed"  # automatic call, key 1
    CONNECTED = "connected"  # automatic call, key 2, handed to a seat
    BOOK = "book"  # automatic call, key 2, nobody free: a specialist calls back
    TALKED = "talked"  # a specialist talked: their contact result to set
    ABANDONED = "abandoned"
    RETRY = "retry"  # the retry rules (three calls, next window, …)


@dataclass(frozen=True, slots=True)
class AttemptFacts:
    """Everything `decide` needs, as plain values."""

    attempt_id: str
    mode: str
    campaign_kind: str
    number: str
    specialist_id: int | None
    seat: str | None
    lead_id: int
    lead_kind: str
    lead_status: str
    owner_id: int | None
    callback_at: datetime | None
    next_attempt_at: datetime | None
    phone_id: int | None
    tz: str
    history: Sequence[RetryAttempt] = ()
    free_specialist: int | None = None  # least loaded, for a booked callback with no owner


@dataclass(frozen=True, slots=True)
class Decision:
    route: Route
    reason: str
    contact_result: str | None
    next_at: datetime | None
    closed: bool
    talked: bool  # the seat wraps up (a specialist talked with the customer)
    book_specialist: bool = False
    accuracy: str | None = None  # the phone's new accuracy, if it changes
    specialist_id: int | None = None  # the attempt's specialist after the call
    seat: str | None = None
    owner_id: int | None = None  # the lead's owner after the call
    distributed_on: date | None = None  # set when the owner changes
    status: str | None = None  # the lead's status set by the rule (closing comes after)
    callback_at: datetime | None = None
    set_callback_at: bool = False
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def inaccurate(self) -> bool:
        return self.accuracy == Accuracy.INACCURATE.value


def route(f: AttemptFacts, fin: Finished) -> Route:
    talked = fin.outcome in ANSWERED_OUTCOMES or (fin.answered and fin.bridged)
    automatic = f.mode == DialMode.AUTOMATIC.value
    if f.campaign_kind == "reminder":
        return Route.REMINDER
    simple = {NOT_SENT: Route.NOT_SENT, SKIPPED: Route.SKIPPED, ENDED_BY_PBX: Route.ENDED_BY_PBX}
    if fin.outcome in simple:
        return simple[fin.outcome]
    if automatic and talked and fin.key_pressed in ("1", "2"):
        if fin.key_pressed == "1":
            return Route.CONFIRMED
        return Route.CONNECTED if fin.bridged and fin.specialist_id is not None else Route.BOOK
    if not automatic and talked:
        return Route.TALKED
    return Route.ABANDONED if fin.outcome == ABANDONED else Route.RETRY


@dataclass(slots=True)
class _Rule:
    """What one rule says, before the common steps (unknown fate, closing, messages)."""

    reason: str
    next_at: datetime | None
    contact: str | None = None
    closed: bool = False
    accuracy: str | None = None
    book: bool = False
    connected: bool = False
    owner_id: int | None = None
    status: str | None = None
    callback_at: datetime | None = None
    set_callback_at: bool = False


def _local_day(now: datetime, tz: str) -> date:
    return now.astimezone(zone(tz)).date()


def _key_rule(
    r: Route, f: AttemptFacts, fin: Finished, now: datetime, hours: CallingHours
) -> _Rule:
    """Keys 1 and 2 of an automatic callback call."""
    if r is Route.CONFIRMED:
        return _Rule(
            "callback: customer pressed 1 (documents received, details correct)",
            None,
            "confirmed",
            closed=True,
            accuracy=Accuracy.ACCURATE.value if f.phone_id is not None else None,
        )
    if r is Route.CONNECTED:
        # Connected to a free specialist during the call: their lead now, and their contact
        # result to set (dispose), like any call a specialist answered. Until they set it the
        # lead stays in their queue as a booked callback.
        next_at = hours.next_day_start(now, f.tz)
        return _Rule(
            f"callback: customer pressed 2 and was connected to {fin.seat or 'a seat'}: "
            "answered: waiting for the specialist's contact result",
            next_at,
            connected=True,
            owner_id=fin.specialist_id,
            status=LeadStatus.ASSIGNED.value,
            callback_at=next_at,
            set_callback_at=True,
        )
    slot = hours.next_slots(now, 1, f.tz)[0].start
    when, why = appointment_time(slot, hours, f.tz)
    owner = f.owner_id or f.free_specialist
    return _Rule(
        f"callback: customer pressed 2 (talk to a person): {why}",
        when,
        "callback",
        book=True,
        owner_id=owner,
        status=LeadStatus.SCHEDULED.value if owner is not None else None,
        callback_at=when,
        set_callback_at=True,
    )


def _retry_rule(
    f: AttemptFacts, fin: Finished, now: datetime, hours: CallingHours, retry: RetryConfig
) -> _Rule:
    ro = retry_outcome(fin)
    if f.mode == DialMode.AUTOMATIC.value and ro is RetryOutcome.ANSWERED:
        ro = RetryOutcome.NO_ANSWER  # nobody pressed a key: not reached
    d = next_attempt(
        ro,
        at=now,
        history=list(f.history),
        policy=retry.for_lead(f.lead_kind, appointment=f.callback_at is not None),
        hours=hours,
        tz=f.tz,
        phone=f.number,
    )
    return _Rule(
        d.reason,
        d.next_at,
        (d.contact_result or "unreachable") if d.close_lead else d.contact_result,
        closed=d.close_lead,
        accuracy=Accuracy.INACCURATE.value
        if d.mark_inaccurate and f.phone_id is not None
        else None,
    )


def _rule(
    r: Route,
    f: AttemptFacts,
    fin: Finished,
    now: datetime,
    hours: CallingHours,
    retry: RetryConfig,
) -> _Rule:
    tz = f.tz
    if r is Route.REMINDER:
        return _Rule(f"reminder call: {fin.outcome}", f.next_attempt_at)
    if r is Route.NOT_SENT:
        return _Rule(
            fin.reason or "calling window closed at send time: not dialled",
            fin.retry_at or hours.next_open(now, tz),
        )
    if r is Route.SKIPPED:
        return _Rule(fin.reason or "skipped in preview", hours.next_window_start(now, tz))
    if r is Route.ENDED_BY_PBX:
        # Due again at once: the engine dials nothing on that PBX until its link is back.
        return _Rule(
            fin.reason or "ended by the PBX: not a customer outcome", hours.next_open(now, tz)
        )
    if r in (Route.CONFIRMED, Route.CONNECTED, Route.BOOK):
        return _key_rule(r, f, fin, now, hours)
    if r is Route.TALKED:
        # The specialist logs the result; until then the lead rests until the next day.
        return _Rule(
            "answered: waiting for the specialist's contact result",
            hours.next_day_start(now, tz),
        )
    if r is Route.ABANDONED:
        return _Rule(
            fin.reason or "abandoned: no seat answered in time", hours.next_window_start(now, tz)
        )
    return _retry_rule(f, fin, now, hours, retry)


def decide(
    f: AttemptFacts,
    fin: Finished,
    *,
    now: datetime,
    hours: CallingHours,
    retry: RetryConfig,
) -> Decision:
    """The decision for a finished attempt, and the outbox messages it publishes."""
    r = route(f, fin)
    rule = _rule(r, f, fin, now, hours, retry)
    reason, next_at, contact = rule.reason, rule.next_at, rule.contact
    if fin.unknown:
        reason = (
            fin.reason
            or "fate unknown after a reconnect or restart: not redialled before the next window"
        )
        next_at = hours.next_window_start(now, f.tz)
        contact = None
    reminder = f.campaign_kind == "reminder"
    status = rule.status or f.lead_status
    callback_at, set_callback = rule.callback_at, rule.set_callback_at
    if not reminder and rule.closed:
        status = LeadStatus.CLOSED.value
        if contact != "callback":
            callback_at, set_callback = None, True
    owner = f.owner_id
    distributed_on = None
    if rule.owner_id is not None and rule.owner_id != f.owner_id:
        owner, distributed_on = rule.owner_id, _local_day(now, f.tz)
    specialist, seat = f.specialist_id, f.seat
    if rule.connected:
        specialist, seat = fin.specialist_id, fin.seat or f.seat
    talked = fin.outcome in ANSWERED_OUTCOMES or (fin.answered and fin.bridged)
    decision = Decision(
        r,
        reason,
        contact,
        next_at,
        rule.closed,
        rule.connected if f.mode == DialMode.AUTOMATIC.value else talked,
        book_specialist=rule.book,
        accuracy=rule.accuracy,
        specialist_id=specialist,
        seat=seat,
        owner_id=owner,
        distributed_on=distributed_on,
        status=status,
        callback_at=callback_at,
        set_callback_at=set_callback,
    )
    decision.messages.extend(_messages(f, fin, decision, now))
    return decision


def _messages(
    f: AttemptFacts, fin: Finished, d: Decision, now: datetime
) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if d.accuracy is not None:
        out.append(
            (
                "phone.accuracy",
                {"phone_id": f.phone_id, "accuracy": d.accuracy, "reason": d.reason},
            )
        )
    out.append(
        (
            "attempt.result",
            {
                "attempt_id": f.attempt_id,
                "lead_id": f.lead_id,
                "specialist_id": d.specialist_id,
                "number": f.number,
                "mode": f.mode,
                "campaign_kind": f.campaign_kind,
                "outcome": fin.outcome,
                "cause": fin.cause,
                "tech_cause": fin.tech_cause,
                "dial_status": fin.dial_status,
                "ring_seconds": fin.ring_seconds,
                "talk_seconds": fin.talk_seconds,
                "key_pressed": fin.key_pressed,
                "recording": fin.recording,
                "unknown": fin.unknown,
                "contact_result": d.contact_result,
                "next_attempt_at": d.next_at.isoformat() if d.next_at and not d.closed else None,
                "reason": d.reason,
                "ended_at": now.isoformat(),
            },
        )
    )
    reminder = f.campaign_kind == "reminder"
    if d.contact_result is not None and not reminder:
        out.append(
            (
                "lead.contact_result",
                {
                    "lead_id": f.lead_id,
                    "contact_result": d.contact_result,
                    "by": "dialer",
                    "attempt_id": f.attempt_id,
                    "reason": d.reason,
                },
            )
        )
    if d.status is not None and d.status != f.lead_status and not reminder:
        out.append(
            (
                "lead.status",
                {"lead_id": f.lead_id, "from": f.lead_status, "to": d.status, "reason": d.reason},
            )
        )
    return out


__all__ = [
    "ABANDONED",
    "ANSWERED_OUTCOMES",
    "ENDED_BY_PBX",
    "NOT_SENT",
    "SKIPPED",
    "UNKNOWN",
    "AttemptFacts",
    "Decision",
    "Finished",
    "Route",
    "decide",
    "retry_outcome",
    "route",
]
