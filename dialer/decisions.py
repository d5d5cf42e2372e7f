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
from dialer import pool
from dialer.models import DialMode
from dialer.outcomes import (
    ABANDONED,
    ANSWERED_OUTCOMES,
    ENDED_BY_PBX,
    NOT_SENT,
    SKIPPED,
    automatic_reached,
    counts_as_call,
)
from schedules.callbacks import book_callback, callback_time
from schedules.models import DistributionRun
from schedules.ownership import owner_change
from schedules.retry import Attempt as RetryAttempt
from schedules.retry import Outcome as RetryOutcome
from schedules.retry import RetryConfig, next_attempt
from schedules.windows import CallingHours, zone


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
    # A pooled campaign's call (dialer.pool): the specialist who took it becomes the owner;
    # an abandoned one is booked to `free_specialist` (a pool member) on a later day.
    pooled: bool = False


@dataclass(slots=True)
class LeadDraft:
    """The lead's fields a rule may change, as plain values: the shared rules
    (`schedules.callbacks.book_callback`, `schedules.ownership.owner_change`) apply to it as
    they would to the lead, and `dialer.results` copies the outcome onto the row."""

    id: int
    status: str
    owner_id: int | None
    distributed_on: date | None
    callback_at: datetime | None
    next_attempt_at: datetime | None


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
    counts_as_call: bool = True  # toward the lead's attempt count (dialer.outcomes)
    # Owner changes to record (schedules.ownership: audited like the daily deal).
    audit: list[DistributionRun] = field(default_factory=list)
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def inaccurate(self) -> bool:
        return self.accuracy == Accuracy.INACCURATE.value


def route(f: AttemptFacts, fin: Finished) -> Route:
    talked = fin.outcome in ANSWERED_OUTCOMES or (fin.answered and fin.bridged)
    automatic = f.mode == DialMode.AUTOMATIC.value
    if f.campaign_kind == "reminder":
        return Route.REMINDER
    simple: dict[str, Route] = {
        NOT_SENT: Route.NOT_SENT,
        SKIPPED: Route.SKIPPED,
        ENDED_BY_PBX: Route.ENDED_BY_PBX,
    }
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
    audit: list[DistributionRun] = field(default_factory=list)


def _local_day(now: datetime, tz: str) -> date:
    return now.astimezone(zone(tz)).date()


