"""Retry timing: from a call's outcome and the lead's history, when to call next, or stop.

Pure. Every decision carries a human-readable reason (shown to supervisors and written to the
lead), and every time it returns is inside a calling window of the campaign's `CallingHours`.

Two families of policy ship as defaults (both configurable per campaign kind):
- callback numbers (post-underwriting 承保回访, and customers' own appointments 预约回拨): not
  answered / busy / switched off -> the next calling day; the third call in total without
  reaching the customer marks the number inaccurate (不准确) and closes the lead as unreachable;
  a number the network reports unallocated is inaccurate at once;
- renewal work (renewal, lapsed, trial): per outcome (busy -> +30 min, no answer -> next
  window, switched off -> next day …) with a per-number daily cap.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from schedules.windows import CallingHours, fmt_local


class Outcome(enum.StrEnum):
    """The one vocabulary of a call's outcome: what the call tracker classifies
    (`dialer.calls`), what the engine adds, what the retry rules take, and what is stored
    (`call_attempts.outcome`: the values, unchanged). Which of them count as calls and
    which reached the customer: `dialer.outcomes`."""

    ANSWERED = "answered"
    ANSWERED_HUNG_UP_EARLY = "answered_hung_up_early"  # the customer hung up within seconds
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    UNREACHABLE = "unreachable"  # switched off, out of coverage (cause 20, 18, SIP 480)
    SWITCHED_OFF = "switched_off"
    WRONG_NUMBER = "wrong_number"  # unallocated / 空号 (cause 1, SIP 404)
    FAILED = "failed"  # our side: originate refused, channel unavailable
    HUNG_UP_BY_ACTION = "hung_up_by_action"  # the dialer (or an operator) hung it up
    UNKNOWN = "unknown"  # fate not known (events lost across a reconnect, a crash)
    # Added by the engine, never by the tracker:
    NOT_SENT = "not_sent"  # the window closed between claim and send: nothing was dialled
    ABANDONED = "abandoned"  # customer first: answered, but no seat took the call in time
    SKIPPED = "skipped"  # preview: the specialist skipped the lead
    ENDED_BY_PBX = "ended_by_pbx"  # the PBX itself ended the call (Asterisk shutting down)

    @classmethod
    def parse(cls, value: str | Outcome) -> Outcome:
        if isinstance(value, Outcome):
            return value
        key = value.strip().lower().replace("-", "_").replace(" ", "_")
        try:
            return cls(_ALIASES.get(key, key))
        except ValueError:
            raise ValueError(
                f"unknown call outcome {value!r}; known: {', '.join(o.value for o in cls)}"
            ) from None


_ALIASES = {
    "noanswer": "no_answer",
    "powered_off": "switched_off",
    "switchedoff": "switched_off",
    "unallocated": "wrong_number",
    "invalid_number": "wrong_number",
    "wrongnumber": "wrong_number",
    "chanunavail": "failed",
    "error": "failed",
}

# The standard contact result (标准联系结果) the dialer logs for an outcome; None = nothing.
CONTACT_RESULT = {
    Outcome.BUSY: "busy",
    Outcome.NO_ANSWER: "no_answer",
    Outcome.SWITCHED_OFF: "switched_off",
    Outcome.UNREACHABLE: "switched_off",
    Outcome.WRONG_NUMBER: "wrong_number",
}

# Calls one number may get in one local day, every campaign together (reminders included):
# the renewal desk's cap, and the dialer's claim rule (`DialerConfig.daily_calls_per_number`).
DAILY_CALLS_PER_NUMBER = 3

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


def ordinal(n: int) -> str:
    return _ORDINALS[n - 1] if 0 < n <= len(_ORDINALS) else f"{n}th"


# Why a number was marked inaccurate (stored as the phone's accuracy_reason); the branch
# e-mail reads them back with `inaccurate_cause`.
NOT_IN_SERVICE = "number not in service (unallocated/wrong): marked inaccurate"
_UNANSWERED_SUFFIX = " unanswered call: marked inaccurate"


def unanswered_reason(n: int) -> str:
    return f"{ordinal(n)}{_UNANSWERED_SUFFIX}"


def inaccurate_cause(reason: str | None) -> tuple[str, int | None]:
    """("not_in_service", None), ("unanswered", n) or ("other", None) for a reason written
    by `next_attempt` when it marked a number inaccurate."""
    if reason == NOT_IN_SERVICE:
        return "not_in_service", None
    if reason and reason.endswith(_UNANSWERED_SUFFIX):
        word = reason[: -len(_UNANSWERED_SUFFIX)]
        if word in _ORDINALS:
            return "unanswered", _ORDINALS.index(word) + 1
        if word.endswith("th") and word[:-2].isdigit():
            return "unanswered", int(word[:-2])
    return "other", None


class Action(enum.StrEnum):
    LATER = "later"  # `delay` after the attempt, or the next window's start if that is closed
    NEXT_WINDOW = "next_window"  # the start of the next window (never the one in progress)
    NEXT_DAY = "next_day"  # the first window of the next calling day
    STOP = "stop"  # end of trying (answered: the specialist / IVR logs the result)
    INACCURATE = "inaccurate"  # the number is inaccurate (不准确); no more calls to it


@dataclass(frozen=True)
class Rule:
    action: Action
    delay: timedelta = timedelta(0)
    # Whether the attempt counts as a call that did not reach the customer (for the
    # three-call rule). Failures on our side and unknown fates do not.
    counts: bool = True


@dataclass(frozen=True)
class RetryPolicy:
    name: str
    rules: Mapping[Outcome, Rule]
    max_unanswered: int | None = None  # the Nth unanswered call marks the number inaccurate
    close_on_inaccurate: bool = False  # the lead closes as unreachable (callbacks)
    daily_cap: int | None = None  # calls per number per local day

    def rule(self, outcome: Outcome) -> Rule:
        return self.rules.get(outcome, Rule(Action.NEXT_WINDOW, counts=False))


@dataclass(frozen=True)
class Attempt:
    at: datetime
    outcome: Outcome
    phone: str | int | None = None


@dataclass(frozen=True)
class Decision:
    next_at: datetime | None  # None: no more calls
    reason: str
    contact_result: str | None = None  # what the dialer logs for this attempt
    mark_inaccurate: bool = False  # set the phone's accuracy to 不准确
    close_lead: bool = False  # the lead closes as unreachable
    unanswered: int = 0  # unanswered calls so far, this one included

    @property
    def done(self) -> bool:
        return self.next_at is None


CALLBACK_POLICY = RetryPolicy(
    name="callback",
    rules={
        Outcome.ANSWERED: Rule(Action.STOP),
        Outcome.NO_ANSWER: Rule(Action.NEXT_DAY),
        Outcome.BUSY: Rule(Action.NEXT_DAY),
        Outcome.SWITCHED_OFF: Rule(Action.NEXT_DAY),
        Outcome.UNREACHABLE: Rule(Action.NEXT_DAY),
        Outcome.WRONG_NUMBER: Rule(Action.INACCURATE),
        Outcome.CONGESTION: Rule(Action.LATER, timedelta(minutes=10), counts=False),
        Outcome.FAILED: Rule(Action.LATER, timedelta(minutes=10), counts=False),
        Outcome.UNKNOWN: Rule(Action.NEXT_WINDOW, counts=False),
    },
    max_unanswered=3,
    close_on_inaccurate=True,
)

RENEWAL_POLICY = RetryPolicy(
    name="renewal",
    rules={
        Outcome.ANSWERED: Rule(Action.STOP),
        Outcome.BUSY: Rule(Action.LATER, timedelta(minutes=30)),
        Outcome.NO_ANSWER: Rule(Action.NEXT_WINDOW),
        Outcome.SWITCHED_OFF: Rule(Action.NEXT_DAY),
        Outcome.UNREACHABLE: Rule(Action.NEXT_DAY),
        # Renewal numbers that are wrong go to the "phones to look up" list; the lead stays.
        Outcome.WRONG_NUMBER: Rule(Action.INACCURATE),
        Outcome.CONGESTION: Rule(Action.LATER, timedelta(minutes=10), counts=False),
        Outcome.FAILED: Rule(Action.LATER, timedelta(minutes=10), counts=False),
        Outcome.UNKNOWN: Rule(Action.NEXT_WINDOW, counts=False),
    },
    daily_cap=DAILY_CALLS_PER_NUMBER,
)

APPOINTMENT = "appointment"  # pseudo-kind: a lead with a customer's own callback time


@dataclass(frozen=True)
class RetryConfig:
    """Retry policy per campaign kind (lead kind, or `appointment`)."""

    by_kind: Mapping[str, RetryPolicy] = field(
        default_factory=lambda: {
            "renewal": RENEWAL_POLICY,
            "lapsed": RENEWAL_POLICY,
            "trial": RENEWAL_POLICY,
            "callback": CALLBACK_POLICY,
            APPOINTMENT: CALLBACK_POLICY,
        }
    )
    default: RetryPolicy = RENEWAL_POLICY

    def for_lead(self, kind: str, *, appointment: bool = False) -> RetryPolicy:
        if appointment and APPOINTMENT in self.by_kind:
            return self.by_kind[APPOINTMENT]
        return self.by_kind.get(kind, self.default)


def _local(hours: CallingHours, when: datetime, tz: str | None) -> str:
    return fmt_local(when, tz or hours.tz)


def _unanswered(
    outcome: Outcome, history: Sequence[Attempt], policy: RetryPolicy, phone: str | int | None
) -> int:
    """Unanswered calls to this number since the customer was last reached, this one included."""
    unanswered = 0
    for a in history:
        if phone is not None and a.phone is not None and a.phone != phone:
            continue  # a corrected number starts afresh: the old number's failures are not its own
        if a.outcome is Outcome.ANSWERED:
            unanswered = 0
        elif policy.rule(a.outcome).counts:
            unanswered += 1
    if outcome is not Outcome.ANSWERED and policy.rule(outcome).counts:
        unanswered += 1
    return unanswered


def _retry_time(
    outcome: Outcome, rule: Rule, at: datetime, hours: CallingHours, tz: str | None
) -> tuple[datetime, str]:
    """When the rule's action calls again, and why (before the daily cap)."""
    if rule.action is Action.LATER:
        when = hours.clamp(at + rule.delay, tz)
        why = f"{outcome.value}: retry in {int(rule.delay.total_seconds() // 60)} min"
    elif rule.action is Action.NEXT_WINDOW:
        when = hours.next_window_start(at, tz)
        why = f"{outcome.value}: retry in the next window"
    else:
        when = hours.next_day_start(at, tz)
        why = f"{outcome.value}: retry on the next calling day"
    if rule.action is Action.LATER and when != at + rule.delay:
        why += " (window closed: next window)"
    return when, why


