"""Call tracking: one state machine per dial attempt, fed with typed AMI events. No I/O.

An *attempt* is one Originate by the dialer, keyed by the dialer's attempt id (sent as the
Originate `ActionID`, optionally as `ChannelId`, and as the channel variable `ATTEMPT_ID`).
All channels Asterisk creates for one Originate share one Linkedid (the Uniqueid of the
originated channel, or the ChannelId), so the tracker gathers events by Linkedid into a
*call group* and binds the group to its attempt as soon as one of these is seen:

- a Linkedid equal to the ChannelId the attempt was registered with;
- `OriginateResponse` Success: its Uniqueid is the originated channel's, i.e. the Linkedid;
- `VarSet ATTEMPT_ID=<id>` on any channel of the group (the PJSIP traces set it);
- `OriginateResponse` Failure (Uniqueid `<unknown>`): its `Channel` is the dial string as
  sent, matched against the group's originated channel (`Local/<x>@ctx-0000000a;1` starts
  with `Local/<x>@ctx-`; or the originate's own DialBegin `DialString`).

Events arrive in no causal order (OriginateResponse before or after DialEnd, Cdr before
Newchannel, a Hangup before the OriginateResponse that explains it), so nothing is decided
per event: facts are accumulated and an attempt is finalized only when every channel of its
group has hung up *and* its OriginateResponse is in (or, for a failure without channels, at
the OriginateResponse). The outcome then comes from the pure `classify(facts)`.

Which channels are the customer's: in the seat-first flow, the destination of the dialplan
Dial (a DialBegin that has a `Channel:`); in the customer-first and application flows, the
originated channel. A Local destination brings its other half (`;1`/`;2`); the half that ran
Busy()/Hangup(N) (`;2`) carries the real cause while `;1` often says 0, so a non-zero cause
wins. PJSIP channels (`PJSIP/8001-…` seats, `PJSIP/carrier-…` customers) are single.

An automatic (application) call may be handed to a seat mid-call: on the callback's key 2 the
dialer Redirects the customer's channel to `connect-seat` (`dialer.transfer`), which dials a
seat from that channel. `on_key` tells the dialer when a key arrives while the customer is
still on the line; the seat leg then joins the call group (same Linkedid), and the result
names the seat the customer was bridged with (`connected_seat`), with the talk time counted
from that bridge.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dialer.ami import events as ev
from dialer.domain import CallBridged, PbxShuttingDown, RecordingNamed
from schedules.retry import Outcome  # the one outcome vocabulary

log = logging.getLogger(__name__)

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


_RANK = {
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


def _last_playback(group: _Group | None, customer_uids: set[str]) -> str | None:
    if group is None:
        return None
    statuses = [v for uid, v in group.playback_status.items() if uid in customer_uids]
    return statuses[-1] if statuses else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# --- internal state -----------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Channel:
    uniqueid: str
    name: str
    first_seen: float | None
    up_at: float | None = None
    bridged_at: float | None = None
    ringing: bool = False
    hung_up: bool = False
    hangup_at: float | None = None
    cause: int | None = None
    cause_txt: str | None = None
    tech_cause: int | None = None
    request_tech_cause: int | None = None
    cdr_disposition: str | None = None
    billable_seconds: int | None = None
    dtmf_received: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Dial:
    caller: str | None  # uniqueid of the caller; None for the originate itself
    dest: str
    dial_string: str | None
    begin_at: float | None
    status: str | None = None
    end_at: float | None = None
    ringing: bool = False


@dataclass(slots=True, eq=False)
class _Attempt:
    attempt_id: str
    mode: Mode | None
    seat: str | None
    number: str | None
    started_at: float | None
    dial_string: str | None = None  # the Originate's Channel
    channel_id: str | None = None
    expect_response: bool = True
    discovered: bool = False
    group: _Group | None = None
    state: CallState = CallState.ORIGINATING
    or_response: str | None = None
    or_reason: int | None = None
    or_at: float | None = None
    sync_error: str | None = None
    hangup_requested: bool = False
    last_activity: float | None = None
    ended_at: float | None = None  # when its channels were all gone (waiting for the OR)
    wanted_link: str | None = None  # the Linkedid it waits for, before that call is seen


@dataclass(slots=True, eq=False)
class _Group:
    linkedid: str
    created_at: float | None
    channels: dict[str, _Channel] = field(default_factory=dict)
    by_name: dict[str, str] = field(default_factory=dict)
    dials: list[_Dial] = field(default_factory=list)
    live: int = 0
    attempt: _Attempt | None = None
    state: CallState = CallState.ORIGINATING
    recording: str | None = None
    bridge_published: bool = False
    user_key: str | None = None
    ended_at: float | None = None
    seat_var: str | None = None  # SEAT / NUMBER variables, for attempts nobody registered
    # (uniqueid, soft) of the first HangupRequest/SoftHangupRequest, else of the first Hangup
    first_request: tuple[str, bool] | None = None
    playback_status: dict[str, str] = field(default_factory=dict)  # uniqueid -> last value
    number_var: str | None = None


def _partner(name: str) -> str | None:
    """The other half of a Local channel (`…;1` <-> `…;2`)."""
    if name.endswith(";1"):
        return name[:-1] + "2"
    if name.endswith(";2"):
        return name[:-1] + "1"
    return None


def _dial_string_of(channel_name: str) -> str:
    """`Local/8001@seats-00000000;1` -> `Local/8001@seats`; `PJSIP/8001-0000000a` -> `PJSIP/8001`."""
    base = channel_name.split(";", 1)[0]
    head, sep, tail = base.rpartition("-")
    if sep and len(tail) == 8 and all(c in "0123456789abcdef" for c in tail):
        return head
    return base


def _resource(dial_string: str | None) -> str | None:
    """`Local/13800000011@customers` -> `13800000011` (the user part); `PJSIP/8001` -> `8001`."""
    if not dial_string:
        return None
    res = dial_string.split("/", 1)[1] if "/" in dial_string else dial_string
    return res.split("@", 1)[0] or None


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


def infer_mode(
    exten: str | None, application: str | None, variables: dict[str, str] | None = None
) -> Mode:
    """How an Originate was meant, from what it carried (for attempts nobody registered):
    an Application means no dialplan; an Exten that is a phone number means the dialplan
    dials the customer (seat first); `connect-seat` or a SEAT variable means the customer
    was originated and a seat is dialled next."""
    if application:
        return Mode.APPLICATION
    if variables and "SEAT" in variables:
        return Mode.CUSTOMER_FIRST
    if exten == "connect-seat":
        return Mode.CUSTOMER_FIRST
    if exten and exten.lstrip("+").isdigit() and len(exten) >= 6:
        return Mode.SEAT_FIRST
    return Mode.APPLICATION


# --- the tracker --------------------------------------------------------------------------


class CallTracker:
    """Tracks dial attempts through AMI events. Pure: time comes in as `now` arguments.

    `handle(event, now)` returns the results of the attempts that just finished.
    `now` may be None (a replay without timestamps); durations are then None.
    `on_key(KeyPress)`, if set, is called once per attempt with the first key the dialplan
    read while the customer was still on the line (the callback's key 2 hand-over).
    """

    def __init__(
        self,
        *,
        early_hangup_seconds: float = DEFAULT_EARLY_HANGUP_SECONDS,
        attempt_variable: str = "ATTEMPT_ID",
        discover_unregistered: bool = False,
        response_grace_seconds: float = 10.0,
        forget_after_seconds: float = 300.0,
        on_key: Callable[[KeyPress], None] | None = None,
        publish: Callable[[object], None] | None = None,
        server: str = "",
    ) -> None:
        self.early_hangup_seconds = early_hangup_seconds
        # The dialer's bus (`dialer.messagebus`): what the engine needs to know while a call
        # runs (`dialer.domain`: recording named, first bridge, PBX shutting down), so that
        # it never reads the raw AMI events itself.
        self.publish = publish
        self.server = server
        # Called (synchronously, from `handle`) with the first key read on a live call.
        self.on_key = on_key
        self.attempt_variable = attempt_variable
        self.discover_unregistered = discover_unregistered
        self.response_grace_seconds = response_grace_seconds
        self.forget_after_seconds = forget_after_seconds
        self._attempts: dict[str, _Attempt] = {}
        self._groups: dict[str, _Group] = {}
        self._by_uniqueid: dict[str, _Group] = {}
        self._link_wanted: dict[str, _Attempt] = {}  # linkedid -> attempt, before the group exists
        self._finished: dict[str, float | None] = {}  # linkedids and attempt ids already reported
        self._orphan_cdrs: dict[str, ev.Cdr] = {}
        self._hangup_channels: dict[str, None] = {}  # channel names, oldest first
        self._failed_unmatched: dict[str, _Attempt] = {}  # Failure seen, channel not yet known
        self._by_dial_string: dict[str, list[_Attempt]] = {}  # registered, not bound yet
        self._watched_vars = {
            attempt_variable,
            "MIXMONITOR_FILENAME",
            "SEAT",
            "NUMBER",
            "PLAYBACKSTATUS",
        }
        self._handlers: dict[type, Callable[[Any, float | None], list[CallResult]]] = {
            ev.Newchannel: self._on_newchannel,
            ev.Newstate: self._on_newstate,
            ev.DialBegin: self._on_dial_begin,
            ev.DialState: self._on_dial_state,
            ev.DialEnd: self._on_dial_end,
            ev.BridgeEnter: self._on_bridge_enter,
            ev.Hangup: self._on_hangup,
            ev.HangupRequest: self._on_hangup_request,
            ev.SoftHangupRequest: self._on_hangup_request,
            ev.VarSet: self._on_varset,
            ev.UserEvent: self._on_user_event,
            ev.DTMFEnd: self._on_dtmf_end,
            ev.Cdr: self._on_cdr,
            ev.OriginateResponse: self._on_originate_response,
        }

    # -- the dialer's side ------------------------------------------------------------------

    def register(
        self,
        attempt_id: str,
        mode: Mode | str | None = None,
        *,
        seat: str | None = None,
        number: str | None = None,
        started_at: float | None = None,
        channel: str | None = None,
        channel_id: str | None = None,
        expect_originate_response: bool = True,
    ) -> None:
        """Announce an Originate about to be sent (`channel` = its Channel header, the dial
        string; `channel_id` = its ChannelId if any). Async originates get an
        OriginateResponse; pass `expect_originate_response=False` for a synchronous one."""
        existing = self._attempts.get(attempt_id)
        if existing is not None:
            # Discovered from events first (replay): complete it with what we now know.
            existing.mode = Mode(mode) if mode is not None else existing.mode
            existing.seat = seat or existing.seat
            existing.number = number or existing.number
            existing.dial_string = channel or existing.dial_string
            return
        attempt = _Attempt(
            attempt_id=attempt_id,
            mode=Mode(mode) if mode is not None else None,
            seat=seat,
            number=number,
            started_at=started_at,
            dial_string=channel,
            channel_id=channel_id,
            expect_response=expect_originate_response,
            last_activity=started_at,
        )
        self._attempts[attempt_id] = attempt
        log.info(
            "attempt %s: registered (%s, seat %s, number %s)",
            attempt_id,
            attempt.mode,
            seat,
            number,
        )
        if channel_id:
            group = self._groups.get(channel_id)
            if group is not None:
                self._bind(group, attempt, "ChannelId")
            else:
                self._link_wanted[channel_id] = attempt
                attempt.wanted_link = channel_id
        elif channel:
            self._by_dial_string.setdefault(channel, []).append(attempt)

    def _unclaim(self, attempt: _Attempt) -> None:
        if attempt.dial_string is None:
            return
        waiting = self._by_dial_string.get(attempt.dial_string)
        if waiting is not None and attempt in waiting:
            waiting.remove(attempt)
            if not waiting:
                del self._by_dial_string[attempt.dial_string]

    def _claim_by_dial_string(self, group: _Group, dial_string: str, how: str) -> None:
        """Bind a new call to the one registered attempt that dialled this dial string (the
        dialer never has one seat or one number in two calls at once); if two could match,
        wait for the OriginateResponse instead of guessing."""
        waiting = self._by_dial_string.get(dial_string)
        if waiting is not None and len(waiting) == 1:
            self._bind(group, waiting[0], how)

    def originate_failed(self, attempt_id: str, error: str, now: float | None) -> list[CallResult]:
        """The Originate action itself was refused (`Response: Error`): no call exists."""
        attempt = self._attempts.get(attempt_id)
        if attempt is None:
            return []
        attempt.sync_error = error or "Originate failed"
        if attempt.group is not None:  # cannot happen with a real Asterisk; keep the facts
            attempt.expect_response = False
            return self._maybe_finish(attempt.group, now)
        return [self._finish(attempt, None, now)]

    def note_hangup_action(
        self, *, channel: str | None = None, attempt_id: str | None = None
    ) -> None:
        """The dialer (or an operator through it) sent `Action: Hangup` for this channel or
        attempt; its outcome becomes HUNG_UP_BY_ACTION when it ends."""
        if attempt_id is not None and attempt_id in self._attempts:
            self._attempts[attempt_id].hangup_requested = True
        if channel:
            self._hangup_channels[channel] = None
            if len(self._hangup_channels) > 10_000:  # names of channels that never existed
                del self._hangup_channels[next(iter(self._hangup_channels))]

    def live_channels(self, attempt_id: str) -> list[str]:
        """Names of the attempt's channels not hung up yet, the originated one first (a
        Hangup of that one ends the whole call). Empty while none is known."""
        attempt = self._attempts.get(attempt_id)
        if attempt is None or attempt.group is None:
            return []
        first = attempt.channel_id or attempt.group.linkedid
        up = [c for c in attempt.group.channels.values() if not c.hung_up]
        return [c.name for c in sorted(up, key=lambda c: c.uniqueid != first)]

    def active(self) -> list[str]:
        """Attempt ids not finished yet."""
        return list(self._attempts)

    def stats(self) -> dict[str, int]:
        """Sizes of what the tracker holds (for metrics, and to show nothing leaks)."""
        return {
            "attempts": len(self._attempts),
            "calls": len(self._groups),
            "channels": len(self._by_uniqueid),
            "waiting_links": len(self._link_wanted),
            "waiting_dial_strings": sum(len(v) for v in self._by_dial_string.values()),
            "failures_waiting": len(self._failed_unmatched),
            "orphan_cdrs": len(self._orphan_cdrs),
        }

    def state_of(self, attempt_id: str) -> CallState | None:
        attempt = self._attempts.get(attempt_id)
        return None if attempt is None else attempt.state

    # -- events ------------------------------------------------------------------------------

    def handle(self, event: ev.AmiEvent, now: float | None) -> list[CallResult]:
        handler = self._handlers.get(type(event))
        if handler is None:
            if self.publish is not None and event.name == "Shutdown":
                self.publish(PbxShuttingDown(self.server))
            return []
        return handler(event, now)

    def _group_for(self, linkedid: str, now: float | None) -> _Group | None:
        group = self._groups.get(linkedid)
        if group is None:
            if linkedid in self._finished:
                return None  # a late event of a call already reported
            group = _Group(linkedid=linkedid, created_at=now)
            self._groups[linkedid] = group
            attempt = self._link_wanted.pop(linkedid, None)
            if attempt is not None:
                self._bind(group, attempt, "linkedid")
        return group

    def _channel(self, group: _Group, uniqueid: str, name: str, now: float | None) -> _Channel:
        chan = group.channels.get(uniqueid)
        if chan is None:
            chan = _Channel(uniqueid=uniqueid, name=name, first_seen=now)
            group.channels[uniqueid] = chan
            group.by_name[name] = uniqueid
            group.live += 1
            self._by_uniqueid[uniqueid] = group
            cdr = self._orphan_cdrs.pop(uniqueid, None)
            if cdr is not None:
                chan.cdr_disposition = cdr.disposition
                chan.billable_seconds = cdr.billable_seconds
            if uniqueid == group.linkedid and group.attempt is None and self._by_dial_string:
                self._claim_by_dial_string(group, _dial_string_of(name), "originated channel name")
        return chan

    def _on_newchannel(self, e: ev.Newchannel, now: float | None) -> list[CallResult]:
        group = self._group_for(e.linkedid, now)
        if group is not None:
            self._channel(group, e.uniqueid, e.channel, now)
        return []

    def _on_newstate(self, e: ev.Newstate, now: float | None) -> list[CallResult]:
        group = self._group_for(e.linkedid, now)
        if group is None:
            return []
        chan = self._channel(group, e.uniqueid, e.channel, now)
        if e.channel_state == STATE_UP:
            if chan.up_at is None:
                chan.up_at = now
                if self._is_customer(group, e.uniqueid):
                    self._advance(group, CallState.ANSWERED, now, "Newstate Up")
        elif e.channel_state == STATE_RINGING:
            chan.ringing = True
            if self._is_customer(group, e.uniqueid):
                self._advance(group, CallState.RINGING, now, "Newstate Ringing")
        return []

    def _on_dial_begin(self, e: ev.DialBegin, now: float | None) -> list[CallResult]:
        group = self._group_for(e.dest_linkedid, now)
        if group is None:
            return []
        self._channel(group, e.dest_uniqueid, e.dest_channel, now)
        group.dials.append(_Dial(e.uniqueid, e.dest_uniqueid, e.dial_string, now))
        if e.uniqueid is None and group.attempt is None and e.dial_string:
            if self._failed_unmatched:
                self._claim_for_failed(group, e.dial_string)
            if group.attempt is None and self._by_dial_string:
                tech = e.dest_channel.split("/", 1)[0]
                self._claim_by_dial_string(group, f"{tech}/{e.dial_string}", "originate DialString")
        if self._is_customer(group, e.dest_uniqueid):
            self._advance(group, CallState.DIALLING, now, "DialBegin")
        return []

    def _find_dial(self, group: _Group, e: ev.DialEvent) -> _Dial | None:
        for dial in reversed(group.dials):
            if dial.dest == e.dest_uniqueid and dial.caller == e.uniqueid:
                return dial
        return None

    def _on_dial_state(self, e: ev.DialState, now: float | None) -> list[CallResult]:
        group = self._groups.get(e.dest_linkedid)
        if group is None:
            return []
        if e.dial_status in ("RINGING", "PROGRESS", "PROCEEDING"):
            dial = self._find_dial(group, e)
            if dial is not None:
                dial.ringing = True
            if self._is_customer(group, e.dest_uniqueid):
                self._advance(group, CallState.RINGING, now, f"DialState {e.dial_status}")
        return []

    def _on_dial_end(self, e: ev.DialEnd, now: float | None) -> list[CallResult]:
        group = self._groups.get(e.dest_linkedid)
        if group is None:
            return []
        dial = self._find_dial(group, e)
        if dial is None:  # DialBegin lost (e.g. before a reconnect)
            self._channel(group, e.dest_uniqueid, e.dest_channel, now)
            dial = _Dial(e.uniqueid, e.dest_uniqueid, e.dial_string, None)
            group.dials.append(dial)
        dial.status = e.dial_status
        dial.end_at = now
        if e.dial_status == "ANSWER" and self._is_customer(group, e.dest_uniqueid):
            self._advance(group, CallState.ANSWERED, now, "DialEnd ANSWER")
        return []

    def _on_bridge_enter(self, e: ev.BridgeEnter, now: float | None) -> list[CallResult]:
        group = self._group_for(e.linkedid, now)
        if group is None:
            return []
        chan = self._channel(group, e.uniqueid, e.channel, now)
        if chan.bridged_at is None:
            chan.bridged_at = now
        if self.publish is not None and not group.bridge_published:
            group.bridge_published = True
            # The linkedid is the attempt id (the Originate's ChannelId) on every channel.
            self.publish(CallBridged(self.server, group.linkedid))
        if self._is_customer(group, e.uniqueid):
            self._advance(group, CallState.BRIDGED, now, "BridgeEnter")
        return []

    def _on_hangup_request(
        self, e: ev.HangupRequest | ev.SoftHangupRequest, now: float | None
    ) -> list[CallResult]:
        group = self._group_for(e.linkedid, now)
        if group is None:
            return []
        chan = self._channel(group, e.uniqueid, e.channel, now)
        if group.first_request is None and not chan.hung_up:
            group.first_request = (e.uniqueid, isinstance(e, ev.SoftHangupRequest))
        if e.tech_cause is not None:
            chan.request_tech_cause = e.tech_cause
        return []

    def _on_hangup(self, e: ev.Hangup, now: float | None) -> list[CallResult]:
        group = self._group_for(e.linkedid, now)
        if group is None:
            return []
        chan = self._channel(group, e.uniqueid, e.channel, now)
        if chan.hung_up:
            return []
        chan.hung_up = True
        chan.hangup_at = now
        if group.first_request is None:
            group.first_request = (e.uniqueid, True)
        chan.cause = e.cause
        chan.cause_txt = e.cause_txt
        chan.tech_cause = e.tech_cause
        group.live -= 1
        return self._maybe_finish(group, now)

    def _on_varset(self, e: ev.VarSet, now: float | None) -> list[CallResult]:
        variable = e.variable
        if variable not in self._watched_vars:
            return []
        group = self._group_for(e.linkedid, now)
        if group is None:
            return []
        self._channel(group, e.uniqueid, e.channel, now)
        if variable == "MIXMONITOR_FILENAME":
            if (
                self.publish is not None
                and group.attempt is not None  # one of this dialer's calls
                and e.value
                and e.value != group.recording
            ):
                self.publish(RecordingNamed(group.linkedid, e.value))
            group.recording = e.value or group.recording
        elif variable == "PLAYBACKSTATUS":
            group.playback_status.pop(e.uniqueid, None)  # the latest last
            group.playback_status[e.uniqueid] = e.value
        elif variable == self.attempt_variable:
            if group.attempt is None and e.value:
                attempt = self._attempts.get(e.value) or self._discover(e.value, now)
                if attempt is not None and attempt.group is None:
                    self._bind(group, attempt, f"VarSet {variable}")
        elif variable == "SEAT":
            group.seat_var = e.value or group.seat_var
            self._complete_discovered(group)
        elif variable == "NUMBER":
            group.number_var = e.value or group.number_var
            self._complete_discovered(group)
        return []

    def _complete_discovered(self, group: _Group) -> None:
        """Fill in what an attempt nobody registered left unknown, from its variables."""
        attempt = group.attempt
        if attempt is None or not attempt.discovered:
            return
        if group.seat_var and not attempt.seat:
            attempt.seat = group.seat_var
        if group.seat_var and (
            attempt.mode is None or (attempt.mode is Mode.APPLICATION and group.user_key is None)
        ):
            # SEAT set after a key was read is a hand-over to a seat (dialer.transfer): the
            # call stays an application call.
            attempt.mode = Mode.CUSTOMER_FIRST
        if group.number_var and not attempt.number:
            attempt.number = group.number_var

    def _on_user_event(self, e: ev.UserEvent, now: float | None) -> list[CallResult]:
        key = e.get("Key")
        if key and e.linkedid:
            group = self._groups.get(e.linkedid)
            if group is not None and group.user_key is None:
                group.user_key = key
                self._key_read(group, key, e, now)
        return []

    def _key_read(self, group: _Group, key: str, e: ev.UserEvent, now: float | None) -> None:
        attempt = group.attempt
        if self.on_key is None or attempt is None or e.channel is None or e.uniqueid is None:
            return
        chan = group.channels.get(e.uniqueid)
        if chan is None or chan.hung_up:
            return  # nobody left to connect
        press = KeyPress(attempt.attempt_id, key, e.channel, e.uniqueid, attempt.mode, now)
        try:
            self.on_key(press)
        except Exception:
            log.exception("attempt %s: on_key hook failed", attempt.attempt_id)

    def _on_dtmf_end(self, e: ev.DTMFEnd, now: float | None) -> list[CallResult]:
        if e.direction == "Received":
            group = self._group_for(e.linkedid, now)
            if group is not None:
                self._channel(group, e.uniqueid, e.channel, now).dtmf_received.append(e.digit)
        return []

    def _on_cdr(self, e: ev.Cdr, now: float | None) -> list[CallResult]:
        group = self._by_uniqueid.get(e.uniqueid)
        if group is None:
            if e.uniqueid in self._finished:
                return []
            # A Cdr may come before its channel's Newchannel; keep it for a while.
            self._orphan_cdrs[e.uniqueid] = e
            if len(self._orphan_cdrs) > 10_000:
                del self._orphan_cdrs[next(iter(self._orphan_cdrs))]
            return []
        chan = group.channels[e.uniqueid]
        # A failed seat-first Dial gives the seat two Cdrs (the Dial, then ANSWERED for the
        # originate leg): the first non-ANSWERED one is the informative one.
        if chan.cdr_disposition is None or chan.cdr_disposition == "ANSWERED":
            chan.cdr_disposition = e.disposition
        if e.billable_seconds is not None:
            chan.billable_seconds = max(chan.billable_seconds or 0, e.billable_seconds)
        return []

    def _on_originate_response(
        self, e: ev.OriginateResponse, now: float | None
    ) -> list[CallResult]:
        if e.action_id is None:
            return []
        attempt = self._attempts.get(e.action_id)
        if attempt is None:
            if e.action_id in self._finished:
                return []
            attempt = self._discover(e.action_id, now)
            if attempt is None:
                return []
        if attempt.or_response is not None:
            return []
        if attempt.discovered:
            self._learn_from_response(attempt, e)
        attempt.or_response = e.response
        attempt.or_reason = e.reason
        attempt.or_at = now
        attempt.last_activity = now
        if attempt.dial_string is None and not e.success:
            attempt.dial_string = e.channel
        log.info(
            "attempt %s: OriginateResponse %s reason %s uniqueid %s",
            attempt.attempt_id,
            e.response,
            e.reason,
            e.uniqueid,
        )
        if (
            attempt.group is not None
            and e.uniqueid is not None
            and attempt.group.linkedid != e.uniqueid
        ):
            log.warning(
                "attempt %s: was bound to linkedid %s but its OriginateResponse says %s",
                attempt.attempt_id,
                attempt.group.linkedid,
                e.uniqueid,
            )
            attempt.group.attempt = None
            attempt.group = None
        if attempt.group is None:
            group: _Group | None = None
            if e.uniqueid is not None:
                group = self._groups.get(e.uniqueid)
                if group is None:
                    if e.uniqueid in self._finished:
                        return []
                    self._link_wanted[e.uniqueid] = attempt
                    attempt.wanted_link = e.uniqueid
            else:
                group = self._match_failed_originate(e.channel)
            if group is not None and group.attempt is not None and e.uniqueid is not None:
                # The OriginateResponse is authoritative over a guess by dial string.
                other = group.attempt
                log.warning(
                    "attempt %s: linkedid %s was taken by attempt %s; giving it back",
                    attempt.attempt_id,
                    group.linkedid,
                    other.attempt_id,
                )
                other.group = None
                group.attempt = None
                if other.dial_string and other.channel_id is None:
                    self._by_dial_string.setdefault(other.dial_string, []).append(other)
            if group is not None and group.attempt is None:
                self._bind(group, attempt, "OriginateResponse")
        if attempt.group is not None:
            return self._maybe_finish(attempt.group, now)
        if not e.success:
            if self._open_unclaimed(e.channel):
                # A channel of the same technology nobody has claimed yet may be this one
                # (a PJSIP channel is named after the endpoint, not the number): wait for
                # its ATTEMPT_ID variable or the originate's DialBegin to tell.
                self._failed_unmatched[attempt.attempt_id] = attempt
                return []
            return [self._finish(attempt, None, now)]  # no channel was ever created
        return []

    def _open_unclaimed(self, dial_string: str) -> bool:
        tech = dial_string.split("/", 1)[0] + "/"
        for group in self._groups.values():
            if group.attempt is None and group.live > 0:
                root = group.channels.get(group.linkedid)
                if root is None or root.name.startswith(tech):
                    return True
        return False

    def _claim_for_failed(self, group: _Group, dial_string: str | None) -> None:
        """Bind a new originate dial to an OriginateResponse Failure that came first."""
        if dial_string is None:
            return
        for attempt in self._failed_unmatched.values():
            resource = attempt.dial_string or ""
            resource = resource.split("/", 1)[1] if "/" in resource else resource
            if resource == dial_string:
                del self._failed_unmatched[attempt.attempt_id]
                self._bind(group, attempt, "originate DialString")
                return

    def _match_failed_originate(self, dial_string: str) -> _Group | None:
        prefix = dial_string + "-"
        resource = dial_string.split("/", 1)[1] if "/" in dial_string else dial_string
        for group in self._groups.values():  # oldest first
            if group.attempt is not None:
                continue
            root = group.channels.get(group.linkedid)
            if root is not None and root.name.startswith(prefix):
                return group
            for dial in group.dials:
                if dial.caller is None and dial.dial_string == resource:
                    return group
        return None

    def _discover(self, attempt_id: str, now: float | None) -> _Attempt | None:
        if not self.discover_unregistered or attempt_id in self._finished:
            return None
        attempt = _Attempt(
            attempt_id=attempt_id,
            mode=None,
            seat=None,
            number=None,
            started_at=None,
            discovered=True,
            last_activity=now,
        )
        self._attempts[attempt_id] = attempt
        log.info("attempt %s: discovered from events", attempt_id)
        return attempt

    def _learn_from_response(self, attempt: _Attempt, response: ev.OriginateResponse) -> None:
        dial_string = (
            response.channel if not response.success else _dial_string_of(response.channel)
        )
        attempt.dial_string = attempt.dial_string or dial_string
        mode = infer_mode(response.exten, response.application)
        if attempt.mode is None or (attempt.mode == Mode.APPLICATION and mode != Mode.APPLICATION):
            attempt.mode = mode
        if mode == Mode.SEAT_FIRST:
            attempt.seat = attempt.seat or _resource(dial_string)
            attempt.number = attempt.number or response.exten
        else:
            attempt.number = attempt.number or _resource(dial_string)
        if attempt.group is not None:
            self._complete_discovered(attempt.group)

    def _bind(self, group: _Group, attempt: _Attempt, how: str) -> None:
        group.attempt = attempt
        attempt.group = group
        self._failed_unmatched.pop(attempt.attempt_id, None)
        self._unclaim(attempt)
        self._complete_discovered(group)
        log.info("attempt %s: bound to linkedid %s by %s", attempt.attempt_id, group.linkedid, how)
        self._rebuild_state(group, attempt.last_activity, "facts so far")

    # -- state ----------------------------------------------------------------------------

    def _customer_ids(self, group: _Group) -> set[str]:
        """Uniqueids of the customer's channels, given the attempt's flow. Seat first: every
        channel but the originated one (and its Local other half); customer first and
        application: the originated one (and its other half). Unbound calls: none yet."""
        attempt = group.attempt
        if attempt is None:
            return set()
        root_ids = {group.linkedid}
        root = group.channels.get(group.linkedid)
        if root is not None:
            other = _partner(root.name)
            if other is not None and other in group.by_name:
                root_ids.add(group.by_name[other])
        mode = attempt.mode
        if mode == Mode.SEAT_FIRST:
            return set(group.channels) - root_ids
        if mode is not None:
            return root_ids
        dialled = {d.dest for d in group.dials if d.caller is not None and d.caller != d.dest}
        if not dialled:
            return root_ids
        for uid in list(dialled):
            chan = group.channels.get(uid)
            other = _partner(chan.name) if chan is not None else None
            if other is not None and other in group.by_name:
                dialled.add(group.by_name[other])
        return dialled

    def _rebuild_state(self, group: _Group, now: float | None, why: str) -> None:
        """The state from the facts so far, once the flow (so the customer leg) is known."""
        ids = self._customer_ids(group)
        chans = [group.channels[uid] for uid in ids if uid in group.channels]
        state = CallState.ORIGINATING
        if chans:
            state = CallState.DIALLING
        if any(c.ringing for c in chans) or any(d.dest in ids and d.ringing for d in group.dials):
            state = CallState.RINGING
        if any(c.up_at is not None for c in chans) or any(
            d.dest in ids and d.status == "ANSWER" for d in group.dials
        ):
            state = CallState.ANSWERED
        if any(c.bridged_at is not None for c in chans):
            state = CallState.BRIDGED
        self._advance(group, state, now, why)

    def _is_customer(self, group: _Group, uniqueid: str) -> bool:
        return uniqueid in self._customer_ids(group)

    def _advance(self, group: _Group, state: CallState, now: float | None, why: str) -> None:
        if _RANK[state] <= _RANK[group.state]:
            return  # events arrive out of order; states only move forward
        old = group.state
        group.state = state
        attempt = group.attempt
        if attempt is not None:
            attempt.state = state
            attempt.last_activity = now
            log.info("attempt %s: %s -> %s (%s)", attempt.attempt_id, old, state, why)
        else:
            log.info(
                "call linkedid %s (no attempt yet): %s -> %s (%s)", group.linkedid, old, state, why
            )

    # -- finishing ----------------------------------------------------------------------------

    def _maybe_finish(self, group: _Group, now: float | None) -> list[CallResult]:
        if group.live > 0 or not group.channels:
            return []
        if group.ended_at is None:
            group.ended_at = now
        attempt = group.attempt
        if attempt is None:
            return []  # wait for an OriginateResponse to say whose it was (or `expire`)
        if attempt.expect_response and attempt.or_response is None and attempt.sync_error is None:
            attempt.ended_at = now
            return []  # the OriginateResponse may still explain it (Reason 3 vs cause 19)
        return [self._finish(attempt, group, now)]

    def _finish(
        self, attempt: _Attempt, group: _Group | None, now: float | None, lost: bool = False
    ) -> CallResult:
        result = self._result(attempt, group, now, lost)
        self._attempts.pop(attempt.attempt_id, None)
        self._failed_unmatched.pop(attempt.attempt_id, None)
        self._unclaim(attempt)
        wanted = attempt.wanted_link
        if wanted is not None and self._link_wanted.get(wanted) is attempt:
            del self._link_wanted[wanted]
        self._finished[attempt.attempt_id] = now
        if group is not None:
            self._drop_group(group, now)
        final = CallState.FAILED if result.outcome == Outcome.FAILED else CallState.ENDED
        if lost:
            final = CallState.UNKNOWN
        log.info(
            "attempt %s: %s -> %s, outcome %s (cause %s, tech cause %s, dial status %s)",
            attempt.attempt_id,
            attempt.state,
            final,
            result.outcome,
            result.cause,
            result.tech_cause,
            result.dial_status,
        )
        attempt.state = final
        return result

    def _drop_group(self, group: _Group, now: float | None) -> None:
        self._groups.pop(group.linkedid, None)
        self._finished[group.linkedid] = now
        for uid in group.channels:
            self._by_uniqueid.pop(uid, None)
            self._finished[uid] = now  # a Cdr may still come after the last Hangup
        if len(self._finished) > 100_000:
            for key in list(self._finished)[:10_000]:
                del self._finished[key]

    def _result(
        self, attempt: _Attempt | None, group: _Group | None, now: float | None, lost: bool
    ) -> CallResult:
        customer: list[_Channel] = []
        dial_status: str | None = None
        dial_begin: float | None = None
        dial_end: float | None = None
        if group is not None:
            ids = self._customer_ids(group)
            customer = [group.channels[uid] for uid in ids if uid in group.channels]
            for dial in group.dials:
                if dial.dest in ids and (dial.status is not None or dial_status is None):
                    dial_status = dial.status or dial_status
                    dial_begin = dial.begin_at if dial_begin is None else dial_begin
                    dial_end = dial.end_at or dial_end
        # The half that ran Busy()/Hangup(N) has the real cause; the other says 0.
        cause: int | None = None
        cause_txt: str | None = None
        tech_cause: int | None = None
        for chan in sorted(customer, key=lambda c: c.name.endswith(";2"), reverse=True):
            if chan.cause is not None and (cause is None or (cause == 0 and chan.cause != 0)):
                cause, cause_txt = chan.cause, chan.cause_txt
            tech = chan.tech_cause if chan.tech_cause is not None else chan.request_tech_cause
            if tech is not None and tech_cause is None:
                tech_cause = tech
        ups = [c.up_at for c in customer if c.up_at is not None]
        answered_at = min(ups) if ups else None
        answered = bool(ups) or dial_status == "ANSWER" or any(c.bridged_at for c in customer)
        if answered and answered_at is None and dial_status == "ANSWER":
            answered_at = dial_end
        bridged = any(c.bridged_at is not None for c in customer)
        ends = [c.hangup_at for c in customer if c.hangup_at is not None]
        customer_end = min(ends) if ends else None
        customer_uids = {ch.uniqueid for ch in customer}
        non_customer = [
            c
            for uid, c in (group.channels.items() if group is not None else ())
            if uid not in customer_uids
        ]
        mode = attempt.mode if attempt is not None else None
        connected_seat: str | None = None
        if bridged and mode is not Mode.SEAT_FIRST:
            peers = [c for c in non_customer if c.bridged_at is not None]
            if peers:
                first = min(peers, key=lambda c: c.bridged_at or 0.0)
                connected_seat = _dial_string_of(first.name)
        handed_over = mode is Mode.APPLICATION and connected_seat is not None
        hung_up_by: Party | None = None
        request = group.first_request if group is not None else None
        if request is not None and group is not None and request[0] in group.channels:
            uid, soft = request
            hung_up_by = hangup_party(group.channels[uid].name, soft, uid in customer_uids)
        starts = [c.first_seen for c in customer if c.first_seen is not None]
        if dial_begin is not None:
            starts.append(dial_begin)
        ring_start = min(starts) if starts else None
        ring_seconds: float | None = None
        ring_end = (
            answered_at if answered else (customer_end if customer_end is not None else dial_end)
        )
        if ring_start is not None and ring_end is not None:
            ring_seconds = max(0.0, ring_end - ring_start)
        talk_seconds: float | None = None
        bridged_ats = [c.bridged_at for c in customer if c.bridged_at is not None]
        if handed_over and bridged_ats and customer_end is not None:
            # The conversation with the specialist, not the recorded menu before it.
            talk_seconds = max(0.0, customer_end - min(bridged_ats))
        elif answered:
            if answered_at is not None and customer_end is not None:
                talk_seconds = max(0.0, customer_end - answered_at)
            else:
                billed = [c.billable_seconds for c in customer if c.billable_seconds is not None]
                talk_seconds = float(max(billed)) if billed else None
        digits = "".join(d for c in customer for d in c.dtmf_received)
        key = group.user_key if group is not None and group.user_key else (digits[:1] or None)
        cdr = next((c.cdr_disposition for c in customer if c.cdr_disposition), None)
        channels = () if group is None else tuple(c.name for c in group.channels.values())
        hung_up_by_action = (attempt is not None and attempt.hangup_requested) or any(
            name in self._hangup_channels for name in channels
        )
        for name in channels:
            self._hangup_channels.pop(name, None)
        facts = CallFacts(
            originate_response=attempt.or_response if attempt else None,
            originate_reason=attempt.or_reason if attempt else None,
            sync_error=attempt.sync_error if attempt else None,
            customer_dialled=bool(customer),
            answered=answered,
            cause=cause,
            tech_cause=tech_cause,
            dial_status=dial_status,
            cdr_disposition=cdr,
            talk_seconds=talk_seconds,
            hung_up_by=hung_up_by,
            # Only a message that was the call's point: an automatic call where no key was
            # read (a customer-first apology or a goodbye after a key must not turn an
            # abandoned or confirmed call into a failure).
            playback_status=_last_playback(group, customer_uids)
            if mode is Mode.APPLICATION and key is None and not handed_over
            else None,
            hung_up_by_action=hung_up_by_action,
            lost=lost,
        )
        outcome, why = explain(facts, self.early_hangup_seconds)
        if handed_over:
            why += f"; key {key}, connected to seat {connected_seat}"
        ended_at = now
        if group is not None and group.ended_at is not None:
            ended_at = group.ended_at
        return CallResult(
            attempt_id=attempt.attempt_id if attempt else None,
            seat=attempt.seat if attempt else None,
            number=attempt.number if attempt else None,
            mode=attempt.mode if attempt else None,
            outcome=outcome,
            cause=cause,
            cause_txt=cause_txt,
            tech_cause=tech_cause,
            dial_status=dial_status,
            originate_response=facts.originate_response,
            originate_reason=facts.originate_reason,
            answered=answered,
            bridged=bridged,
            ring_seconds=ring_seconds,
            talk_seconds=talk_seconds,
            key_pressed=key,
            digits=digits,
            recording=group.recording if group is not None else None,
            linkedid=group.linkedid if group is not None else None,
            uniqueids=() if group is None else tuple(group.channels),
            channels=channels,
            started_at=attempt.started_at if attempt else (group.created_at if group else None),
            ended_at=ended_at,
            error=attempt.sync_error if attempt else None,
            why=why,
            connected_seat=connected_seat,
            facts=facts,
        )

    # -- time and reconnects ------------------------------------------------------------------

    def expire(self, now: float, originate_timeout: float = 60.0) -> list[CallResult]:
        """Give up waiting: an attempt whose channels are gone but whose OriginateResponse
        never came is finalized from its facts after `response_grace_seconds`; an attempt
        that saw nothing at all for `originate_timeout` becomes UNKNOWN; a call no
        originate claimed is forgotten after `forget_after_seconds`."""
        results: list[CallResult] = []
        for attempt in list(self._attempts.values()):
            group = attempt.group
            if group is not None and group.live == 0 and group.channels:
                ended = group.ended_at if group.ended_at is not None else attempt.ended_at
                if ended is not None and now - ended >= self.response_grace_seconds:
                    results.append(self._finish(attempt, group, now))
            elif group is None and attempt.or_response is not None:
                # A Failure that waited for an unclaimed channel which never turned out to be its.
                if attempt.or_at is None or now - attempt.or_at >= self.response_grace_seconds:
                    results.append(self._finish(attempt, None, now))
            elif group is None:
                since = (
                    attempt.last_activity
                    if attempt.last_activity is not None
                    else attempt.started_at
                )
                if since is not None and now - since >= originate_timeout:
                    results.append(self._finish(attempt, None, now, lost=True))
        for group in list(self._groups.values()):
            if group.attempt is None and group.created_at is not None:
                if now - group.created_at >= self.forget_after_seconds:
                    self._drop_group(group, now)
        return results

    def flush(self, now: float | None) -> list[CallResult]:
        """End of input (a replay): finalize everything still open from its facts; calls
        no originate claimed are reported with `attempt_id=None`."""
        results: list[CallResult] = []
        for attempt in list(self._attempts.values()):
            group = attempt.group
            if group is None:
                lost = attempt.or_response is None and attempt.sync_error is None
            else:
                lost = group.live > 0
            results.append(self._finish(attempt, group, now, lost=lost))
        for group in list(self._groups.values()):
            results.append(self._result(None, group, now, lost=group.live > 0))
            self._drop_group(group, now)
        return results

    def resync(self, channels: Iterable[ev.CoreShowChannel], now: float | None) -> list[CallResult]:
        """After a reconnect: rebuild calls from the live channel list (CoreShowChannels).

        Attempts with live channels stay tracked; channels we knew that are no longer live
        are marked hung up (their Hangup was lost, cause unknown); live channels we did not
        know are added. Attempts with no live channel and no final result are returned as
        UNKNOWN (or classified from their facts if every channel's Hangup was seen)."""
        live_by_linkedid: dict[str, list[ev.CoreShowChannel]] = {}
        for live in channels:
            live_by_linkedid.setdefault(live.linkedid, []).append(live)
        for linkedid, chans in live_by_linkedid.items():
            group = self._group_for(linkedid, now)
            if group is None:
                continue
            live_ids = set()
            for c in chans:
                live_ids.add(c.uniqueid)
                known = c.uniqueid in group.channels
                chan = self._channel(group, c.uniqueid, c.channel, now)
                if not known:
                    chan.first_seen = None
                if c.channel_state == STATE_UP and chan.up_at is None:
                    chan.up_at = now  # answered while we were away: talk time is a lower bound
                if c.bridge_id and chan.bridged_at is None:
                    chan.bridged_at = now
            for gone in group.channels.values():
                if gone.uniqueid not in live_ids and not gone.hung_up:
                    gone.hung_up = True
                    gone.hangup_at = now
                    group.live -= 1
        results: list[CallResult] = []
        for attempt in list(self._attempts.values()):
            group = attempt.group
            if group is not None and group.linkedid in live_by_linkedid:
                log.info(
                    "attempt %s: still live after reconnect (%s)", attempt.attempt_id, group.state
                )
                continue
            complete = (
                group is not None
                and group.channels
                and all(
                    c.hangup_at is not None and c.cause is not None for c in group.channels.values()
                )
            )
            if complete and group is not None:
                results.append(self._finish(attempt, group, now))
            else:
                results.append(self._finish(attempt, group, now, lost=True))
        for group in list(self._groups.values()):
            if group.attempt is None and group.linkedid not in live_by_linkedid:
                self._drop_group(group, now)
        return results
