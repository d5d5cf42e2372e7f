"""Decoding: a `Message` into its typed event (`dialer.ami.event_types`), or a
`GenericEvent`; never raising, each broken header reported once (see `dialer.ami.events`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from dialer.ami.event_types import (
    AmiEvent,
    BridgeEnter,
    BridgeLeave,
    Cdr,
    CoreShowChannel,
    CoreShowChannelsComplete,
    DialBegin,
    DialEnd,
    DialState,
    DTMFBegin,
    DTMFEnd,
    FullyBooted,
    GenericEvent,
    Hangup,
    HangupRequest,
    LocalBridge,
    MixMonitorStart,
    Newchannel,
    Newstate,
    OriginateResponse,
    SoftHangupRequest,
    Status,
    UserEvent,
    VarSet,
)
from dialer.ami.protocol import Message

log = logging.getLogger(__name__)


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
