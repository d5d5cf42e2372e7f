"""What a call came to: the outcome vocabulary of one attempt, the facts it is decided from
(`CallFacts`), the pure classification (`classify`, `explain`), who hung up
(`hangup_party`), and the final word the call tracker gives (`CallResult`, `KeyPress`).
No I/O, no state: `dialer.calls` feeds it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from schedules.retry import Outcome  # the one outcome vocabulary

STATE_UP = 6
STATE_RINGING = 5


class Mode(enum.StrEnum):
    SEAT_FIRST = "seat_first"  # the seat is originated; the dialplan dials the customer
    CUSTOMER_FIRST = "customer_first"  # the customer is originated; the dialplan dials a seat
    APPLICATION = "application"  # the customer is originated into an IVR / playback, no seat


class Party(enum.StrEnum):
    """Who ended an answered call (`hangup_party`)."""

    CUSTOMER = "customer"
    SEAT = "seat"
    PBX = "pbx"  # our dialplan or application: a message played to its end, Hangup()


class CallState(enum.StrEnum):
    ORIGINATING = "originating"
    DIALLING = "dialling"
    RINGING = "ringing"
    ANSWERED = "answered"
    BRIDGED = "bridged"
    ENDED = "ended"
    FAILED = "failed"
    UNKNOWN = "unknown"


RANK = {
    CallState.ORIGINATING: 0,
    CallState.DIALLING: 1,
    CallState.RINGING: 2,
    CallState.ANSWERED: 3,
    CallState.BRIDGED: 4,
    CallState.ENDED: 5,
    CallState.FAILED: 5,
    CallState.UNKNOWN: 5,
}

DEFAULT_EARLY_HANGUP_SECONDS = 2.0

# --- classification (pure) ----------------------------------------------------------------

_TECH_OUTCOME = {
    486: Outcome.BUSY,
    600: Outcome.BUSY,
    603: Outcome.BUSY,  # declined
    480: Outcome.UNREACHABLE,  # temporarily unavailable: switched off / no coverage
    404: Outcome.WRONG_NUMBER,
    410: Outcome.WRONG_NUMBER,
    484: Outcome.WRONG_NUMBER,
    604: Outcome.WRONG_NUMBER,
    500: Outcome.CONGESTION,
    502: Outcome.CONGESTION,
    503: Outcome.CONGESTION,
    504: Outcome.CONGESTION,
    408: Outcome.NO_ANSWER,
    487: Outcome.NO_ANSWER,
}

# Q.850 causes.
_CAUSE_OUTCOME = {
    17: Outcome.BUSY,  # user busy
    21: Outcome.BUSY,  # call rejected
    19: Outcome.NO_ANSWER,  # user alerting, no answer (480 is checked first)
    18: Outcome.UNREACHABLE,  # no user responding
    20: Outcome.UNREACHABLE,  # subscriber absent
    27: Outcome.UNREACHABLE,  # destination out of order
    1: Outcome.WRONG_NUMBER,  # unallocated (unassigned) number
    3: Outcome.WRONG_NUMBER,  # no route to destination
    22: Outcome.WRONG_NUMBER,  # number changed
    28: Outcome.WRONG_NUMBER,  # invalid number format
    34: Outcome.CONGESTION,  # circuit/channel congestion
    38: Outcome.CONGESTION,  # network out of order
    41: Outcome.CONGESTION,  # temporary failure
    42: Outcome.CONGESTION,  # switching equipment congestion
    44: Outcome.CONGESTION,
    47: Outcome.CONGESTION,  # resource unavailable
}

_DIAL_STATUS_OUTCOME = {
    "BUSY": Outcome.BUSY,
    "CONGESTION": Outcome.CONGESTION,
    "CHANUNAVAIL": Outcome.UNREACHABLE,
    "NOANSWER": Outcome.NO_ANSWER,
    "CANCEL": Outcome.NO_ANSWER,
}

# OriginateResponse Reason: 4 answered, 5 busy, 3 no answer / originate timeout, 8 congestion.
_REASON_OUTCOME = {5: Outcome.BUSY, 3: Outcome.NO_ANSWER, 8: Outcome.CONGESTION}

_CDR_OUTCOME = {
    "BUSY": Outcome.BUSY,
    "NO ANSWER": Outcome.NO_ANSWER,
    "CONGESTION": Outcome.CONGESTION,
    "FAILED": Outcome.FAILED,
}

REASON_ORIGINATE_TIMEOUT = 3


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What is known about one attempt when it ends: the input of `classify`."""

    originate_response: str | None = None  # "Success" / "Failure" / None (not seen)
    originate_reason: int | None = None
    sync_error: str | None = None  # the Originate action itself got `Response: Error`
    customer_dialled: bool = False  # a customer channel existed
    answered: bool = False
    cause: int | None = None  # the customer's Q.850 cause (non-zero half preferred)
    tech_cause: int | None = None  # the SIP status code (PJSIP)
    dial_status: str | None = None  # DialStatus of the dial that reached the customer
    cdr_disposition: str | None = None
    talk_seconds: float | None = None
    # Who asked for the hang-up that ended the call (the first HangupRequest or
    # SoftHangupRequest of the call, never the order of the Hangup events); None: not seen.
    hung_up_by: Party | None = None
    # The last PLAYBACKSTATUS (VarSet) on the customer's channel: SUCCESS when a message
    # played to its end (04_automatic_callback_playback), FAILED when its file is missing.
    playback_status: str | None = None
    hung_up_by_action: bool = False
    lost: bool = False  # the call's events were lost (resync without its channels)


