"""The typed AMI events: frozen dataclasses, one per event the dialer uses, and
`GenericEvent` for every other. `dialer.ami.decoding` makes them from `Message`s;
`dialer.ami.events` is the one place to import them from (see its notes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from dialer.ami.protocol import Message

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
