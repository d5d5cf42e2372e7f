"""What every flow of the simulated PBX shares: the parsed Originate, its OriginateResponse,
the recordings a call makes, the end of a call the dialplan cannot continue, and which device
a dial string names in the lab dialplan (customers _1X., seats _8X.)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from dialer.simulator.behaviour import Behaviour
from dialer.simulator.pbx import (
    Call,
    Chan,
    Pbx,
    parse_callerid,
)

log = logging.getLogger(__name__)

CUSTOMER_EXTEN = re.compile(r"^1\d.+$")  # lab dialplan: customers _1X.
SEAT_EXTEN = re.compile(r"^8\d.+$")  # seats _8X.
SEAT_FIRST_EXTEN = re.compile(r"^\d+$")
SEAT_SILENT = Behaviour("noanswer", ring=math.inf)  # a seat nobody picks up
CONNECT_KEY = "2"  # the callback's "connect me to a specialist"
HOLD_SECONDS = 20.0  # the callback's hold before "a specialist will call you"
# With `Pbx.seat_hangup_first`, how long before the carrier's Hangup the seat's comes (the
# live run of issue 11 saw up to 1 ms).
SEAT_HANGUP_LEAD = 0.001

Responder = Callable[[str, str], None]


@dataclass
class Rec:
    name: str
    bridged_at: float | None = None
    bridged: float = 0.0


class Originate:
    """Parsed Originate headers."""

    def __init__(self, headers: dict[str, str], variables: list[str], action_id: str) -> None:
        self.action_id = action_id
        self.channel = headers.get("Channel", "")
        self.context = headers.get("Context", "")
        self.exten = headers.get("Exten", "")
        self.application = headers.get("Application")
        self.data = headers.get("Data", "")
        self.asynchronous = headers.get("Async", "").lower() in ("true", "yes", "1", "on")
        self.timeout = float(headers.get("Timeout") or 30000) / 1000.0
        self.cid = parse_callerid(headers.get("CallerID"))
        self.channel_id = headers.get("ChannelId") or None
        self.other_id = headers.get("OtherChannelId") or None
        self.variables: list[tuple[str, str]] = []
        for header in variables:
            for item in header.split(","):
                k, _, v = item.partition("=")
                if k:
                    self.variables.append((k.strip(), v))


def originate_response(
    pbx: Pbx, call: Call, o: Originate, ok: bool, reason: int, chan: Chan | None = None
) -> None:
    if call.responded:
        return
    call.responded = True
    if call.respond is not None:
        if ok:
            call.respond("Success", "Originate successfully queued")
        else:
            call.respond("Error", "Originate failed")
        return
    pairs = [
        ("ActionID", o.action_id),
        ("Response", "Success" if ok else "Failure"),
        ("Channel", chan.name if ok and chan else o.channel),
    ]
    if o.application:
        pairs += [("Application", o.application), ("Data", o.data)]
    else:
        pairs += [("Context", o.context), ("Exten", o.exten)]
    uid = chan.uniqueid if ok and chan else (o.channel_id or "<unknown>")
    pairs += [
        ("Reason", str(reason)),
        ("Uniqueid", uid),
        ("CallerIDNum", o.cid[0] or "<unknown>"),
        ("CallerIDName", o.cid[1] or "<unknown>"),
    ]
    pbx.emit("OriginateResponse", "call,all", pairs)


def teardown(pbx: Pbx, call: Call, o: Originate) -> None:
    """Hang up whatever is left of a call (Hangup action outside the modelled phases)."""
    bridges = {c.bridge for c in call.channels if c.bridge and c.name in pbx.channels}
    for bridge in bridges:
        for c in call.channels:
            if c.bridge == bridge and c.name in pbx.channels:
                c.bridge = ""
                pbx.bridge_event("BridgeLeave", bridge, 0, c)
        pbx.bridge_event("BridgeDestroy", bridge, 0)
    for c in reversed(call.channels):
        if c.name in pbx.channels:
            pbx.hangup_request(c, 16, soft=c is not call.hangup_by)
            pbx.cdr(c, "ANSWERED" if c.answered is not None else "NO ANSWER")
            pbx.hangup(c, 16)
    originate_response(pbx, call, o, False, 0)


def family_of(tech: str) -> str | None:
    return {"Local": "Local", "PJSIP": "PJSIP"}.get(tech)


def role_of(family: str, resource: str) -> tuple[str, str] | None:
    """('seat'|'customer', number) of an originate/dial target, None if no such extension."""
    number, _, ctx = resource.partition("@")
    if family == "Local":
        if ctx == "seats" and SEAT_EXTEN.match(number):
            return "seat", number
        if ctx == "customers" and CUSTOMER_EXTEN.match(number):
            return "customer", number
        return None
    if ctx == "carrier":
        return "customer", number
    return ("seat", number) if number else None


__all__ = [
    "CONNECT_KEY",
    "CUSTOMER_EXTEN",
    "HOLD_SECONDS",
    "SEAT_EXTEN",
    "SEAT_FIRST_EXTEN",
    "SEAT_HANGUP_LEAD",
    "SEAT_SILENT",
    "Originate",
    "Rec",
    "Responder",
    "family_of",
    "originate_response",
    "role_of",
    "teardown",
]