def classify(
    facts: CallFacts, early_hangup_seconds: float = DEFAULT_EARLY_HANGUP_SECONDS
) -> Outcome:
    """The outcome of an attempt, from accumulated facts (never from event order).

    Precedence, most specific first: a sync Originate error; lost events (UNKNOWN, the
    partial facts stay in the result); a hangup the dialer asked for;
    an answer (early if the talk time is below `early_hangup_seconds`); the Originate timeout
    (Reason 3: on PJSIP Asterisk reports it as cause 19 with a derived TechCause 480, which
    must not read as "switched off"); the SIP code; the Q.850 cause; the DialStatus; the
    OriginateResponse Reason; the CDR disposition. DialStatus alone is not enough on PJSIP:
    NOANSWER covers a timeout (cause 0), a 480 (cause 19) and a 404 (cause 1)."""
    return explain(facts, early_hangup_seconds)[0]


def explain(
    facts: CallFacts, early_hangup_seconds: float = DEFAULT_EARLY_HANGUP_SECONDS
) -> tuple[Outcome, str]:
    """`classify`, with the rule that decided, in words (for "why was this call busy?")."""
    if facts.sync_error is not None:
        return Outcome.FAILED, f"Originate refused: {facts.sync_error}"
    if facts.lost:
        return Outcome.UNKNOWN, "events lost (the call vanished across a reconnect or timed out)"
    if facts.hung_up_by_action:
        return Outcome.HUNG_UP_BY_ACTION, "hung up by an AMI Hangup action"
    if facts.answered:
        short = facts.talk_seconds is not None and facts.talk_seconds < early_hangup_seconds
        if facts.hung_up_by is Party.PBX and facts.playback_status == "FAILED":
            return (
                Outcome.FAILED,
                "answered, but the message did not play (PLAYBACKSTATUS=FAILED: is the prompt "
                "installed on the PBX? see docs/asterisk.md)",
            )
        if facts.hung_up_by is Party.PBX:
            return Outcome.ANSWERED, "answered; the PBX ended the call (its message played out)"
        if short and facts.hung_up_by in (Party.CUSTOMER, None):
            return (
                Outcome.ANSWERED_HUNG_UP_EARLY,
                f"answered, talk {facts.talk_seconds:.1f} s < {early_hangup_seconds:g} s",
            )
        if facts.hung_up_by is Party.SEAT:
            return Outcome.ANSWERED, "answered; the seat ended the call"
        return Outcome.ANSWERED, "the customer's channel answered"
    if not facts.customer_dialled:
        # Nothing reached the customer: the originate (or, seat-first, the seat) failed.
        if facts.originate_response is None:
            return Outcome.UNKNOWN, "no customer channel and no OriginateResponse"
        return (
            Outcome.FAILED,
            f"no customer channel; OriginateResponse {facts.originate_response} "
            f"Reason {facts.originate_reason}",
        )
    if facts.originate_reason == REASON_ORIGINATE_TIMEOUT:
        return Outcome.NO_ANSWER, "OriginateResponse Reason 3 (originate timeout)"
    if facts.tech_cause is not None and facts.tech_cause in _TECH_OUTCOME:
        return _TECH_OUTCOME[facts.tech_cause], f"SIP {facts.tech_cause} (TechCause)"
    if facts.cause and facts.cause in _CAUSE_OUTCOME:
        return _CAUSE_OUTCOME[facts.cause], f"hangup cause {facts.cause}"
    if facts.dial_status is not None and facts.dial_status in _DIAL_STATUS_OUTCOME:
        return _DIAL_STATUS_OUTCOME[facts.dial_status], f"DialStatus {facts.dial_status}"
    if facts.originate_reason is not None and facts.originate_reason in _REASON_OUTCOME:
        reason = facts.originate_reason
        return _REASON_OUTCOME[reason], f"OriginateResponse Reason {reason}"
    if facts.cdr_disposition is not None and facts.cdr_disposition in _CDR_OUTCOME:
        return _CDR_OUTCOME[facts.cdr_disposition], f"Cdr {facts.cdr_disposition}"
    if facts.originate_response == "Failure":
        return Outcome.FAILED, f"OriginateResponse Failure Reason {facts.originate_reason}"
    return Outcome.UNKNOWN, "nothing decisive was seen"


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyPress:
    """A key the dialplan read (UserEvent with `Key:`) on a call whose customer is still on
    the line: what `CallTracker.on_key` receives. `channel` is the channel that ran the
    dialplan (the one to Setvar/Redirect); `at` is the tracker's `now`."""

    attempt_id: str
    key: str
    channel: str
    uniqueid: str
    mode: Mode | None
    at: float | None