def _capped(
    outcome: Outcome,
    when: datetime,
    why: str,
    *,
    at: datetime,
    history: Sequence[Attempt],
    policy: RetryPolicy,
    hours: CallingHours,
    tz: str | None,
    phone: str | int | None,
) -> tuple[datetime, str]:
    """The retry moved to the next calling day when it would exceed the number's daily cap."""
    if policy.daily_cap is None or hours.local_date(when, tz) != hours.local_date(at, tz):
        return when, why
    same_day = hours.local_date(at, tz)
    today = 1 + sum(
        1
        for a in history
        if (phone is None or a.phone == phone) and hours.local_date(a.at, tz) == same_day
    )
    if today < policy.daily_cap:
        return when, why
    return hours.next_day_start(at, tz), (
        f"{outcome.value}: daily cap of {policy.daily_cap} calls to this number "
        "reached: retry on the next calling day"
    )


def next_attempt(
    outcome: Outcome | str,
    *,
    at: datetime,
    history: Sequence[Attempt],
    policy: RetryPolicy,
    hours: CallingHours,
    tz: str | None = None,
    phone: str | int | None = None,
) -> Decision:
    """Decide what follows an attempt that ended with `outcome` at `at`.

    `history` holds the lead's earlier attempts (not this one), oldest first.
    """
    outcome = Outcome.parse(outcome)
    if at.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC)")
    rule = policy.rule(outcome)
    result = CONTACT_RESULT.get(outcome)
    unanswered = _unanswered(outcome, history, policy, phone)

    if rule.action is Action.STOP:
        return Decision(None, f"{outcome.value}: no more automatic calls", result)
    if rule.action is Action.INACCURATE:
        return Decision(
            None,
            NOT_IN_SERVICE,
            result,
            mark_inaccurate=True,
            close_lead=policy.close_on_inaccurate,
            unanswered=unanswered,
        )
    if policy.max_unanswered is not None and unanswered >= policy.max_unanswered:
        return Decision(
            None,
            unanswered_reason(unanswered),
            "unreachable" if policy.close_on_inaccurate else result,
            mark_inaccurate=True,
            close_lead=policy.close_on_inaccurate,
            unanswered=unanswered,
        )
    when, why = _retry_time(outcome, rule, at, hours, tz)
    when, why = _capped(
        outcome, when, why, at=at, history=history, policy=policy, hours=hours, tz=tz, phone=phone
    )
    if policy.max_unanswered is not None and rule.counts:
        why += f" ({ordinal(unanswered)} of {policy.max_unanswered} unanswered calls)"
    return Decision(
        when.astimezone(UTC),
        f"{why}: {_local(hours, when, tz)}",
        result,
        unanswered=unanswered,
    )


def appointment_time(
    chosen: datetime, hours: CallingHours, tz: str | None = None
) -> tuple[datetime, str]:
    """A customer's own callback time (预约回拨): as chosen if inside calling hours, else the
    next window's start. The lead stays with the same specialist (the caller keeps owner_id)."""
    if chosen.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC)")
    when = hours.next_open(chosen, tz)
    if when == chosen:
        return when.astimezone(UTC), f"appointment at the customer's time {_local(hours, when, tz)}"
    return when.astimezone(UTC), (
        f"customer asked for {_local(hours, chosen, tz)}, outside calling hours: "
        f"{_local(hours, when, tz)}, the next window"
    )
