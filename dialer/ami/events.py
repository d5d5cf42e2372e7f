"""Typed AMI events: the frozen dataclasses the dialer works with, decoded from `Message`s.

`parse_event(msg)` never raises. Events the dialer uses become the dataclasses below;
everything else becomes `GenericEvent(name, message)`. When a header the dialer relies on
is missing (or an integer header is not an integer), the problem is logged at ERROR once per
(event name, header) with the raw message, and the event is delivered as a `GenericEvent`,
so a consumer never sees a silently empty string in a required field. Optional headers are
`str | None`.

Every event keeps its `Message` in `.message` (excluded from comparison and repr), so
headers that have no field are still reachable (`ev.message.get("AccountCode")`).

Notes from the real traces (tests/fixtures/ami):
- The originate itself is modelled as a dial: its DialBegin/DialState/DialEnd have only the
  `Dest*` headers and no `Channel:`, so the caller side of those events is optional.
- A failed OriginateResponse has `Uniqueid: <unknown>` unless a ChannelId was given; that
  becomes `uniqueid=None` here (the raw value stays in the message).
- Cdr spells its id `UniqueID` and has no Linkedid.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from dialer.ami.protocol import Message

log = logging.getLogger(__name__)

_NO_MESSAGE = Message(())


@dataclass(frozen=True, slots=True, kw_only=True)
class AmiEvent:
    """Base of every event. `name` is the AMI `Event:` value."""

    EVENT: ClassVar[str] = ""
    message: Message = field(default=_NO_MESSAGE, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.EVENT


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericEvent(AmiEvent):
    """Any event without a typed class, or a typed one that lacked a required header."""

    name: str  # a field replaces the base class's read-only property


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEvent(AmiEvent):
    """Events carrying a channel snapshot (Newchannel, Hangup, VarSet, ...)."""

    channel: str
    uniqueid: str
    linkedid: str
    channel_state: int | None = None
    channel_state_desc: str | None = None
    caller_id_num: str | None = None
    caller_id_name: str | None = None
    connected_line_num: str | None = None
    connected_line_name: str | None = None
    context: str | None = None
    exten: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Newchannel(ChannelEvent):
    EVENT: ClassVar[str] = "Newchannel"


@dataclass(frozen=True, slots=True, kw_only=True)
class Newstate(ChannelEvent):
    EVENT: ClassVar[str] = "Newstate"


@dataclass(frozen=True, slots=True, kw_only=True)
class Hangup(ChannelEvent):
    EVENT: ClassVar[str] = "Hangup"
    cause: int
    cause_txt: str | None = None
    tech_cause: int | None = None  # the SIP status code on PJSIP failures


@dataclass(frozen=True, slots=True, kw_only=True)
class HangupRequest(ChannelEvent):
    EVENT: ClassVar[str] = "HangupRequest"
    cause: int | None = None
    tech_cause: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SoftHangupRequest(ChannelEvent):
    EVENT: ClassVar[str] = "SoftHangupRequest"
    cause: int | None = None
    tech_cause: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeEnter(ChannelEvent):
    EVENT: ClassVar[str] = "BridgeEnter"
    bridge_uniqueid: str
    bridge_num_channels: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeLeave(ChannelEvent):
    EVENT: ClassVar[str] = "BridgeLeave"
    bridge_uniqueid: str
    bridge_num_channels: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MixMonitorStart(ChannelEvent):
    EVENT: ClassVar[str] = "MixMonitorStart"


@dataclass(frozen=True, slots=True, kw_only=True)
class VarSet(ChannelEvent):
    EVENT: ClassVar[str] = "VarSet"
    variable: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DTMFBegin(ChannelEvent):
    EVENT: ClassVar[str] = "DTMFBegin"
    digit: str
    direction: str  # "Received" (from the far end) or "Sent"


@dataclass(frozen=True, slots=True, kw_only=True)
class DTMFEnd(ChannelEvent):
    EVENT: ClassVar[str] = "DTMFEnd"
    digit: str
    direction: str
    duration_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DialEvent(AmiEvent):
    """DialBegin/DialState/DialEnd. The caller side is absent for the originate itself."""

    dest_channel: str
    dest_uniqueid: str
    dest_linkedid: str
    channel: str | None = None
    uniqueid: str | None = None
    linkedid: str | None = None
    dest_channel_state: int | None = None
    dest_exten: str | None = None
    dest_caller_id_num: str | None = None
    dial_string: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DialBegin(DialEvent):
    EVENT: ClassVar[str] = "DialBegin"


@dataclass(frozen=True, slots=True, kw_only=True)
class DialState(DialEvent):
    EVENT: ClassVar[str] = "DialState"
    dial_status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DialEnd(DialEvent):
    EVENT: ClassVar[str] = "DialEnd"
    dial_status: str  # ANSWER, BUSY, NOANSWER, CONGESTION, CHANUNAVAIL, CANCEL, ...


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginateResponse(AmiEvent):
    EVENT: ClassVar[str] = "OriginateResponse"
    response: str  # "Success" or "Failure"
    reason: int  # 4 answered, 5 busy, 3 no answer, 8 congestion, 0 anything else
    channel: str  # on failure: the dial string as sent, not a channel name
    action_id: str | None = None
    uniqueid: str | None = None  # None for `<unknown>`
    context: str | None = None
    exten: str | None = None
    application: str | None = None
    data: str | None = None
    caller_id_num: str | None = None
    caller_id_name: str | None = None

    @property
    def success(self) -> bool:
        return self.response == "Success"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserEvent(AmiEvent):
    """`UserEvent(Name,Key: value,...)` from the dialplan; custom headers via `get()`."""

    EVENT: ClassVar[str] = "UserEvent"
    user_event: str
    channel: str | None = None
    uniqueid: str | None = None
    linkedid: str | None = None

    def get(self, header: str) -> str | None:
        return self.message.get(header)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cdr(AmiEvent):
    EVENT: ClassVar[str] = "Cdr"
    uniqueid: str  # the header is spelled `UniqueID`
    channel: str
    disposition: str  # ANSWERED, BUSY, NO ANSWER, FAILED, CONGESTION
    destination_channel: str | None = None
    source: str | None = None
    destination: str | None = None
    last_application: str | None = None
    duration: int | None = None
    billable_seconds: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FullyBooted(AmiEvent):
    EVENT: ClassVar[str] = "FullyBooted"
    status: str | None = None
    uptime: int | None = None
    last_reload: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreShowChannel(AmiEvent):
    """One live channel in a CoreShowChannels list (used to rebuild calls after a reconnect)."""

    EVENT: ClassVar[str] = "CoreShowChannel"
    channel: str
    uniqueid: str
    linkedid: str
    action_id: str | None = None
    channel_state: int | None = None
    channel_state_desc: str | None = None
    caller_id_num: str | None = None
    caller_id_name: str | None = None
    connected_line_num: str | None = None
    context: str | None = None
    exten: str | None = None
    application: str | None = None
    application_data: str | None = None
    duration: str | None = None  # "HH:MM:SS"
    bridge_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreShowChannelsComplete(AmiEvent):
    EVENT: ClassVar[str] = "CoreShowChannelsComplete"
    action_id: str | None = None
    list_items: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Status(AmiEvent):
    """One channel of a `Status` action's list; `variables` from the repeated `Variable:`."""

    EVENT: ClassVar[str] = "Status"
    channel: str
    uniqueid: str
    linkedid: str | None = None
    action_id: str | None = None
    channel_state: int | None = None
    channel_state_desc: str | None = None
    caller_id_num: str | None = None
    caller_id_name: str | None = None
    context: str | None = None
    exten: str | None = None
    application: str | None = None
    bridge_id: str | None = None
    seconds: int | None = None
    variables: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalBridge(AmiEvent):
    """Announces the two halves (`;1`/`;2`) of a Local channel pair."""

    EVENT: ClassVar[str] = "LocalBridge"
    local_one_channel: str
    local_one_uniqueid: str
    local_two_channel: str
    local_two_uniqueid: str
    linkedid: str | None = None


