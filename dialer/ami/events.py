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

The module is the one to import from; the work is in three:
`event_types.py` (the dataclasses), `decoding.py` (`EventDecoder`, `parse_event`) and
`privileges.py` (which `read =` class each event is sent under).
"""

from __future__ import annotations

from dialer.ami.decoding import DECODERS, EventDecoder, parse_event
from dialer.ami.event_types import (
    AmiEvent,
    BridgeEnter,
    BridgeLeave,
    Cdr,
    ChannelEvent,
    CoreShowChannel,
    CoreShowChannelsComplete,
    DialBegin,
    DialEnd,
    DialEvent,
    DialState,
    DTMFBegin,
    DTMFEnd,
    Event,
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
from dialer.ami.privileges import EVENT_CLASSES, event_class, may_read, read_classes

__all__ = [
    "DECODERS",
    "EVENT_CLASSES",
    "AmiEvent",
    "BridgeEnter",
    "BridgeLeave",
    "Cdr",
    "ChannelEvent",
    "CoreShowChannel",
    "CoreShowChannelsComplete",
    "DTMFBegin",
    "DTMFEnd",
    "DialBegin",
    "DialEnd",
    "DialEvent",
    "DialState",
    "Event",
    "EventDecoder",
    "FullyBooted",
    "GenericEvent",
    "Hangup",
    "HangupRequest",
    "LocalBridge",
    "MixMonitorStart",
    "Newchannel",
    "Newstate",
    "OriginateResponse",
    "SoftHangupRequest",
    "Status",
    "UserEvent",
    "VarSet",
    "event_class",
    "may_read",
    "parse_event",
    "read_classes",
]
