"""The call tracker's records (no I/O): the channels, dials and Originate attempts of one
call group (one Linkedid), and what can be read from a group alone: which channels are the
customer's, the state the facts so far show, and how a channel or dial string names its
device."""

from __future__ import annotations

from dataclasses import dataclass, field

from dialer.call_outcome import CallState, Mode


@dataclass(slots=True, eq=False)
class CallChannel:
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
class DialLeg:
    caller: str | None  # uniqueid of the caller; None for the originate itself
    dest: str
    dial_string: str | None
    begin_at: float | None
    status: str | None = None
    end_at: float | None = None
    ringing: bool = False


@dataclass(slots=True, eq=False)
class TrackedAttempt:
    attempt_id: str
    mode: Mode | None
    seat: str | None
    number: str | None
    started_at: float | None
    dial_string: str | None = None  # the Originate's Channel
    channel_id: str | None = None
    expect_response: bool = True
    discovered: bool = False
    group: CallGroup | None = None
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
class CallGroup:
    linkedid: str
    created_at: float | None
    channels: dict[str, CallChannel] = field(default_factory=dict)
    by_name: dict[str, str] = field(default_factory=dict)
    dials: list[DialLeg] = field(default_factory=list)
    live: int = 0
    attempt: TrackedAttempt | None = None
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


def partner(name: str) -> str | None:
    """The other half of a Local channel (`…;1` <-> `…;2`)."""
    if name.endswith(";1"):
        return name[:-1] + "2"
    if name.endswith(";2"):
        return name[:-1] + "1"
    return None


def dial_string_of(channel_name: str) -> str:
    """`Local/8001@seats-00000000;1` -> `Local/8001@seats`; `PJSIP/8001-0000000a` -> `PJSIP/8001`."""
    base = channel_name.split(";", 1)[0]
    head, sep, tail = base.rpartition("-")
    if sep and len(tail) == 8 and all(c in "0123456789abcdef" for c in tail):
        return head
    return base


def resource(dial_string: str | None) -> str | None:
    """`Local/13800000011@customers` -> `13800000011` (the user part); `PJSIP/8001` -> `8001`."""
    if not dial_string:
        return None
    res = dial_string.split("/", 1)[1] if "/" in dial_string else dial_string
    return res.split("@", 1)[0] or None


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


def customer_ids(group: CallGroup) -> set[str]:
    """Uniqueids of the customer's channels, given the attempt's flow. Seat first: every
    channel but the originated one (and its Local other half); customer first and
    application: the originated one (and its other half). Unbound calls: none yet."""
    attempt = group.attempt
    if attempt is None:
        return set()
    root_ids = {group.linkedid}
    root = group.channels.get(group.linkedid)
    if root is not None:
        other = partner(root.name)
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
        other = partner(chan.name) if chan is not None else None
        if other is not None and other in group.by_name:
            dialled.add(group.by_name[other])
    return dialled


def group_state(group: CallGroup) -> CallState:
    """The state from the facts so far, once the flow (so the customer leg) is known."""
    ids = customer_ids(group)
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
    return state


__all__ = [
    "CallChannel",
    "CallGroup",
    "DialLeg",
    "TrackedAttempt",
    "customer_ids",
    "dial_string_of",
    "group_state",
    "infer_mode",
    "partner",
    "resource",
]