Event = AmiEvent


def _int(value: str) -> int:
    return int(value)


def _opt_int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


# Decoders read the message's first-value dict directly: `h["X"]` raises KeyError for a
# missing required header (turned into one ERROR log + GenericEvent by the caller), `h.get`
# gives None for an optional one. This is the hot path of the whole pipeline.
_Headers = dict[str, str]


def _newchannel(h: _Headers, m: Message) -> AmiEvent:
    g = h.get
    return Newchannel(
        channel=h["Channel"], uniqueid=h["Uniqueid"], linkedid=h["Linkedid"],
        channel_state=_opt_int(g("ChannelState")), channel_state_desc=g("ChannelStateDesc"),
        caller_id_num=g("CallerIDNum"), caller_id_name=g("CallerIDName"),
        connected_line_num=g("ConnectedLineNum"), connected_line_name=g("ConnectedLineName"),
        context=g("Context"), exten=g("Exten"), message=m,
    )  # fmt: skip


def _newstate(h: _Headers, m: Message) -> AmiEvent:
    g = h.get
    return Newstate(
        channel=h["Channel"], uniqueid=h["Uniqueid"], linkedid=h["Linkedid"],
        channel_state=_int(h["ChannelState"]), channel_state_desc=g("ChannelStateDesc"),
        caller_id_num=g("CallerIDNum"), caller_id_name=g("CallerIDName"),
        connected_line_num=g("ConnectedLineNum"), connected_line_name=g("ConnectedLineName"),
        context=g("Context"), exten=g("Exten"), message=m,
    )  # fmt: skip