def _key_rule(
    r: Route,
    f: AttemptFacts,
    fin: Finished,
    now: datetime,
    hours: CallingHours,
    lead: LeadDraft,
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
    audit: list[DistributionRun] = []
    if r is Route.CONNECTED:
        assert fin.specialist_id is not None  # route() checked it
        # Connected to a free specialist during the call: their lead now, and their contact
        # result to set (dispose), like any call a specialist answered. Until they set it the
        # lead stays in their queue as a booked callback.
        run = owner_change(
            lead,
            fin.specialist_id,
            day=_local_day(now, f.tz),
            reason="callback key 2: connected to the specialist during the call",
            now=now,
        )
        audit += [run] if run is not None else []
        next_at = hours.next_day_start(now, f.tz)
        lead.status = LeadStatus.ASSIGNED.value
        lead.callback_at = next_at
        return _Rule(
            f"callback: customer pressed 2 and was connected to {fin.seat or 'a seat'}: "
            "answered: waiting for the specialist's contact result",
            next_at,
            connected=True,
            audit=audit,
        )
    when, why = callback_time(None, now=now, hours=hours, tz=f.tz)
    owner = f.owner_id or f.free_specialist
    if owner is not None and f.owner_id is None:
        run = owner_change(
            lead,
            owner,
            day=_local_day(now, f.tz),
            reason="callback key 2: callback booked to the least-loaded specialist",
            now=now,
        )
        audit += [run] if run is not None else []
    book_callback(lead, when)
    return _Rule(
        f"callback: customer pressed 2 (talk to a person): {why}",
        when,
        "callback",
        book=True,
        audit=audit,
    )


def _retry_rule(
    f: AttemptFacts, fin: Finished, now: datetime, hours: CallingHours, retry: RetryConfig
) -> _Rule:
    ro = retry_outcome(fin)
    if ro is RetryOutcome.ANSWERED and not automatic_reached(f.mode, fin.key_pressed):
        ro = RetryOutcome.NO_ANSWER
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


def _pool_answered(
    f: AttemptFacts, fin: Finished, now: datetime, hours: CallingHours, lead: LeadDraft
) -> _Rule:
    """A pool call answered and connected: the lead is now the specialist's who took it (the
    one ownership rule, audited), waiting in their queue for their contact result."""
    assert fin.specialist_id is not None
    run = pool.answered_lead(lead, fin.specialist_id, day=_local_day(now, f.tz), now=now)
    if lead.status not in (LeadStatus.SCHEDULED.value, LeadStatus.CLOSED.value):
        lead.status = LeadStatus.ASSIGNED.value
    return _Rule(
        f"pooled call answered and connected to {fin.seat or 'a seat'}: "
        "waiting for the specialist's contact result",
        hours.next_day_start(now, f.tz),
        connected=True,
        audit=[run] if run is not None else [],
    )


def _pool_abandoned(f: AttemptFacts, now: datetime, hours: CallingHours, lead: LeadDraft) -> _Rule:
    """A pool call answered with nobody free within 2 s: the customer heard the pool's
    message naming the caller. Not called by the pacer again today: an appointment on a
    later day in a pool specialist's queue (the one booking and ownership rules)."""
    when = pool.abandon_appointment(now, hours, f.tz)
    owner = f.owner_id or f.free_specialist
    audit: list[DistributionRun] = []
    if owner is not None:
        run = pool.abandoned_lead(lead, owner, when=when, day=_local_day(now, f.tz), now=now)
        audit += [run] if run is not None else []
    else:
        book_callback(lead, when)
    return _Rule(
        "abandoned: no specialist of the pool free within 2 s (the pool's message played); "
        f"appointment {when.isoformat()}",
        when,
        audit=audit,
    )


def _rule(
    r: Route,
    f: AttemptFacts,
    fin: Finished,
    now: datetime,
    hours: CallingHours,
    retry: RetryConfig,
    lead: LeadDraft,
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
        return _key_rule(r, f, fin, now, hours, lead)
    if r is Route.TALKED and f.pooled and fin.specialist_id is not None:
        return _pool_answered(f, fin, now, hours, lead)
    if r is Route.TALKED:
        # The specialist logs the result; until then the lead rests until the next day.
        return _Rule(
            "answered: waiting for the specialist's contact result",
            hours.next_day_start(now, tz),
        )
    if r is Route.ABANDONED and f.pooled:
        return _pool_abandoned(f, now, hours, lead)
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
    lead = LeadDraft(f.lead_id, f.lead_status, f.owner_id, None, f.callback_at, f.next_attempt_at)
    rule = _rule(r, f, fin, now, hours, retry, lead)
    reason, next_at, contact = rule.reason, rule.next_at, rule.contact
    if fin.unknown:
        reason = (
            fin.reason
            or "fate unknown after a reconnect or restart: not redialled before the next window"
        )
        next_at = hours.next_window_start(now, f.tz)
        contact = None
    reminder = f.campaign_kind == "reminder"
    status = lead.status
    callback_at = lead.callback_at
    if not reminder and rule.closed:
        status = LeadStatus.CLOSED.value
        if contact != "callback":
            callback_at = None
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
        owner_id=lead.owner_id,
        distributed_on=lead.distributed_on,
        status=status,
        callback_at=callback_at,
        set_callback_at=callback_at != f.callback_at,
        counts_as_call=counts_as_call(fin.outcome),
        audit=rule.audit,
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
    "AttemptFacts",
    "Decision",
    "Finished",
    "LeadDraft",
    "Route",
    "decide",
    "retry_outcome",
    "route",
]