@dataclass(frozen=True, slots=True)
class CallResult:
    """The final word on one attempt."""

    attempt_id: str | None  # None only for a call that no originate could be found for
    seat: str | None
    number: str | None
    mode: Mode | None
    outcome: Outcome
    cause: int | None
    cause_txt: str | None
    tech_cause: int | None
    dial_status: str | None
    originate_response: str | None
    originate_reason: int | None
    answered: bool
    bridged: bool
    ring_seconds: float | None
    talk_seconds: float | None
    key_pressed: str | None
    digits: str
    recording: str | None
    linkedid: str | None
    uniqueids: tuple[str, ...]
    channels: tuple[str, ...]
    started_at: float | None
    ended_at: float | None
    error: str | None = None
    why: str = ""  # the classification rule that decided, in words
    # The seat device the customer was bridged with when the seat was not the originated
    # side (customer first; an automatic call handed to a seat, callback key 2).
    connected_seat: str | None = None
    facts: CallFacts = field(default_factory=CallFacts, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt_id": self.attempt_id,
            "seat": self.seat,
            "number": self.number,
            "mode": None if self.mode is None else self.mode.value,
            "outcome": self.outcome.value,
            "why": self.why,
            "cause": self.cause,
            "cause_txt": self.cause_txt,
            "tech_cause": self.tech_cause,
            "dial_status": self.dial_status,
            "originate_response": self.originate_response,
            "originate_reason": self.originate_reason,
            "answered": self.answered,
            "bridged": self.bridged,
            "ring_seconds": _round(self.ring_seconds),
            "talk_seconds": _round(self.talk_seconds),
            "key_pressed": self.key_pressed,
            "connected_seat": self.connected_seat,
            "recording": self.recording,
            "linkedid": self.linkedid,
            "uniqueids": list(self.uniqueids),
            "channels": list(self.channels),
            "error": self.error,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def hangup_party(channel: str, soft: bool, customer: bool) -> Party:
    """Who asked for a hang-up, from the request that started it: the first
    `HangupRequest` (`soft=False`) or `SoftHangupRequest` (`soft=True`) of the call, on
    `channel` (a customer channel if `customer`, else the seat's).

    A HangupRequest is queued by a channel's driver when its far end went away: the SIP BYE
    of the phone behind a PJSIP channel, or the other half of a Local pair. A
    SoftHangupRequest is the channel's own dialplan or application hanging it up (Hangup(),
    the end of a Dial or a bridge). A Local `;2` half runs the device's own dialplan (the
    lab's customers and seats) and its far end is our side, so there it is the reverse.
    A Hangup with no request before it (the originate's application returned) counts as
    soft. The real traces show why the order of the Hangup events cannot say this: after a
    customer's BYE the seat's Hangup came first in some calls (pjsip_key2_redirect_to_seat,
    pjsip_chanspy_barge), while the HangupRequest was always on the carrier channel first
    (pjsip_customer_hangs_up_first_race)."""
    device = Party.CUSTOMER if customer else Party.SEAT
    device_side = soft if channel.endswith(";2") else not soft
    return device if device_side else Party.PBX


__all__ = [
    "DEFAULT_EARLY_HANGUP_SECONDS",
    "RANK",
    "REASON_ORIGINATE_TIMEOUT",
    "STATE_RINGING",
    "STATE_UP",
    "CallFacts",
    "CallResult",
    "CallState",
    "KeyPress",
    "Mode",
    "Outcome",
    "Party",
    "classify",
    "explain",
    "hangup_party",
]