def _hangup(h: _Headers, m: Message) -> AmiEvent:
    g = h.get
    return Hangup(
        channel=h["Channel"], uniqueid=h["Uniqueid"], linkedid=h["Linkedid"],
        cause=_int(h["Cause"]), cause_txt=g("Cause-txt"), tech_cause=_opt_int(g("TechCause")),
        channel_state=_opt_int(g("ChannelState")), channel_state_desc=g("ChannelStateDesc"),
        caller_id_num=g("CallerIDNum"), caller_id_name=g("CallerIDName"),
        connected_line_num=g("ConnectedLineNum"), connected_line_name=g("ConnectedLineName"),
        context=g("Context"), exten=g("Exten"), message=m,
    )  # fmt: skip


def _hangup_request_of(cls: type[HangupRequest] | type[SoftHangupRequest]) -> _Decoder:
    def decode(h: _Headers, m: Message) -> AmiEvent:
        g = h.get
        return cls(
            channel=h["Channel"], uniqueid=h["Uniqueid"], linkedid=h["Linkedid"],
            cause=_opt_int(g("Cause")), tech_cause=_opt_int(g("TechCause")),
            channel_state=_opt_int(g("ChannelState")), channel_state_desc=g("ChannelStateDesc"),
            caller_id_num=g("CallerIDNum"), caller_id_name=g("CallerIDName"),
            context=g("Context"), exten=g("Exten"), message=m,
        )  # fmt: skip

    return decode


def _bridge_of(cls: type[BridgeEnter] | type[BridgeLeave]) -> _Decoder:
    def decode(h: _Headers, m: Message) -> AmiEvent:
        g = h.get
        return cls(
            channel=h["Channel"], uniqueid=h["Uniqueid"], linkedid=h["Linkedid"],
            bridge_uniqueid=h["BridgeUniqueid"],
            bridge_num_channels=_opt_int(g("BridgeNumChannels")),
            channel_state=_opt_int(g("ChannelState")), channel_state_desc=g("ChannelStateDesc"),
            caller_id_num=g("CallerIDNum"), caller_id_name=g("CallerIDName"),
            context=g("Context"), exten=g("Exten"), message=m,
        )  # fmt: skip

    return decode


def _mixmonitor_start(h: _Headers, m: Message) -> AmiEvent:
    g = h.get
    return MixMonitorStart(
        channel=h["Channel"], uniqueid=h["Uniqueid"], linkedid=h["Linkedid"],
        caller_id_num=g("CallerIDNum"), context=g("Context"), exten=g("Exten"), message=m,
    )  # fmt: skip


def _varset(h: _Headers, m: Message) -> AmiEvent:
    # The busiest event by far (31% of a burst): only the fields the tracker needs.
    return VarSet(
        channel=h["Channel"], uniqueid=h["Uniqueid"], linkedid=h["Linkedid"],
        variable=h["Variable"], value=h["Value"], message=m,
    )  # fmt: skip


def _dtmf_begin(h: _Headers, m: Message) -> AmiEvent:
    return DTMFBegin(
        channel=h["Channel"], uniqueid=h["Uniqueid"], linkedid=h["Linkedid"],
        digit=h["Digit"], direction=h["Direction"], message=m,
    )  # fmt: skip


def _dtmf_end(h: _Headers, m: Message) -> AmiEvent:
    return DTMFEnd(
        channel=h["Channel"], uniqueid=h["Uniqueid"], linkedid=h["Linkedid"],
        digit=h["Digit"], direction=h["Direction"],
        duration_ms=_opt_int(h.get("DurationMs")), message=m,
    )  # fmt: skip


def _dial_begin(h: _Headers, m: Message) -> AmiEvent:
    g = h.get
    return DialBegin(
        dest_channel=h["DestChannel"], dest_uniqueid=h["DestUniqueid"],
        dest_linkedid=h["DestLinkedid"], channel=g("Channel"), uniqueid=g("Uniqueid"),
        linkedid=g("Linkedid"), dest_channel_state=_opt_int(g("DestChannelState")),
        dest_exten=g("DestExten"), dest_caller_id_num=g("DestCallerIDNum"),
        dial_string=g("DialString"), message=m,
    )  # fmt: skip


def _dial_with_status_of(cls: type[DialState] | type[DialEnd]) -> _Decoder:
    def decode(h: _Headers, m: Message) -> AmiEvent:
        g = h.get
        return cls(
            dest_channel=h["DestChannel"], dest_uniqueid=h["DestUniqueid"],
            dest_linkedid=h["DestLinkedid"], dial_status=h["DialStatus"],
            channel=g("Channel"), uniqueid=g("Uniqueid"), linkedid=g("Linkedid"),
            dest_channel_state=_opt_int(g("DestChannelState")), dest_exten=g("DestExten"),
            dest_caller_id_num=g("DestCallerIDNum"), dial_string=g("DialString"), message=m,
        )  # fmt: skip

    return decode


def _originate_response(h: _Headers, m: Message) -> AmiEvent:
    g = h.get
    uniqueid = g("Uniqueid")
    return OriginateResponse(
        response=h["Response"], reason=_int(h["Reason"]), channel=h["Channel"],
        action_id=g("ActionID"),
        uniqueid=None if uniqueid in (None, "", "<unknown>") else uniqueid,
        context=g("Context"), exten=g("Exten"), application=g("Application"), data=g("Data"),
        caller_id_num=g("CallerIDNum"), caller_id_name=g("CallerIDName"), message=m,
    )  # fmt: skip


def _user_event(h: _Headers, m: Message) -> AmiEvent:
    g = h.get
    return UserEvent(
        user_event=h["UserEvent"], channel=g("Channel"), uniqueid=g("Uniqueid"),
        linkedid=g("Linkedid"), message=m,
    )  # fmt: skip


def _cdr(h: _Headers, m: Message) -> AmiEvent:
    g = h.get
    return Cdr(
        uniqueid=h["UniqueID"], channel=h["Channel"], disposition=h["Disposition"],
        destination_channel=g("DestinationChannel") or None, source=g("Source"),
        destination=g("Destination"), last_application=g("LastApplication"),
        duration=_opt_int(g("Duration")), billable_seconds=_opt_int(g("BillableSeconds")),
        message=m,
    )  # fmt: skip


def _fully_booted(h: _Headers, m: Message) -> AmiEvent:
    g = h.get
    return FullyBooted(
        status=g("Status"), uptime=_opt_int(g("Uptime")), last_reload=_opt_int(g("LastReload")),
        message=m,
    )  # fmt: skip


def _core_show_channel(h: _Headers, m: Message) -> AmiEvent:
    g = h.get
    return CoreShowChannel(
        channel=h["Channel"], uniqueid=h["Uniqueid"], linkedid=h["Linkedid"],
        action_id=g("ActionID"), channel_state=_opt_int(g("ChannelState")),
        channel_state_desc=g("ChannelStateDesc"), caller_id_num=g("CallerIDNum"),
        caller_id_name=g("CallerIDName"), connected_line_num=g("ConnectedLineNum"),
        context=g("Context"), exten=g("Exten"), application=g("Application"),
        application_data=g("ApplicationData"), duration=g("Duration"),
        bridge_id=g("BridgeId") or None, message=m,
    )  # fmt: skip


def _core_show_channels_complete(h: _Headers, m: Message) -> AmiEvent:
    return CoreShowChannelsComplete(
        action_id=h.get("ActionID"), list_items=_opt_int(h.get("ListItems")), message=m
    )


def _status(h: _Headers, m: Message) -> AmiEvent:
    g = h.get
    variables = []
    for raw in m.getall("Variable"):
        name, _, value = raw.partition("=")
        variables.append((name, value))
    return Status(
        channel=h["Channel"], uniqueid=h["Uniqueid"], linkedid=g("Linkedid"),
        action_id=g("ActionID"), channel_state=_opt_int(g("ChannelState")),
        channel_state_desc=g("ChannelStateDesc"), caller_id_num=g("CallerIDNum"),
        caller_id_name=g("CallerIDName"), context=g("Context"), exten=g("Exten"),
        application=g("Application"), bridge_id=g("BridgeID") or None,
        seconds=_opt_int(g("Seconds")), variables=tuple(variables), message=m,
    )  # fmt: skip


def _local_bridge(h: _Headers, m: Message) -> AmiEvent:
    return LocalBridge(
        local_one_channel=h["LocalOneChannel"], local_one_uniqueid=h["LocalOneUniqueid"],
        local_two_channel=h["LocalTwoChannel"], local_two_uniqueid=h["LocalTwoUniqueid"],
        linkedid=h.get("LocalOneLinkedid"), message=m,
    )  # fmt: skip


_Decoder = Callable[[_Headers, Message], AmiEvent]

DECODERS: dict[str, _Decoder] = {
    "Newchannel": _newchannel,
    "Newstate": _newstate,
    "Hangup": _hangup,
    "HangupRequest": _hangup_request_of(HangupRequest),
    "SoftHangupRequest": _hangup_request_of(SoftHangupRequest),
    "BridgeEnter": _bridge_of(BridgeEnter),
    "BridgeLeave": _bridge_of(BridgeLeave),
    "MixMonitorStart": _mixmonitor_start,
    "VarSet": _varset,
    "DTMFBegin": _dtmf_begin,
    "DTMFEnd": _dtmf_end,
    "DialBegin": _dial_begin,
    "DialState": _dial_with_status_of(DialState),
    "DialEnd": _dial_with_status_of(DialEnd),
    "OriginateResponse": _originate_response,
    "UserEvent": _user_event,
    "Cdr": _cdr,
    "FullyBooted": _fully_booted,
    "CoreShowChannel": _core_show_channel,
    "CoreShowChannelsComplete": _core_show_channels_complete,
    "Status": _status,
    "LocalBridge": _local_bridge,
}


class EventDecoder:
    """Decodes messages into events and remembers which problems it already reported,
    so a misbehaving peer cannot flood the log with one line per event."""

    def __init__(self) -> None:
        self.reported: set[tuple[str, str]] = set()

    def decode(self, msg: Message) -> AmiEvent:
        name = msg.event_name
        if name is None:
            return GenericEvent(name=msg.name, message=msg)
        decoder = DECODERS.get(name)
        if decoder is None:
            # Not split into headers: nobody may ever read them (see Message).
            return GenericEvent(name=name, message=msg)
        try:
            return decoder(msg._first, msg)  # the first-value dict; read-only use
        except KeyError as exc:
            self._report(name, str(exc.args[0]) if exc.args else "?", "missing", msg)
        except ValueError as exc:
            self._report(name, str(exc), "malformed", msg)
        except Exception as exc:  # never let one odd event stop delivery
            self._report(name, repr(exc), "undecodable", msg)
        return GenericEvent(name=name, message=msg)

    def _report(self, name: str, header: str, problem: str, msg: Message) -> None:
        key = (name, header)
        if key in self.reported:
            return
        self.reported.add(key)
        log.error(
            "AMI %s event with %s header %s, delivered as a generic event: %r",
            name,
            problem,
            header,
            msg.headers,
        )


def parse_event(msg: Message) -> AmiEvent:
    """Decode one message into a typed event (or a GenericEvent). Never raises. For a stream,
    keep one `EventDecoder` instead: it reports each broken header once, not per message."""
    return EventDecoder().decode(msg)


# -- event classes ------------------------------------------------------------------------------

# The class (manager.conf `read =` permission) Asterisk 22 sends each event under, as its
# `Privilege:` header shows (`call,all`, `dialplan,all`, ...; checked against every real
# trace in tests/fixtures/ami). A user whose `read` lacks an event's class never gets it.
EVENT_CLASSES: dict[str, str] = {
    **dict.fromkeys(
        (
            "Newchannel", "Newstate", "Hangup", "HangupRequest", "SoftHangupRequest",
            "DialBegin", "DialState", "DialEnd", "BridgeCreate", "BridgeEnter", "BridgeLeave",
            "BridgeDestroy", "BridgeMerge", "OriginateResponse", "NewCallerid",
            "NewConnectedLine", "NewAccountCode", "LocalBridge", "LocalOptimizationBegin",
            "LocalOptimizationEnd", "MixMonitorStart", "MixMonitorStop", "MusicOnHoldStart",
            "MusicOnHoldStop", "DeviceStateChange", "ChanSpyStart", "ChanSpyStop", "Hold",
            "Unhold", "Rename",
        ),
        "call",
    ),
    "VarSet": "dialplan",
    "Newexten": "dialplan",
    "UserEvent": "user",
    "Cdr": "cdr",
    "CEL": "cel",
    "DTMFBegin": "dtmf",
    "DTMFEnd": "dtmf",
    "RTCPSent": "reporting",
    "RTCPReceived": "reporting",
    "FullyBooted": "system",
    "Shutdown": "system",
    "Reload": "system",
    "QueueMemberStatus": "agent",
    "SuccessfulAuth": "security",
    "FailedACL": "security",
    "InvalidPassword": "security",
    "ChallengeResponseFailed": "security",
    "RequestBadFormat": "security",
}  # fmt: skip


def event_class(name: str) -> str:
    """The read class of an event (`call` for any event this table does not name)."""
    return EVENT_CLASSES.get(name, "call")


def read_classes(read: str) -> frozenset[str]:
    """`read = call,cdr,user` (manager.conf) -> {"call", "cdr", "user"}; `all` stays `all`."""
    return frozenset(c.strip().lower() for c in read.split(",") if c.strip())


def may_read(classes: frozenset[str], event_cls: str) -> bool:
    """Whether a user with these read classes is sent events of `event_cls`."""
    return "all" in classes or event_cls in classes
